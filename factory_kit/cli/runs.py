"""`factory-kit train`, `export`, `push`, `chat`, `serve`, `webui`, `demo`, `tiny-model`: parse, call
factory_kit.run, print."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from factory_kit.cli.options import announce_recipe, gguf_option, merged_option, set_option
from factory_kit.core.console import console, err_console, friendly, warn


@click.command()
@click.argument("recipe", callback=announce_recipe)
@set_option
@click.option("--overwrite", is_flag=True, help="Replace a previous run in output_dir.")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in output_dir.")
@click.option("--node-rank", type=int, default=None, help="This node's rank (multi-node).")
@click.option("--print-node-commands", is_flag=True,
              help="Print the command to run on every node (environment included) and launch nothing.")
@friendly
def train(recipe: str, overrides: tuple[str, ...], overwrite: bool, resume: bool, node_rank: int | None,
          print_node_commands: bool) -> None:
    """Render, check and run `llamafactory-cli train` for RECIPE."""
    from factory_kit.run.train import node_commands, train as do_train

    if print_node_commands:
        flags = (("--overwrite",) if overwrite else ()) + (("--resume",) if resume else ())
        for line in node_commands(recipe, overrides, flags):
            click.echo(line)
        return

    try:
        result = do_train(recipe, overrides, overwrite=overwrite, resume=resume, node_rank=node_rank, on_warning=warn)
    except KeyboardInterrupt as exc:  # run.json says `status: interrupted`; the message says how to go on
        err_console.print(str(exc) or "interrupted", markup=False, soft_wrap=True)
        sys.exit(getattr(exc, "exit_code", 130))
    if not result.losses:
        console.print(f"[green]node {node_rank} finished[/] (the main node logs the loss)")
        return
    first, last = result.losses[0][1], result.losses[-1][1]
    console.print(f"[green]trained[/] {result.output_dir} in {result.seconds:.1f}s: loss {first:.4f} -> {last:.4f}")


@click.command()
@click.argument("recipe", callback=announce_recipe)
@set_option
@click.option("--push", is_flag=True, help="Also upload to the recipe's `export.hub_repo` (token from HF_TOKEN).")
@friendly
def export(recipe: str, overrides: tuple[str, ...], push: bool) -> None:
    """Ship RECIPE's model as its `export:` block says: merge, GGUF, Ollama (and the Hub with --push)."""
    from factory_kit.ship.pipeline import export as do_export

    shipped = do_export(recipe, overrides, push=push, echo=lambda line: console.print(line, markup=False))
    if shipped.ollama:
        (console.print if shipped.ollama.startswith("ollama model") else warn)(shipped.ollama)
    console.print(f"[green]exported[/] {shipped.model_dir}")
    if shipped.hub_url:
        console.print(f"[green]pushed[/] {shipped.hub_url}")


@click.command()
@click.argument("recipe", callback=announce_recipe)
@set_option
@friendly
def push(recipe: str, overrides: tuple[str, ...]) -> None:
    """Upload what `factory-kit export` wrote to `export.hub_repo`, with a model card (token from HF_TOKEN)."""
    from factory_kit.ship.pipeline import push as do_push

    console.print(f"[green]pushed[/] {do_push(recipe, overrides)}")


@click.command()
@click.argument("recipe", callback=announce_recipe)
@set_option
@click.option("-q", "--question", default=None, help="Ask one question and print the answer (else interactive).")
@merged_option
@gguf_option
@friendly
def chat(recipe: str, overrides: tuple[str, ...], question: str | None, merged: bool, gguf: str | None) -> None:
    """Chat with the trained model (`llamafactory-cli chat`, or llama-cpp-python with --gguf)."""
    from factory_kit.run.model import chat as do_chat

    if gguf is not None:
        from factory_kit.ship import llamacpp, pipeline

        path, s = pipeline.gguf_file(recipe, overrides, gguf)
        opts = dict(max_tokens=s["max_new_tokens"], temperature=s["temperature"], top_p=s["top_p"], stop=s["stop"])
        if question is None:
            llamacpp.chat_loop(path, **opts)
        else:
            console.print(llamacpp.ask(path, question, **opts), markup=False)
        return

    answer = do_chat(recipe, overrides, question=question, merged=merged)
    if answer is not None:
        console.print(answer)


@click.command()
@click.argument("recipe", callback=announce_recipe)
@set_option
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, envvar="API_HOST",
              help="Address to listen on: 127.0.0.1 serves this machine only, 0.0.0.0 every network "
                   "(LLaMA-Factory's API_HOST).")
@merged_option
@gguf_option
@friendly
def serve(recipe: str, overrides: tuple[str, ...], port: int, host: str, merged: bool, gguf: str | None) -> None:
    """Serve the model on an OpenAI-compatible API (`llamafactory-cli api`, or llama-cpp-python's with --gguf)."""
    from factory_kit.run.model import serve as do_serve

    if gguf is not None:
        from factory_kit.ship import llamacpp, pipeline

        llamacpp.serve(pipeline.gguf_file(recipe, overrides, gguf)[0], host=host, port=port)
        return

    do_serve(recipe, overrides, port=port, host=host, merged=merged)


@click.command()
@click.option("--port", type=int, default=7860, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@friendly
def webui(port: int, host: str) -> None:
    """Start LLaMA-Factory's web UI on this project's datasets and rendered recipes."""
    from factory_kit.run.webui import start_webui

    start_webui(port=port, host=host)


@click.command()
@click.option("--recipe", default="demo-tiny", show_default=True, callback=announce_recipe,
              help="The project's recipes/demo-tiny.yaml if it has one, else the shipped one.")
@friendly
def demo(recipe: str) -> None:
    """The main job on the embedded default: import samples, render, train, merge, ask."""
    from factory_kit.run.demo import run_demo

    run_demo(recipe, console)


@click.command("tiny-model")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Folder (default: models/tiny-qwen2).")
@click.option("--force", is_flag=True, help="Rebuild even if cached.")
@friendly
def tiny_model_cmd(out: Path | None, force: bool) -> None:
    """Build the embedded default model (tiny Qwen2, local BPE tokenizer, no hub)."""
    from factory_kit.run import tinymodel

    path, built = tinymodel.build(out or tinymodel.default_dir(), force=force)
    console.print(f"{'built' if built else 'cached'}: {path}")


COMMANDS = [train, export, push, chat, serve, webui, demo, tiny_model_cmd]
