"""Recipes: schema, load (``extends``, ``--set``), checks, render to LLaMA-Factory configs, views
for show/ls/new, the catalog (models, methods, stages, hardware) and LLaMA-Factory's argument
snapshot. Imports ``core`` and ``data`` (to check datasets against the registry).
"""
