"""Data: messy medical sources -> clean datasets registered in ``dataset_info/dataset_info.json``.

readers (file types) -> formats (row shapes) -> quality, pii, dedup -> importer (orchestration)
-> split, registry; plus stats and the shipped samples. Imports only ``core``.
"""
