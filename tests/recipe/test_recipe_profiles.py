"""The table of methods, stages and hardware (catalog/profiles.yaml): agrees with LLaMA-Factory,
drives render / checks / ls / new / web UI, grows by a row, and the reward model of `stage: ppo`."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from factory_kit.cli import main
from factory_kit.core.errors import FactoryKitError
from factory_kit.core.paths import CATALOG_DIR, TEMPLATES_DIR
from factory_kit.recipe import catalog, checks, lfargs
from factory_kit.recipe.catalog import profiles
from factory_kit.recipe.render import render

from test_catalog import _llamafactory_file


def _lf_constant(name: str):
    """A literal constant of llamafactory/extras/constants.py, read as text (no import)."""
    tree = ast.parse(_llamafactory_file("extras/constants.py"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} not in constants.py")


def test_table_agrees_with_llamafactory():
    stages = catalog.stages()
    assert {row.webui["training_stage"]: name for name, row in stages.items()} == _lf_constant("TRAINING_STAGES")
    assert {n for n, row in stages.items() if row.data == "ranking"} == _lf_constant("STAGES_USE_PAIR_DATA")
    assert {m.finetuning_type for m in catalog.methods().values()} <= set(_lf_constant("METHODS"))
    for kind, rows in (("method", catalog.methods()), ("stage", stages), ("hardware", catalog.hardware())):
        for row in rows.values():
            assert (TEMPLATES_DIR / "train" / f"{kind}_{row.part}.yaml.j2").is_file(), (kind, row.name)
            assert not lfargs.check(dict(row.keys), "train"), (kind, row.name, row.keys)
            for key in (row.webui.get("fields") or {}):
                assert key in lfargs.snapshot()["train"], (row.name, key)


def test_deepspeed_is_one_template_parameterised_by_the_table():
    assert sorted(p.name for p in (TEMPLATES_DIR / "deepspeed").iterdir()) == ["zero.json.j2"]
    parts = {row.part for row in catalog.hardware().values() if row.deepspeed}
    assert parts == {"deepspeed"}  # one train-part for every DeepSpeed profile


def _catalog_dir(tmp_path, monkeypatch, profiles_extra: str = "", models_extra: str = "") -> Path:
    """A $FACTORY_KIT_CATALOG folder: the shipped files with rows appended."""
    folder = tmp_path / "catalog"
    folder.mkdir()
    if profiles_extra:
        text = (CATALOG_DIR / "profiles.yaml").read_text(encoding="utf-8")
        (folder / "profiles.yaml").write_text(_insert(text, profiles_extra), encoding="utf-8")
    if models_extra:
        text = (CATALOG_DIR / "models.yaml").read_text(encoding="utf-8")
        (folder / "models.yaml").write_text(text + models_extra, encoding="utf-8")
    monkeypatch.setenv(profiles.CATALOG_ENV, str(folder))
    return folder


def _insert(text: str, rows: str) -> str:
    """Append rows under their section (`methods:` / `hardware:` headers in ``rows``)."""
    for section, body in re.findall(r"^(\w+):\n((?:  .*\n?)+)", rows, re.M):
        head = f"\n{section}:\n"
        start = text.index(head) + len(head)
        following = re.search(r"^\w+:", text[start:], re.M)
        end = start + following.start() if following else len(text)
        text = text[:end].rstrip("\n") + "\n" + body.rstrip("\n") + "\n\n" + text[end:]
    return text


def test_a_hardware_profile_is_a_table_row(registry_project, tmp_path, monkeypatch):
    """ZeRO-2 with the optimizer offloaded: no code, no template, one row."""
    _catalog_dir(tmp_path, monkeypatch, profiles_extra=(
        "hardware:\n"
        "  ds-z2-offload:\n"
        "    description: ZeRO-2 with the optimizer offloaded to CPU RAM\n"
        "    template: deepspeed\n"
        "    distributed: true\n"
        "    deepspeed: {stage: 2, offload: [optimizer]}\n"
        "    env: {FORCE_TORCHRUN: '1', NPROC_PER_NODE: '{nodes.gpus_per_node}'}\n"))
    out = render("recipes/tcm-full-z3.yaml", ["hardware=ds-z2-offload"])
    ds = json.loads(out.files["deepspeed.json"].read_text())
    assert ds["zero_optimization"]["stage"] == 2
    assert ds["zero_optimization"]["offload_optimizer"] == {"device": "cpu", "pin_memory": True}
    assert "offload_param" not in ds["zero_optimization"]
    assert ds["_comment"].startswith("DeepSpeed ZeRO-2 with CPU offload of optimizer for recipes/tcm-full-z3.yaml")
    assert out.configs["train.yaml"]["deepspeed"] == "build/tcm-full-z3/deepspeed.json"
    assert out.env == {"FORCE_TORCHRUN": "1", "NPROC_PER_NODE": "8"}
    listed = CliRunner().invoke(main, ["ls", "hardware"], terminal_width=200)
    assert listed.exit_code == 0 and "ds-z2-offload" in listed.output


def test_a_method_variant_is_a_table_row(registry_project, tmp_path, monkeypatch):
    """rsLoRA: LoRA's template part plus one key."""
    _catalog_dir(tmp_path, monkeypatch, profiles_extra=(
        "methods:\n"
        "  rslora:\n"
        "    description: rank-stabilised LoRA (use_rslora)\n"
        "    template: lora\n"
        "    keys: {use_rslora: true}\n"
        "    finetuning_type: lora\n"
        "    adapter: true\n"))
    out = render("recipes/tcm-lora.yaml", ["method=rslora"])
    train = out.configs["train.yaml"]
    assert train["use_rslora"] is True and train["finetuning_type"] == "lora" and train["lora_rank"] == 16
    assert "adapter_name_or_path" in out.configs["infer.yaml"]  # an adapter: infer/export load it on the base
    board = out.files["llamaboard.yaml"].read_text()
    assert "train.use_rslora: true" in board  # the web UI's own field
    made = CliRunner().invoke(main, ["new", "--model", "Qwen/Qwen2.5-7B-Instruct", "--method", "rslora",
                                     "--dataset", "tcm_qa_train", "--name", "rs"])
    assert made.exit_code == 0, made.output
    assert CliRunner().invoke(main, ["check", "recipes/rs.yaml"]).exit_code == 0


def test_table_typos_name_the_row_and_key(tmp_path, monkeypatch):
    folder = _catalog_dir(tmp_path, monkeypatch, profiles_extra=(
        "hardware:\n  bad:\n    description: x\n    forbids: [{when: {gpus: 2}, reason: r}]\n"))
    with pytest.raises(FactoryKitError, match="hardware.bad: `forbids` names unknown fact `gpus`"):
        catalog.hardware()
    (folder / "profiles.yaml").write_text("methods:\n  lora:\n    description: x\n    adaptor: true\n"
                                          "stages:\n  sft: {description: s}\nhardware:\n  single: {description: h}\n")
    with pytest.raises(FactoryKitError, match=r"methods.lora: unknown key `adaptor` \(did you mean `adapter`\?\)"):
        catalog.methods()
    monkeypatch.setenv(profiles.CATALOG_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(FactoryKitError, match="FACTORY_KIT_CATALOG"):
        catalog.methods()


def test_ls_and_new_read_the_table(registry_project):
    out = CliRunner().invoke(main, ["ls", "stages"], terminal_width=200)
    assert out.exit_code == 0, out.output
    for name in catalog.stages():
        assert name in out.output
    assert "reward model" in out.output and "trl 0.8.6-0.9.6" in out.output
    made = CliRunner().invoke(main, ["new", "--model", "Qwen/Qwen2.5-7B-Instruct", "--stage", "ppo", "--name", "p"])
    assert made.exit_code == 0, made.output
    text = (registry_project / "recipes" / "p.yaml").read_text()
    assert "reward_model: tcm-rm.yaml" in text and "datasets: [tcm_qa_train]" in text
    assert CliRunner().invoke(main, ["check", "recipes/p.yaml"]).exit_code == 0
    made = CliRunner().invoke(main, ["new", "--model", "Qwen/Qwen2.5-7B-Instruct", "--stage", "rm", "--name", "r",
                                     "--hardware", "multi-node"])
    text = (registry_project / "recipes" / "r.yaml").read_text()
    assert "datasets: [tcm_pref]" in text and 'nodes: {count: 2, gpus_per_node: 8, master_addr: "10.0.0.1"}' in text


# ------------------------------------------------------------------------- reward model (ppo)

def _fake_reward_folder(folder: Path, *, adapter: bool) -> Path:
    folder.mkdir(parents=True)
    (folder / ("adapter_config.json" if adapter else "config.json")).write_text("{}")
    (folder / "value_head.safetensors").write_bytes(b"")
    return folder


def test_ppo_reward_model_as_recipe_folder_or_url(registry_project):
    out = render("recipes/tcm-ppo.yaml")
    assert out.context["reward_model"]["recipe"] == "recipes/tcm-rm.yaml"
    assert (out.configs["train.yaml"]["reward_model"], out.configs["train.yaml"]["reward_model_type"]) == \
        ("outputs/tcm-rm", "lora")
    _fake_reward_folder(registry_project / "models" / "rm-full", adapter=False)
    full = render("recipes/tcm-ppo.yaml", ["reward_model=models/rm-full"], write=False)
    assert full.configs["train.yaml"]["reward_model"] == "models/rm-full"
    assert full.configs["train.yaml"]["reward_model_type"] == "full"
    api = render("recipes/tcm-ppo.yaml", ["reward_model=http://127.0.0.1:8000/v1"], write=False)
    assert api.configs["train.yaml"]["reward_model_type"] == "api"
    board = out.files["llamaboard.yaml"].read_text()
    assert "train.training_stage: PPO" in board and "- outputs/tcm-rm" in board


@pytest.mark.parametrize("sets,fragments", [
    (["reward_model=null"], ["`stage: ppo` needs `reward_model`"]),
    (["reward_model=no-such-rm.yaml"], ["`reward_model: no-such-rm.yaml` not found", "recipes/no-such-rm.yaml"]),
    (["reward_model=tcm-dpo.yaml"], ["is a `stage: dpo` recipe", "`stage: rm`"]),
    (["model=Qwen/Qwen2.5-1.5B-Instruct"], ["trains a LoRA adapter on Qwen/Qwen2.5-7B-Instruct",
                                            "same `model` in both"]),
    (["reward_model=models/nothing"], ["`reward_model: models/nothing` not found"]),
    (["reward_model=models/no-head"], ["no value head"]),
    (["eval_datasets=[tcm_qa_val]"], ["`stage: ppo` cannot evaluate during training"]),
    (["method=full", "model=Qwen/Qwen2.5-1.5B-Instruct", "reward_model=models/rm-lora"],
     ["the reward model is a LoRA adapter", "`method: full`"]),
    (["stage=sft"], ["`reward_model` is used only by stages that score with one", "`stage: sft` does not"]),
    (["predict.enabled=true"], ["works only with `stage: sft`, not ppo"]),
])
def test_ppo_mistakes_get_one_clear_line(registry_project, sets, fragments):
    (registry_project / "models" / "no-head").mkdir(parents=True)
    (registry_project / "models" / "no-head" / "config.json").write_text("{}")
    _fake_reward_folder(registry_project / "models" / "rm-lora", adapter=True)
    result = CliRunner().invoke(main, ["check", "recipes/tcm-ppo.yaml", *[a for s in sets for a in ("--set", s)]])
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_rm_data_must_be_pairs(registry_project):
    with pytest.raises(FactoryKitError, match="`tcm_qa_train` is not a preference dataset"):
        render("recipes/tcm-rm.yaml", ["datasets=[tcm_qa_train]"], write=False)
    with pytest.raises(FactoryKitError, match=r"holds preference pairs \(ranking\); use it with `stage: dpo` or "
                                              r"`stage: rm`"):
        render("recipes/tcm-ppo.yaml", ["datasets=[tcm_pref]"], write=False)


def test_launch_checks_packages_and_the_trained_reward_model(registry_project, monkeypatch):
    out = render("recipes/tcm-ppo.yaml", write=False)
    monkeypatch.setattr(checks, "hub_model_problem", lambda model, project: None)  # tests/recipe/test_machine_checks.py
    monkeypatch.setattr(checks, "precision_problem", lambda ctx, confirm=False: None)
    monkeypatch.setattr(checks, "package_problem", lambda requirement: None)
    with pytest.raises(FactoryKitError, match=r"outputs/tcm-rm: no trained reward model here yet .* "
                                              r"`factory-kit train recipes/tcm-rm.yaml`"):
        checks.check_launch(out.context, registry_project)
    _fake_reward_folder(registry_project / "outputs" / "tcm-rm", adapter=True)
    checks.check_launch(out.context, registry_project)
    monkeypatch.setattr(checks, "package_problem", lambda requirement: "trl 0.24.0 is installed")
    with pytest.raises(FactoryKitError, match=r"`stage: ppo` needs trl>=0.8.6,<=0.9.6 \(trl 0.24.0 is installed\)"):
        checks.check_launch(out.context, registry_project)
    z3 = render("recipes/tcm-full-z3.yaml", write=False)
    monkeypatch.setattr(checks, "package_problem", lambda requirement: f"{requirement} is not installed")
    with pytest.raises(FactoryKitError, match=r"`hardware: ds-z3` needs deepspeed \(deepspeed is not installed\); "
                                              r"install it with `pip install 'factory-kit\[deepspeed\]'`"):
        checks.check_launch(z3.context, registry_project)


def test_package_problem_reads_installed_metadata():
    assert checks.package_problem("click") is None
    assert checks.package_problem("no-such-package-xyz") == "no-such-package-xyz is not installed"
    assert re.fullmatch(r"click \S+ is installed", checks.package_problem("click<1"))


def test_docs_name_every_row():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "recipes.md").read_text(encoding="utf-8")
    section = docs.split("## Methods, stages and hardware", 1)[1].split("\n## ", 1)[0]
    for rows in (catalog.methods(), catalog.stages(), catalog.hardware()):
        for name in rows:
            assert f"`{name}`" in section, f"docs/recipes.md does not describe `{name}`"


def test_inherited_reward_model_resolves_next_to_the_recipe_that_set_it(tmp_path, monkeypatch):
    import shutil

    from factory_kit.core import paths as core_paths
    from factory_kit.recipe import load as recipe_load
    from factory_kit.recipe import reward

    shutil.copytree(core_paths.SHIPPED_RECIPES_DIR, tmp_path / "recipes")
    (tmp_path / "recipes" / "team").mkdir()
    (tmp_path / "recipes" / "team" / "ppo.yaml").write_text("extends: ../tcm-ppo.yaml\n")
    monkeypatch.chdir(tmp_path)
    found = reward.resolve(recipe_load.load(tmp_path / "recipes" / "team" / "ppo.yaml"), tmp_path)
    assert found is not None and found.path.endswith("tcm-rm") and found.type == "lora"
    assert found.recipe.endswith("recipes/tcm-rm.yaml")
