"""`factory-kit render`, `check`, `show`, `ls`, `new`: parse, call factory_kit.recipe, print."""

from __future__ import annotations

from pathlib import Path

import click

from factory_kit.cli.options import set_option
from factory_kit.core.console import console, error, friendly, warn
from factory_kit.core.errors import FactoryKitError


@click.command()
@click.argument("recipe")
@set_option
@friendly
def render(recipe: str, overrides: tuple[str, ...]) -> None:
    """Render RECIPE into build/<recipe>/ (train, export, infer configs), checked."""
    from factory_kit.core import paths
    from factory_kit.recipe.render import render as do_render

    out = do_render(recipe, overrides)
    for message in out.warnings:
        warn(message)
    for path in out.files.values():
        console.print(f"  {paths.relative(path, paths.project_dir())}")
    console.print(f"[green]rendered[/] {out.recipe.name}: {len(out.files)} files, all checked")


@click.command()
@click.argument("recipes", nargs=-1, required=True)
@set_option
@friendly
def check(recipes: tuple[str, ...], overrides: tuple[str, ...]) -> None:
    """Check RECIPES (keys, types, model, datasets, combinations) without writing anything;
    every recipe is checked, and the exit code is non-zero when any failed."""
    from factory_kit.recipe.render import render as do_render

    failed = 0
    for recipe in recipes:
        try:
            out = do_render(recipe, overrides, write=False)
        except FactoryKitError as exc:
            error(exc)
            failed += 1
            continue
        for message in out.warnings:
            warn(message)
        console.print(f"[green]ok[/] {recipe} ({out.context['family']}, {out.context['method']}, "
                      f"{out.context['stage']}, {out.context['hardware']})")
    if failed:
        raise click.exceptions.Exit(2)


@click.command()
@click.argument("recipe")
@set_option
@friendly
def show(recipe: str, overrides: tuple[str, ...]) -> None:
    """Print the fully merged RECIPE, each value annotated with where it came from
    (`factory-kit ls keys` says what every key means)."""
    from factory_kit.recipe.load import load
    from factory_kit.recipe.views import format_recipe

    console.print(format_recipe(load(recipe, overrides)), soft_wrap=True, markup=False)


@click.command("ls")
@click.argument("what", type=click.Choice(["models", "methods", "stages", "hardware", "recipes", "keys", "all"]),
                default="all")
@click.option("--markdown", is_flag=True, help="With `keys`: the key table as Markdown (docs/recipes.md).")
@friendly
def ls_cmd(what: str, markdown: bool) -> None:
    """List what ships: model families, methods, stages, hardware profiles, recipes; `keys`: every recipe key."""
    from factory_kit.recipe.views import key_table, listing

    if markdown and what != "keys":
        raise click.UsageError("--markdown goes with `factory-kit ls keys`")
    if what == "keys":
        click.echo(key_table(markdown=True), nl=False) if markdown else console.print(key_table())
        return
    for table in listing(what):
        console.print(table)


@click.command()
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


COMMANDS = [render, check, show, ls_cmd, new]
