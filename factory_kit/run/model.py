"""What runs on a trained model: `export` (merge the adapter), `chat` (one question or a
terminal session) and `serve` (an OpenAI-compatible API), each through ``llamafactory-cli``
and the same launcher as training (known-failure hints, signals passed on to the child)."""

from __future__ import annotations

from pathlib import Path

from factory_kit.core import paths
from factory_kit.core.errors import FactoryKitError
from factory_kit.recipe.render import Rendered, render
from factory_kit.run import launch, records


def trained_model_dir(rendered: Rendered, project: Path, *, merged: bool = False, hint: str = "") -> Path:
    """The folder the recipe's training (or, with ``merged``, its export) wrote: the adapter, the
    full model, or the merged model; a clear error when it is not there yet."""
    ctx, recipe = rendered.context, rendered.recipe.path
    if merged:
        if not ctx["adapter"]:
            raise FactoryKitError(f"{recipe}: --merged is for adapter methods (lora/qlora/dora); "
                                  f"method {ctx['method']} already trains the whole model")
        if not (project / ctx["export"]["dir"] / "config.json").is_file():
            raise FactoryKitError(f"{ctx['export']['dir']}: no merged model yet; run `factory-kit export {recipe}` first")
        if records.merged_is_stale(project / ctx["export"]["dir"], project / ctx["output_dir"]):
            raise FactoryKitError(f"{ctx['export']['dir']}: merged model is older than the adapter in "
                                  f"{ctx['output_dir']}; run `factory-kit export {recipe}`")
        return project / ctx["export"]["dir"]
    marker = "adapter_config.json" if ctx["adapter"] else "config.json"
    if not (project / ctx["output_dir"] / marker).is_file():
        raise FactoryKitError(f"{ctx['output_dir']}: no trained model ({marker}) yet; "
                              f"run `factory-kit train {recipe}` first{hint}")
    return project / ctx["output_dir"]


def inference_config(rendered: Rendered, project: Path, *, merged: bool = False) -> Path:
    """The infer YAML for chat/serve, after checking that the model it points to exists."""
    trained_model_dir(rendered, project, merged=merged)
    return rendered.files["infer-merged.yaml" if merged else "infer.yaml"].relative_to(project)


def export(recipe_path: str | Path, overrides: tuple[str, ...] = (), *, echo: bool = True) -> Path:
    """Merge the adapter into the base model with ``llamafactory-cli export``; returns the export dir."""
    project = paths.project_dir()
    rendered = render(recipe_path, overrides, project=project)
    ctx = rendered.context
    trained = project / ctx["output_dir"]
    if not (trained / "adapter_config.json").exists() and not (trained / "config.json").exists():
        raise FactoryKitError(f"{ctx['output_dir']}: no trained model here yet; run `factory-kit train {recipe_path}` first")
    export_dir = project / ctx["export"]["dir"]
    launch.llamafactory("export", rendered.files["export.yaml"].relative_to(project), cwd=project,
                        log_path=trained / "factory-kit.log", echo=echo)
    if not (export_dir / "config.json").exists():
        raise FactoryKitError(f"llamafactory-cli export exited 0 but wrote no model to {export_dir}")
    records.write_merged_marker(export_dir, trained)  # chat/serve/eval --merged refuse it once the adapter changes
    return export_dir


def _infer_config(recipe_path: str | Path, overrides: tuple[str, ...], merged: bool) -> tuple[Path, Path]:
    project = paths.project_dir()
    return project, inference_config(render(recipe_path, overrides, project=project), project, merged=merged)


def ask(recipe_path: str | Path, question: str, overrides: tuple[str, ...] = (), *, merged: bool = False,
        echo: bool = False) -> str:
    """One question through ``llamafactory-cli chat``; returns the answer text."""
    project, config = _infer_config(recipe_path, overrides, merged)
    result = launch.llamafactory("chat", config, cwd=project, echo=echo,
                                 input_text=question.replace("\n", " ") + "\nexit\n")
    text = "\n".join(result.tail)
    if "Assistant:" not in text:
        raise FactoryKitError(f"llamafactory-cli chat gave no answer: {launch.last_error_line(result.tail)}")
    answer = text.split("Assistant:", 1)[1]
    answer = answer.split("\nUser:", 1)[0]
    return answer.strip()


def chat(recipe_path: str | Path, overrides: tuple[str, ...] = (), *, question: str | None = None,
         merged: bool = False) -> str | None:
    """With ``question``: its answer. Without: a chat session in this terminal (the child reads our
    stdin) until the user types ``exit``; returns None."""
    if question is not None:
        return ask(recipe_path, question, overrides, merged=merged)
    project, config = _infer_config(recipe_path, overrides, merged)
    launch.llamafactory("chat", config, cwd=project, interactive=True)
    return None


def serve(recipe_path: str | Path, overrides: tuple[str, ...] = (), *, port: int = 8000, host: str = "127.0.0.1",
          merged: bool = False) -> None:
    """Serve the model on an OpenAI-compatible endpoint (``llamafactory-cli api``) until stopped, on ``host``
    (LLaMA-Factory's own default, 0.0.0.0, would expose it to every network)."""
    project, config = _infer_config(recipe_path, overrides, merged)
    launch.llamafactory("api", config, cwd=project, env={"API_PORT": str(port), "API_HOST": host})
