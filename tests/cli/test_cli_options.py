"""The CLI is thin: each option is declared once, and command modules hold no run logic."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import click

from factory_kit.cli import main
from factory_kit.cli.evaluate import eval_cmd
from factory_kit.evaluate import EvalOptions

CLI_DIR = Path(__file__).resolve().parents[2] / "factory_kit" / "cli"


def _params(command: click.Command) -> dict[str, click.Parameter]:
    return {p.name: p for p in command.params}


def test_eval_options_come_from_the_dataclass():
    """Every EvalOptions field is an `eval` option with the dataclass's default (declared once)."""
    params = _params(eval_cmd)
    for field in dataclasses.fields(EvalOptions):
        assert field.name in params, field.name
        if "flag" in field.metadata:  # else a shared option (--merged)
            assert params[field.name].default == field.default, field.name
    assert set(params) == {f.name for f in dataclasses.fields(EvalOptions)} | {"recipe", "overrides"}
    assert params["shots"].type.max == 5 and params["benchmarks"].multiple
    assert "-b" in params["benchmarks"].opts and list(params["mode"].type.choices) == ["loglikelihood", "generate"]


def test_shared_options_are_one_declaration():
    commands = main.commands
    for name in ("render", "check", "show", "train", "export", "chat", "serve", "eval"):
        opt = _params(commands[name])["overrides"]
        assert opt.opts == ["--set"] and opt.help.startswith("Override a recipe value"), name
    helps = {_params(commands[name])["merged"].help for name in ("chat", "serve", "eval")}
    assert len(helps) == 1
    assert len({_params(commands[name])["gguf"].help for name in ("chat", "serve")}) == 1


def test_every_command_is_still_there():
    assert set(main.commands) == {"init", "cp", "render", "check", "show", "ls", "new", "train", "export", "push",
                                  "chat", "serve", "webui", "demo", "tiny-model", "data", "eval", "compare", "report", "synth",
                                  "plan", "doctor"}


def test_cli_modules_launch_and_write_nothing_themselves():
    """Commands parse, call one function, print: no subprocess, no file writes, no run records."""
    for path in CLI_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not {"subprocess", "os", "shutil"} & set(names), f"{path.name}: imports {names}"
            if isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name)):
                called = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
                assert called not in {"open", "write_text", "write_bytes", "write_run_json"}, \
                    f"{path.name}:{node.lineno} calls {called}"
