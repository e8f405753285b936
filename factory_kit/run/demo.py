"""`factory-kit demo`: the main job end to end on the embedded default.

Sample data -> data/ + dataset_info/ -> the demo-tiny recipe -> build/ -> llamafactory-cli
train -> export (merge) -> one TCM question answered by the merged model. Every step is the
same code path a user's own recipe takes; only the model is tiny. Runs in any folder: the
recipe is the project's recipes/demo-tiny.yaml when there is one, else the shipped one, and
everything is written into the current project.
"""

from __future__ import annotations

import os
import time

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from factory_kit.core import paths
from factory_kit.data.samples import import_samples
from factory_kit.recipe.render import render
from factory_kit.run import launch, model, tinymodel
from factory_kit.run.train import train

QUESTION = "黄芪的主要功效是什么？"


def run_demo(recipe: str, console: Console) -> None:
    os.environ.update(launch.OFFLINE_ENV)  # the demo needs no hub: fail fast if anything reaches for it
    start = time.monotonic()
    project = paths.project_dir()

    console.rule("[bold]1/5 tiny model")
    model_dir, built = tinymodel.build(tinymodel.default_dir(project))
    console.print(f"{'built' if built else 'cached'}: {model_dir.relative_to(project)}")

    console.rule("[bold]2/5 import sample data")
    reports = import_samples(project)
    for rep in reports:
        console.print(f"{rep.name}: {rep.accepted} accepted, {rep.quarantined} quarantined -> "
                      f"{', '.join(rep.registered)}")

    console.rule("[bold]3/5 render")
    rendered = render(recipe, project=project)
    for path in rendered.files.values():
        console.print(f"  {path.relative_to(project)}")

    console.rule("[bold]4/5 train (llamafactory-cli train)")
    result = train(recipe, on_warning=lambda message: console.print(f"[yellow]warning:[/] {escape(message)}",
                                                                    soft_wrap=True))

    console.rule("[bold]5/5 merge (llamafactory-cli export) and ask")
    merged = model.export(recipe)
    answer = model.ask(recipe, QUESTION, merged=True)

    total = time.monotonic() - start
    table = Table(title="factory-kit demo", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("datasets", "\n".join(
        f"{r.name} ({r.format}): {r.accepted} rows" + (f", {r.quarantined} quarantined" if r.quarantined else "")
        + (" (split: " + ", ".join(f"{k} {v}" for k, v in r.splits.items()) + ")" if r.splits else "")
        for r in reports))
    table.add_row("train / eval", f"{', '.join(rendered.recipe.data['datasets'])} / "
                  f"{', '.join(rendered.recipe.data['eval_datasets']) or '-'}")
    table.add_row("rendered", "\n".join(str(p.relative_to(project)) for p in rendered.files.values()))
    first, last = result.losses[0], result.losses[-1]
    table.add_row("training loss", f"{first[1]:.4f} (step {first[0]}) -> {last[1]:.4f} (step {last[0]})"
                  + ("  [green]falling[/]" if last[1] < first[1] else "  [red]not falling[/]"))
    if result.eval_losses:
        table.add_row("eval loss", " -> ".join(f"{v:.4f}" for _, v in result.eval_losses))
    table.add_row("adapter", str(result.output_dir.relative_to(project)))
    table.add_row("merged model", str(merged.relative_to(project)))
    table.add_row("question", QUESTION)
    table.add_row("answer", escape(answer or "(empty)") + "\n[dim](a tiny, randomly initialised model: the words are noise, "
                  "the pipeline is real)[/]")
    table.add_row("total time", f"{total:.1f} s")
    console.print(table)
