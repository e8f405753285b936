"""`factory-kit doctor`: parse, call factory_kit.run.doctor, print."""

from __future__ import annotations

import click

from factory_kit.core.console import console, friendly


@click.command()
@friendly
def doctor() -> None:
    """What this machine has for training (Python, torch, CUDA, GPUs, LLaMA-Factory and the packages it
    can use) and which shipped recipes can run here, and why not. Imports neither torch nor llamafactory."""
    from factory_kit.run import doctor as run_doctor

    here = run_doctor.machine()
    console.print(run_doctor.report(here, run_doctor.recipe_verdicts(here)))


COMMANDS = [doctor]
