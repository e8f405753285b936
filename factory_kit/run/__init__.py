"""Runs: launch ``llamafactory-cli`` (train, export, chat, serve, webui) with rendered files,
record what ran, the demo and the tiny local model. Imports ``core``, ``data`` and ``recipe``.
"""
