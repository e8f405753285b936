"""The argument snapshot matches the installed LLaMA-Factory, and the checker catches mistakes."""

from __future__ import annotations

import json
import subprocess
import sys

from factory_kit.recipe import lfargs


def test_snapshot_matches_installed_llamafactory():
    code = "import json; from factory_kit.recipe import lfargs; print(json.dumps(lfargs.introspect()))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    live = json.loads(done.stdout.strip().splitlines()[-1])
    assert live == lfargs.snapshot(), "refresh with `python -m factory_kit.recipe.lfargs`"
    assert len(live["train"]) > 300 and len(live["infer"]) > 200


def test_check_names_types_choices():
    assert lfargs.check({"learning_rate": 1e-4, "bf16": True, "stage": "sft", "lora_rank": 8}, "train") == []
    problems = dict(lfargs.check({"lerning_rate": 1e-4}, "train"))
    assert "did you mean `learning_rate`" in problems["lerning_rate"]
    assert "expected float" in dict(lfargs.check({"learning_rate": "1e-4"}, "train"))["learning_rate"]
    assert "not one of" in dict(lfargs.check({"stage": "sftt"}, "train"))["stage"]
    assert "not a LLaMA-Factory infer argument" in dict(lfargs.check({"learning_rate": 1e-4}, "infer"))["learning_rate"]
    assert "expected bool" in dict(lfargs.check({"bf16": 1}, "train"))["bf16"]
