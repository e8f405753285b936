"""`factory-kit check A B C` checks every recipe, even after one fails."""

from __future__ import annotations

from click.testing import CliRunner

from factory_kit.cli import main


def test_check_goes_on_after_a_failing_recipe(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTORY_KIT_PROJECT", str(tmp_path))
    (tmp_path / "a.yaml").write_text("datasets: [x]\n")  # no model
    (tmp_path / "b.yaml").write_text("model: Qwen/Qwen2.5-7B-Instruct\ndatasets: [x]\nmethod: lorra\n")
    result = CliRunner().invoke(main, ["check", str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")])
    assert result.exit_code == 2
    assert "a.yaml: `model` is required" in result.output
    assert "b.yaml" in result.output and "lorra" in result.output


def test_check_reports_the_good_recipes_between_bad_ones(registry_project):
    """A bad recipe (broken YAML, an unknown key) stops neither the recipes after it nor their `ok` line."""
    (registry_project / "recipes" / "broken.yaml").write_text("model: [unclosed\n", encoding="utf-8")
    (registry_project / "recipes" / "typo.yaml").write_text("extends: tcm-lora.yaml\ntrain: {lr: 1.0e-5}\n",
                                                          encoding="utf-8")
    result = CliRunner().invoke(main, ["check", "recipes/broken.yaml", "recipes/tcm-lora.yaml", "recipes/typo.yaml",
                                       "recipes/tcm-dpo.yaml"], terminal_width=200)
    assert result.exit_code == 2
    out = " ".join(result.output.split())
    assert "broken.yaml:2: invalid YAML" in out and "did you mean `train.learning_rate`" in out
    assert "ok recipes/tcm-lora.yaml" in out and "ok recipes/tcm-dpo.yaml" in out
