"""`data stats` and `report` count a dataset's characters the same way (one function)."""

from __future__ import annotations

import pytest

from factory_kit.core import paths
from factory_kit.core.paths import SAMPLES_DIR
from factory_kit.data import registry, stats
from factory_kit.data.importer import import_source
from factory_kit.evaluate import report


@pytest.mark.parametrize("sample", ["tcm_qa.jsonl", "consultations.json", "herb_monographs.txt"])
def test_report_and_stats_count_the_same_characters(project, sample):
    import_source(SAMPLES_DIR / sample, "d")
    measured = stats.compute("d", project, plots=False)["chars"]["total"]
    reg_dir = paths.registry_dir(project)
    card = report.dataset_card("d", registry.load(reg_dir)["d"], reg_dir, None)
    assert card["rows"] == measured["count"]
    # not the `source` path nor role tags ("from": "human"): only the text trained on
    assert card["chars"] == {"min": measured["min"], "median": measured["p50"], "max": measured["max"]}
    table = "\n".join(report._dataset_section({"datasets": {"d": "0" * 64}}, None, project))
    assert f"| {measured['min']:,.0f} / {measured['p50']:,.0f} / {measured['max']:,.0f} |" in table
