"""`factory-kit init`, `cp`, `render`, `check`, `show`, `ls`, `new`: parse, call factory_kit.recipe, print."""

from __future__ import annotations

from pathlib import Path

import click

from factory_kit.cli.options import CatalogChoice, announce_recipe, set_option
from factory_kit.core.console import console, error, friendly, warn
from factory_kit.core.errors import FactoryKitError


@click.command()
@click.argument("recipe", callback=announce_recipe)
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
@click.argument("recipes", nargs=-1, required=True, callback=announce_recipe)
@set_option
@friendly
def check(recipes: tuple[str, ...], overrides: tuple[str, ...]) -> None:
    """Check RECIPES (keys, types, model, datasets, combinations) without writing anything;
    every recipe is checked, and the exit code is non-zero when any failed."""
    from factory_kit.core import paths
    from factory_kit.recipe.checks import check_machine
    from factory_kit.recipe.render import render as do_render

    failed = 0
    for recipe in recipes:
        try:
            out = do_render(recipe, overrides, write=False)
            here = check_machine(out.context, paths.project_dir())  # packages, hub model, bf16 on this machine
        except FactoryKitError as exc:
            error(exc)
            failed += 1
            continue
        for message in [*out.warnings, *here]:
            warn(message)
        console.print(f"[green]ok[/] {recipe} ({out.context['family']}, {out.context['method']}, "
                      f"{out.context['stage']}, {out.context['hardware']})")
    if failed:
        raise click.exceptions.Exit(2)


@click.command()
@click.argument("recipe", callback=announce_recipe)
@click.option("--gpu", default=None, help="GPU to fit: rtx4090, a100-40, a100-80, h100, h200, l40s, a10... "
              "(default: the recipe's `nodes.gpu`, else its hardware profile's).")
@click.option("--gpu-mem", type=float, default=None, help="Or the GPU's memory in GB.")
@click.option("--gpus", type=click.IntRange(min=1), default=None,
              help="GPUs in all (data-parallel; ZeRO shards over them). Default: the recipe's.")
@set_option
@friendly
def plan(recipe: str, gpu: str | None, gpu_mem: float | None, gpus: int | None, overrides: tuple[str, ...]) -> None:
    """Memory per GPU before launch: weights, gradients, optimizer states, activations; whether RECIPE
    fits the GPU, and when it does not, the cheapest change that makes it fit."""
    from factory_kit.core import paths
    from factory_kit.recipe import plan as planner
    from factory_kit.recipe.render import render as do_render

    if gpu and gpu_mem:
        raise click.UsageError("give --gpu or --gpu-mem, not both")
    chosen = planner.find_gpu(gpu) if gpu else planner.custom_gpu(gpu_mem) if gpu_mem else None
    out = do_render(recipe, overrides, write=False, check_data=False)
    found = planner.plan_recipe(out.recipe, out.context, paths.project_dir(), chosen, gpus)
    if found is None:
        raise FactoryKitError(f"{out.recipe.path}: the size of model {out.context['model']} is unknown (no config.json "
                              "here or in the Hugging Face cache, no size in its name): download it (`hf download "
                              "ORG/NAME --local-dir models/NAME`) and set `model: models/NAME`")
    for part in planner.plan_report(found, out.recipe.name):
        console.print(part)


@click.command()
@click.argument("recipe", callback=announce_recipe)
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
@click.option("--wide", is_flag=True, help="Every column, text wrapped (default: one line per row).")
@friendly
def ls_cmd(what: str, markdown: bool, wide: bool) -> None:
    """List what ships: model families, methods, stages, hardware profiles, recipes (the project's
    and the shipped ones); `keys`: every recipe key."""
    from factory_kit.recipe.views import key_table, listing

    if markdown and what != "keys":
        raise click.UsageError("--markdown goes with `factory-kit ls keys`")
    if what == "keys":
        click.echo(key_table(markdown=True), nl=False) if markdown else console.print(key_table())
        return
    for table in listing(what, wide=wide):
        console.print(table)


@click.command()
@click.option("--model", required=True, help="HF id or local path, e.g. Qwen/Qwen2.5-7B-Instruct.")
@click.option("--method", type=CatalogChoice("methods"), default="lora", show_default=True,
              help="How the weights train (`factory-kit ls methods`).")
@click.option("--stage", type=CatalogChoice("stages"), default="sft", show_default=True,
              help="What the training does (`factory-kit ls stages`).")
@click.option("--hardware", type=CatalogChoice("hardware"), default="single", show_default=True,
              help="Where it runs (`factory-kit ls hardware`).")
@click.option("--dataset", "datasets", multiple=True,
              help="Dataset name from dataset_info.json (repeatable; default: the stage's sample data).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Recipe file (default recipes/<name>.yaml).")
@click.option("--name", default=None, help="Recipe name.")
@friendly
def new(model: str, method: str, stage: str, hardware: str, datasets: tuple[str, ...], out: Path | None,
        name: str | None) -> None:
    """Scaffold a recipe for --model; its values come from the catalog (per family, method, stage and
    hardware) and it passes `factory-kit check`. Choices are not case-sensitive.

    \b
    factory-kit new --model Qwen/Qwen2.5-7B-Instruct
    factory-kit new --model Qwen/Qwen3-8B --dataset medical_o1_cot
    factory-kit new --model Qwen/Qwen2.5-7B-Instruct --stage dpo --name my-dpo
    """
    from factory_kit.core import paths
    from factory_kit.recipe.scaffold import scaffold

    made = scaffold(model, method, stage, hardware, list(datasets), out, name)
    for message in made.warnings:
        warn(message)
    if made.pending:
        warn(f"`factory-kit check` fails until this is fixed: {made.pending}")
    project = paths.project_dir()
    for path in [*made.also, made.path]:  # click.echo: a path is never broken across lines
        click.echo(f"wrote {paths.relative(path, project)}")
    click.echo(f"next: edit it, then: factory-kit check {paths.relative(made.path, project)}")


@click.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--force", is_flag=True, help="Replace files already there (the dataset registry is always kept).")
@friendly
def init(folder: Path, force: bool) -> None:
    """Make a project in FOLDER (default: here): the shipped recipes in recipes/, data/,
    dataset_info/, a .gitignore and a README with the next commands."""
    from factory_kit.core import paths
    from factory_kit.recipe.project import init_project

    done = init_project(folder, force=force)
    for path in done.written:
        click.echo(f"wrote {paths.relative(path, Path.cwd())}")
    for path in done.kept:
        click.echo(f"kept {paths.relative(path, Path.cwd())}")
    go = "" if folder.resolve() == Path.cwd().resolve() else f"cd {paths.relative(folder, Path.cwd())}; "
    click.echo(f"next: {go}factory-kit demo (the whole flow on a tiny model); README.md lists the next commands")


@click.command()
@click.argument("name")
@click.argument("dest", type=click.Path(path_type=Path), required=False)
@click.option("--force", is_flag=True, help="Replace the recipe file if it exists (what it names is always kept).")
@friendly
def cp(name: str, dest: Path | None, force: bool) -> None:
    """Copy shipped recipe NAME (e.g. tcm-lora) to DEST (a folder or a .yaml file; default: recipes/),
    with the recipes it names (`extends`, a `reward_model` recipe) unless they are there already."""
    from factory_kit.core import paths
    from factory_kit.recipe.project import copy_recipe

    done = copy_recipe(name, dest, force=force)
    for path in done.written:
        click.echo(f"wrote {paths.relative(path, Path.cwd())}")
    for path in done.kept:
        click.echo(f"kept {paths.relative(path, Path.cwd())} (already there)")
    recipe = done.written[0]
    bare = recipe.parent.resolve() == (paths.project_dir() / "recipes").resolve()
    click.echo(f"next: edit it, then: factory-kit check {recipe.stem if bare else paths.relative(recipe, Path.cwd())}")


COMMANDS = [init, cp, render, check, plan, show, ls_cmd, new]
