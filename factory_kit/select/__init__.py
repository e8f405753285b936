"""Eval-driven selection and decontamination: train on the pool rows closest to the
evaluation items, never on copies of them (``factory-kit data select`` / ``decontaminate``).

Modules: embed (embedders), cache (on-disk embedding cache), sources (pool rows and eval
items), contam (character n-gram matching), options (select's options, declared once), recall
(the selection), output (datasets, stats, histogram), pipeline (select end to end),
decontaminate (the command's logic). Imports only factory_kit.core and factory_kit.data.
"""
