"""The `factory-kit` command: parses arguments, calls a stage, prints with rich. No logic here."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from factory_kit.core.console import console, friendly

set_option = click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE",
    help="Override a recipe value, e.g. --set train.learning_rate=5e-5 (repeatable).",
)




@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="factory-kit")
def main() -> None:
    """Fine-tune open LLMs on TCM and clinical data with LLaMA-Factory: data, recipes, runs."""


@main.command("tiny-model")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Folder (default: models/tiny-qwen2).")
@click.option("--force", is_flag=True, help="Rebuild even if cached.")
@friendly
def tiny_model_cmd(out: Path | None, force: bool) -> None:
    """Build the embedded default model (tiny Qwen2, local BPE tokenizer, no hub)."""
    from factory_kit.core import paths
    from factory_kit.run import tinymodel

    target = out or paths.models_dir() / "tiny-qwen2"
    path, built = tinymodel.build(target, force=force)
    console.print(f"{'built' if built else 'cached'}: {path}")


@main.command()
@click.argument("recipe")
@set_option
@friendly
def render(recipe: str, overrides: tuple[str, ...]) -> None:
    """Render RECIPE into build/<recipe>/ (train, export, infer configs), checked."""
    from factory_kit.recipe.render import render as do_render

    out = do_render(recipe, overrides)
    project = out.out_dir.parent.parent
    for path in out.files.values():
        console.print(f"  {path.relative_to(project)}")
    console.print(f"[green]rendered[/] {out.recipe.name}: {len(out.files)} files, all checked")


@main.command()
@click.argument("recipes", nargs=-1, required=True)
@set_option
@friendly
def check(recipes: tuple[str, ...], overrides: tuple[str, ...]) -> None:
    """Check RECIPES (keys, types, model, datasets, combinations) without writing anything."""
    from factory_kit.recipe.render import render as do_render

    for recipe in recipes:
        out = do_render(recipe, overrides, write=False)
        console.print(f"[green]ok[/] {recipe} ({out.context['family']}, {out.context['method']}, "
                      f"{out.context['stage']}, {out.context['hardware']})")


@main.command()
@click.argument("recipe")
@set_option
@friendly
def show(recipe: str, overrides: tuple[str, ...]) -> None:
    """Print the fully merged RECIPE, each value annotated with where it came from."""
    from factory_kit.recipe.load import load
    from factory_kit.recipe.views import format_recipe

    console.print(format_recipe(load(recipe, overrides)), soft_wrap=True, markup=False)


@main.command("ls")
@click.argument("what", type=click.Choice(["models", "methods", "stages", "hardware", "recipes", "all"]),
                default="all")
@friendly
def ls_cmd(what: str) -> None:
    """List what ships: model families, methods, stages, hardware profiles, recipes."""
    from factory_kit.recipe.views import listing

    for table in listing(what):
        console.print(table)


@main.command()
@click.option("--model", required=True, help="HF id or local path, e.g. Qwen/Qwen2.5-7B-Instruct.")
@click.option("--method", default="lora", show_default=True)
@click.option("--stage", default="sft", show_default=True)
@click.option("--hardware", default="single", show_default=True)
@click.option("--dataset", "datasets", multiple=True, help="Dataset name(s) from dataset_info.json.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Recipe file (default recipes/<name>.yaml).")
@click.option("--name", default=None, help="Recipe name.")
@friendly
def new(model: str, method: str, stage: str, hardware: str, datasets: tuple[str, ...], out: Path | None,
        name: str | None) -> None:
    """Scaffold a recipe from --model/--method/--stage."""
    from factory_kit.recipe.views import scaffold

    path = scaffold(model, method, stage, hardware, list(datasets), out, name)
    console.print(f"[green]wrote[/] {path}; edit it, then `factory-kit check {path}`")


@main.command()
@click.argument("recipe")
@set_option
@click.option("--overwrite", is_flag=True, help="Replace a previous run in output_dir.")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in output_dir.")
@click.option("--node-rank", type=int, default=None, help="This node's rank (multi-node).")
@friendly
def train(recipe: str, overrides: tuple[str, ...], overwrite: bool, resume: bool, node_rank: int | None) -> None:
    """Render, check and run `llamafactory-cli train` for RECIPE."""
    from factory_kit.run import records as runs

    result = runs.train(recipe, overrides, overwrite=overwrite, resume=resume, node_rank=node_rank)
    if not result.losses:
        console.print(f"[green]node {node_rank} finished[/] (the main node logs the loss)")
        return
    first, last = result.losses[0][1], result.losses[-1][1]
    console.print(f"[green]trained[/] {result.output_dir} in {result.seconds:.1f}s: loss {first:.4f} -> {last:.4f}")


@main.command()
@click.argument("recipe")
@set_option
@friendly
def export(recipe: str, overrides: tuple[str, ...]) -> None:
    """Merge the trained adapter into the base model (`llamafactory-cli export`)."""
    from factory_kit.run import records as runs

    console.print(f"[green]exported[/] {runs.export(recipe, overrides)}")


@main.command()
@click.argument("recipe")
@set_option
@click.option("-q", "--question", default=None, help="Ask one question and print the answer (else interactive).")
@click.option("--merged", is_flag=True, help="Use the merged model from `export`.")
@friendly
def chat(recipe: str, overrides: tuple[str, ...], question: str | None, merged: bool) -> None:
    """Chat with the trained model (`llamafactory-cli chat`)."""
    from factory_kit.run import launch, records as runs
    from factory_kit.core import paths
    from factory_kit.recipe.render import render as do_render

    if question is not None:
        console.print(runs.ask(recipe, question, overrides, merged=merged))
        return
    import os
    import subprocess

    project = paths.project_dir()
    config = runs.inference_config(do_render(recipe, overrides, project=project), project, merged=merged)
    sys.exit(subprocess.call([launch.executable("llamafactory-cli"), "chat", str(config)],
                             cwd=project, env={**os.environ, **launch.BASE_ENV}))


@main.command()
@click.argument("recipe")
@set_option
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--merged", is_flag=True, help="Serve the merged model from `export`.")
@friendly
def serve(recipe: str, overrides: tuple[str, ...], port: int, merged: bool) -> None:
    """Serve the model on an OpenAI-compatible API (`llamafactory-cli api`)."""
    from factory_kit.run import records as runs

    runs.serve(recipe, overrides, port=port, merged=merged)


@main.command()
@click.option("--recipe", default="recipes/demo-tiny.yaml", show_default=True)
@friendly
def demo(recipe: str) -> None:
    """The main job on the embedded default: import samples, render, train, merge, ask."""
    from factory_kit.run.demo import run_demo

    run_demo(recipe, console)


@main.command()
@click.option("--port", type=int, default=7860, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@friendly
def webui(port: int, host: str) -> None:
    """Start LLaMA-Factory's web UI on this project's datasets and rendered recipes."""
    from factory_kit.run.webui import start_webui

    start_webui(port=port, host=host)


def _add_stage_commands() -> None:
    """Stage commands live in their own modules (data, evaluation); the group is assembled here."""
    from factory_kit.cli.data import data
    from factory_kit.cli.evaluate import COMMANDS as eval_commands

    main.add_command(data)
    for command in eval_commands:
        main.add_command(command)


_add_stage_commands()

if __name__ == "__main__":
    main()
