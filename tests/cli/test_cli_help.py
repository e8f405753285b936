"""Every command's --help fits an 80-column terminal, and `serve` listens where it is told."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from factory_kit.cli import main


def _commands(group: click.Group, path: tuple[str, ...] = ()):
    yield path
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name)


@pytest.mark.parametrize("path", list(_commands(main)), ids=lambda p: " ".join(p) or "factory-kit")
def test_help_fits_80_columns(path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    result = CliRunner().invoke(main, [*path, "--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    wide = [line for line in result.output.splitlines() if len(line) > 80]
    assert not wide, f"`factory-kit {' '.join(path)} --help` has lines over 80 columns: {wide}"


def test_serve_listens_on_loopback_unless_told(monkeypatch, tmp_path):
    from factory_kit.run import launch, model

    seen = []
    monkeypatch.setattr(model, "_infer_config", lambda recipe, overrides, merged: (tmp_path, "infer.yaml"))
    monkeypatch.setattr(launch, "llamafactory", lambda cmd, config, **kw: seen.append((cmd, kw["env"])))
    monkeypatch.delenv("API_HOST", raising=False)
    runner = CliRunner()
    assert runner.invoke(main, ["serve", "recipes/tcm-lora.yaml"]).exit_code == 0
    assert runner.invoke(main, ["serve", "recipes/tcm-lora.yaml", "--host", "0.0.0.0", "--port", "9000"]).exit_code == 0
    assert seen == [("api", {"API_PORT": "8000", "API_HOST": "127.0.0.1"}),
                    ("api", {"API_PORT": "9000", "API_HOST": "0.0.0.0"})]
    assert "--host" in runner.invoke(main, ["serve", "--help"]).output
