"""DeepSpeed configs go through DeepSpeed's own config classes in `check` and `train` (no GPU): the rendered
one of every ds-* profile passes; a bad one (the recipe's own `deepspeed_config`) fails in one line naming
the file and the key."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from factory_kit.cli import main
from factory_kit.core.errors import FactoryKitError
from factory_kit.recipe import catalog, dsconfig
from factory_kit.recipe.render import render

pytest.importorskip("deepspeed")
DS_PROFILES = [name for name, row in catalog.hardware().items() if row.deepspeed]
GOOD = {"train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto", "train_batch_size": "auto",
        "bf16": {"enabled": "auto"}, "zero_optimization": {"stage": 2, "reduce_bucket_size": "auto"}}


def _check(*sets: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["check", "recipes/tcm-full-z3.yaml", *(a for s in sets for a in ("--set", s))])
    return result.exit_code, result.output


@pytest.mark.parametrize("hardware", DS_PROFILES)
def test_every_rendered_deepspeed_config_passes_deepspeeds_check(registry_project, hardware):
    code, output = _check(f"hardware={hardware}")
    assert code == 0, output
    out = render("recipes/tcm-full-z3.yaml", [f"hardware={hardware}", "nodes.gpus_per_node=2"], write=False)
    ds = out.context["deepspeed_check"]
    assert ds["source"] == f"build/tcm-full-z3/deepspeed.json (rendered for `hardware: {hardware}`)"
    dsconfig.check(ds["config"], ds["train"], dsconfig.world_size(ds["env"]), ds["source"])  # raises on a problem
    values = dsconfig.filled(ds["config"], ds["train"], 2, ds["source"])
    assert values["train_batch_size"] == 2 * ds["train"]["per_device_train_batch_size"] * \
        ds["train"]["gradient_accumulation_steps"]
    assert "\"auto\"" not in json.dumps(values)


@pytest.mark.parametrize("config, message", [
    ({**GOOD, "zero_optimization": {"stage": 5}},
     "`zero_optimization.stage`: Input should be 0, 1, 2, 3 or 3 (got 5) (DeepSpeed's config check)"),
    ({**GOOD, "zero_optimization": {"stage": 3, "offload_param": {"device": "gpu"}}},
     "`zero_optimization.offload_param.device`: Input should be 'none', 'cpu' or 'nvme' (got \"gpu\")"),
    ({**GOOD, "zero_optimization": {"stage": 2, "overlap_com": True}},
     "`zero_optimization.overlap_com`: Extra inputs are not permitted"),
    ({**GOOD, "train_micro_batch_size_per_gpu": 4},
     "`train_micro_batch_size_per_gpu: 4` disagrees with train.yaml (1 for 8 process(es))"),
    ({**GOOD, "fp16": {"enabled": True}, "bf16": {"enabled": True}},
     "bfloat16 and fp16 modes cannot be simultaneously enabled (DeepSpeed's config check)"),
])
def test_a_bad_deepspeed_config_fails_in_one_line(registry_project, config, message):
    (registry_project / "ds.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    code, output = _check("hardware=ds-z3", "deepspeed_config=ds.json")
    assert code == 2, output
    line = " ".join(output.split())
    assert "error: ds.json (`deepspeed_config` in --set): " in line, output
    assert message in line, output
    assert "Traceback" not in output


def test_the_recipes_own_deepspeed_file_is_used_as_it_is(registry_project):
    text = json.dumps(GOOD, indent=1)
    (registry_project / "ds.json").write_text(text, encoding="utf-8")
    out = render("recipes/tcm-full-z3.yaml", ["hardware=ds-z2", "deepspeed_config=ds.json"])
    assert out.files["deepspeed.json"].read_text(encoding="utf-8") == text + "\n"
    assert out.configs["train.yaml"]["deepspeed"] == "build/tcm-full-z3/deepspeed.json"
    code, output = _check("hardware=ds-z2", "deepspeed_config=ds.json")
    assert code == 0, output


def test_deepspeed_file_problems_found_at_render(registry_project):
    (registry_project / "ds.json").write_text('{\n  "zero_optimization": {"stage": 2},\n  oops\n}\n')
    with pytest.raises(FactoryKitError, match=r"^ds\.json:3: not valid JSON \(Expecting property name"):
        render("recipes/tcm-full-z3.yaml", ["hardware=ds-z3", "deepspeed_config=ds.json"], write=False)
    with pytest.raises(FactoryKitError, match="`deepspeed_config: nope.json` cannot be read"):
        render("recipes/tcm-full-z3.yaml", ["hardware=ds-z3", "deepspeed_config=nope.json"], write=False)
    with pytest.raises(FactoryKitError, match="`deepspeed_config` needs a DeepSpeed hardware.*`hardware: single`"):
        render("recipes/tcm-full-z3.yaml", ["hardware=single", "deepspeed_config=ds.json"], write=False)
