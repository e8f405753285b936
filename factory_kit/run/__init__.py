"""Runs: ``launch`` (every child process: llamafactory-cli, lm-eval), ``train``, ``model``
(export, chat, serve), ``records`` (run.json for train and eval alike), ``webui``, the ``demo``
and the tiny local model. Imports ``core``, ``data`` and ``recipe``.
"""
