"""Data: messy medical sources -> clean datasets registered in ``dataset_info/dataset_info.json``.

importer (orchestration): readers (file types) -> formats via convert (row shapes; parallel
for large JSON Lines) -> quality, pii -> collect (dedup, write, quarantine) -> finish (split,
benchmark hold-out, registry); store says where the files live. Plus stats and the shipped
samples. Imports only ``core``.
"""
