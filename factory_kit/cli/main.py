"""The `factory-kit` root command: the group, assembled from one module per command group."""

from __future__ import annotations

import click

from factory_kit.cli import data, doctor, evaluate, recipes, runs, synth


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="factory-kit")
def main() -> None:
    """Fine-tune open LLMs on TCM and clinical data with LLaMA-Factory: data, recipes, runs."""


for _command in [*recipes.COMMANDS, *runs.COMMANDS, data.data, *evaluate.COMMANDS, *synth.COMMANDS, *doctor.COMMANDS]:
    main.add_command(_command)

if __name__ == "__main__":
    main()
