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
