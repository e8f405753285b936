"""A project of one's own: `init`, `cp`, bare recipe names (the project's first, then the shipped
one), `ls` on an 80-column terminal."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.cells import cell_len

from factory_kit.cli import main
from factory_kit.core import console as console_mod
from factory_kit.core import paths
from factory_kit.recipe import catalog

SHIPPED = sorted(p.name for p in paths.SHIPPED_RECIPES_DIR.glob("*.yaml"))


@pytest.fixture
def empty(tmp_path, monkeypatch) -> Path:
    """A folder with nothing in it (cwd), far from the checkout."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FACTORY_KIT_PROJECT", str(tmp_path))
    return tmp_path


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), env=env)


def test_init_lays_out_a_project_and_never_replaces_silently(empty):
    result = invoke("init", "proj")
    assert result.exit_code == 0, result.output
    proj = empty / "proj"
    assert sorted(p.name for p in (proj / "recipes").iterdir()) == SHIPPED
    assert json.loads((proj / "dataset_info" / "dataset_info.json").read_text()) == {}
    assert (proj / "data").is_dir()
    ignored = (proj / ".gitignore").read_text().splitlines()
    assert {"build/", "outputs/", "models/", ".cache/"} <= set(ignored)
    readme = (proj / "README.md").read_text()
    assert "factory-kit demo" in readme and "factory-kit data import" in readme
    assert "wrote proj/recipes/base.yaml" in result.output and "cd proj" in result.output

    (proj / "recipes" / "tcm-lora.yaml").write_text("# mine\n")
    (proj / "dataset_info" / "dataset_info.json").write_text('{"qa": {"file_name": "../data/qa.jsonl"}}\n')
    again = invoke("init", "proj")
    assert again.exit_code == 2
    assert "proj/recipes/tcm-lora.yaml" in again.output and "--force" in again.output
    assert (proj / "recipes" / "tcm-lora.yaml").read_text() == "# mine\n"

    forced = invoke("init", "proj", "--force")
    assert forced.exit_code == 0, forced.output
    assert (proj / "recipes" / "tcm-lora.yaml").read_text() == (paths.SHIPPED_RECIPES_DIR / "tcm-lora.yaml").read_text()
    assert "kept proj/dataset_info/dataset_info.json" in forced.output  # the registry is data: never replaced
    assert "qa" in json.loads((proj / "dataset_info" / "dataset_info.json").read_text())


def test_cp_copies_a_recipe_and_what_it_extends(empty):
    result = invoke("cp", "demo-tiny")
    assert result.exit_code == 0, result.output
    for name in ("demo-tiny.yaml", "tcm-lora.yaml", "base.yaml"):  # demo-tiny extends tcm-lora extends base
        assert (empty / "recipes" / name).read_text() == (paths.SHIPPED_RECIPES_DIR / name).read_text()
        assert f"wrote recipes/{name}" in result.output
    assert "factory-kit check demo-tiny" in result.output

    again = invoke("cp", "demo-tiny")
    assert again.exit_code == 2 and "recipes/demo-tiny.yaml already exists" in again.output
    assert "--force" in again.output

    (empty / "recipes" / "base.yaml").write_text("precision: fp32\n")  # the user's own base is kept
    result = invoke("cp", "tcm-dpo")
    assert result.exit_code == 0, result.output
    assert "kept recipes/base.yaml" in result.output
    assert (empty / "recipes" / "base.yaml").read_text() == "precision: fp32\n"

    result = invoke("cp", "tcm-ppo")  # its reward model's recipe comes along: `check` looks for it beside
    assert result.exit_code == 0, result.output
    assert "wrote recipes/tcm-rm.yaml" in result.output and (empty / "recipes" / "tcm-rm.yaml").is_file()

    result = invoke("cp", "tcm-lora.yaml", "elsewhere/my-lora.yaml")
    assert result.exit_code == 0, result.output
    assert (empty / "elsewhere" / "my-lora.yaml").is_file() and (empty / "elsewhere" / "base.yaml").is_file()

    missing = invoke("cp", "tcm-lorra")
    assert missing.exit_code == 2 and "no shipped recipe" in missing.output and "tcm-lora" in missing.output


def test_bare_name_uses_the_projects_recipe_first_then_the_shipped_one(empty):
    shipped = invoke("show", "tcm-lora")
    assert shipped.exit_code == 0, shipped.output
    assert "using shipped recipe tcm-lora (`factory-kit cp tcm-lora` to edit it)" in shipped.output
    assert "tcm-lora.yaml <- base.yaml" in shipped.output  # extends resolved among the shipped recipes
    assert str(paths.SHIPPED_RECIPES_DIR / "base.yaml") in shipped.output

    invoke("cp", "tcm-lora")
    text = (empty / "recipes" / "tcm-lora.yaml").read_text()
    (empty / "recipes" / "tcm-lora.yaml").write_text(text.replace("model: Qwen/Qwen2.5-7B-Instruct",
                                                                  "model: Qwen/Qwen2.5-1.5B-Instruct"))
    own = invoke("show", "tcm-lora")
    assert own.exit_code == 0, own.output
    assert "using project recipe recipes/tcm-lora.yaml" in own.output
    assert "model: Qwen/Qwen2.5-1.5B-Instruct" in own.output

    path = invoke("show", "recipes/tcm-lora.yaml")  # a path is taken as given, and says nothing
    assert path.exit_code == 0 and "using" not in path.output


def test_recipe_names_with_dots_resolve(empty):
    (empty / "recipes").mkdir()
    (empty / "recipes" / "qwen2.5-lora.yaml").write_text("model: Qwen/Qwen2.5-7B-Instruct\ndatasets: [qa]\n")
    result = invoke("show", "qwen2.5-lora")
    assert result.exit_code == 0, result.output
    assert "using project recipe recipes/qwen2.5-lora.yaml" in result.output


def test_missing_recipes_say_what_to_type(empty):
    path = invoke("check", "recipes/tcm-lora.yaml")  # the docs' path, in a fresh folder
    assert path.exit_code == 2
    assert "use the bare name `tcm-lora`" in path.output and "factory-kit cp tcm-lora" in path.output
    unknown = invoke("show", "tcm-lorra")
    assert unknown.exit_code == 2 and "tcm-lorra: recipe not found" in unknown.output
    assert "did you mean `tcm-lora`?" in unknown.output
    assert "factory-kit ls recipes" in unknown.output

    (empty / "recipes").mkdir()
    (empty / "recipes" / "mine.yaml").write_text("extends: base.yaml\nmodel: Qwen/Qwen2.5-7B-Instruct\n")
    parent = invoke("show", "mine")
    assert parent.exit_code == 2
    assert "`extends: base.yaml` not found" in parent.output and "factory-kit cp base" in parent.output


@pytest.fixture
def columns_80(monkeypatch):
    """The shared console as on an 80-column terminal (rich reads COLUMNS when no width is fixed)."""
    monkeypatch.setattr(console_mod.console, "_width", None)
    return {"COLUMNS": "80"}


def test_ls_fits_80_columns_and_keeps_ids_whole(empty, columns_80):
    result = invoke("ls", env=columns_80)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    too_wide = [line for line in lines if cell_len(line) > 80]
    assert not too_wide, too_wide[:3]
    assert len(lines) < 150, len(lines)  # was ~330 lines at 80 columns
    models = invoke("ls", "models", env=columns_80).output.splitlines()
    assert len(models) <= len(catalog.families()) + 5, "one line per model family"
    first_words = {line.split()[0] for line in lines if line.strip()}
    for family in catalog.families():
        assert family in first_words, f"family id {family} cut or missing"
    for name in ("lora", "qlora", "sft", "dpo", "ds-z3-offload", "multi-node", "demo-tiny", "medical-o1-cot"):
        assert name in first_words, name
    assert "…" in result.output  # long descriptions are cut, not wrapped


def test_ls_wide_and_where_each_recipe_lives(empty, columns_80):
    (empty / "recipes").mkdir()
    (empty / "recipes" / "mine.yaml").write_text("description: my own\nmodel: Qwen/Qwen2.5-7B-Instruct\n")
    (empty / "recipes" / "tcm-lora.yaml").write_text("description: my tcm-lora\nmodel: Qwen/Qwen2.5-7B-Instruct\n")
    result = invoke("ls", "recipes", env=columns_80)
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1] for line in result.output.splitlines()
            if line.strip() and line.split()[0] in ("mine", "tcm-lora", "tcm-dpo")}
    assert rows == {"mine": "project", "tcm-lora": "project*", "tcm-dpo": "shipped"}
    assert "shadows the shipped recipe" in result.output

    wide = invoke("ls", "recipes", "--wide", env={"COLUMNS": "250"})
    assert "recipes/mine.yaml" in wide.output and "(shadows shipped)" in wide.output
    assert re.search(r"tcm-dpo\s.*shipped\s.*tcm-dpo\.yaml", wide.output)
    models = invoke("ls", "models", "--wide", env={"COLUMNS": "250"})
    assert "lora_target" in models.output and "cutoff" in models.output
