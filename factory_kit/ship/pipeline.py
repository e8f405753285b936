"""`factory-kit export RECIPE` and `factory-kit push RECIPE`: what the recipe's ``export:`` block says,
in order: merge the adapter (or keep it alone), GGUF files, an Ollama Modelfile (and `ollama create`),
and, when asked, one commit to the Hub with the model card. Each step checks what it needs before
the slow ones start (a missing extra or token fails before the merge, not after it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from factory_kit.core import io, paths
from factory_kit.core.errors import FactoryKitError
from factory_kit.recipe.render import Rendered, render
from factory_kit.run import model
from factory_kit.ship import card, converter, hub, llamacpp, ollama

GGUF_DIRNAME = "gguf"  # <output_dir>/gguf/<recipe>-<type>.gguf + Modelfile
# Files of a model folder that ship (the rest of a training folder is checkpoints, logs and records).
MODEL_GLOBS = ("config.json", "generation_config.json", "*.safetensors", "*.safetensors.index.json",
               "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
               "vocab.json", "merges.txt", "added_tokens.json", "tokenizer.model")


@dataclass
class Shipped:
    """What an export wrote (and where it went)."""

    model_dir: Path | None = None  # the merged model (or, `merge: false`, the trained folder)
    adapter_only: bool = False
    gguf: list[Path] = field(default_factory=list)
    modelfile: Path | None = None
    ollama: str | None = None  # what happened with Ollama, one line
    hub_url: str | None = None


def gguf_dir(rendered: Rendered, project: Path) -> Path:
    return project / rendered.context["output_dir"] / GGUF_DIRNAME


def export(recipe_path: str | Path, overrides: tuple[str, ...] = (), *, push: bool = False,
           echo: Callable[[str], None] = print, child_echo: bool = True) -> Shipped:
    """Run the recipe's export block; ``push`` also commits the result to ``export.hub_repo``."""
    project = paths.project_dir()
    rendered = render(recipe_path, overrides, project=project)
    ctx, ex = rendered.context, rendered.context["export"]
    types = llamacpp.wanted_types(ex["gguf"])
    if types:
        llamacpp.require()
        converter.ensure()  # fetched on first use, before the merge
        converter.check_pre_tokenizer(ex["gguf_pre_tokenizer"], rendered.recipe.where("export.gguf_pre_tokenizer"))
    if ex["ollama"]:
        ollama.chat_format(ctx["template"])
        ollama.model_name(ex["ollama"], rendered.recipe.name)
    if push:
        _hub_repo(rendered)
        hub.token()
    trained = model.trained_model_dir(rendered, project)
    shipped = Shipped()
    if ex["merge"] or not ctx["adapter"]:
        shipped.model_dir = model.export(recipe_path, overrides, echo=child_echo) if ex["merge"] else trained
        echo(f"merged model {paths.relative(shipped.model_dir, project)}" if ex["merge"]
             else f"model {paths.relative(trained, project)} (full training: nothing to merge)")
    else:
        shipped.model_dir, shipped.adapter_only = trained, True
        echo(f"adapter {paths.relative(trained, project)} (export.merge: false)")
    if types:
        shipped.gguf = llamacpp.build(shipped.model_dir, gguf_dir(rendered, project), rendered.recipe.name, types,
                                      pre_tokenizer=ex["gguf_pre_tokenizer"], log_path=trained / "factory-kit.log",
                                      origin=rendered.recipe.where("export.gguf_pre_tokenizer"), echo=echo)
    if ex["ollama"]:
        shipped.modelfile = ollama.write_modelfile(shipped.gguf[0], ctx)
        _, shipped.ollama = ollama.create(ollama.model_name(ex["ollama"], rendered.recipe.name), shipped.modelfile)
        echo(f"Modelfile {paths.relative(shipped.modelfile, project)}")
    if push:
        shipped.hub_url = push_files(rendered, project, shipped)
    elif ex["hub_repo"]:
        echo(f"not pushed: `factory-kit push {recipe_path}` (or `export --push`) uploads to {ex['hub_repo']}")
    return shipped


def _hub_repo(rendered: Rendered) -> str:
    repo = rendered.context["export"]["hub_repo"]
    if not repo:
        raise FactoryKitError(f"{rendered.recipe.path}: set `export.hub_repo: USER/NAME` to say which Hub repo to "
                              "push to (or `--set export.hub_repo=USER/NAME`)")
    return repo


def model_files(folder: Path, prefix: str = "") -> list[tuple[str, Path]]:
    found = {p for pattern in MODEL_GLOBS for p in folder.glob(pattern) if p.is_file()}
    return [(prefix + p.name, p) for p in sorted(found)]


def existing(rendered: Rendered, project: Path) -> Shipped:
    """What an earlier `factory-kit export` left for this recipe (for `factory-kit push`)."""
    ctx, ex = rendered.context, rendered.context["export"]
    shipped = Shipped()
    if ctx["adapter"] and ex["merge"]:
        shipped.model_dir = model.trained_model_dir(rendered, project, merged=True)
    else:
        shipped.model_dir = model.trained_model_dir(rendered, project)
        shipped.adapter_only = bool(ctx["adapter"])
    folder = gguf_dir(rendered, project)
    for gtype in llamacpp.wanted_types(ex["gguf"]):
        path = llamacpp.gguf_path(folder, rendered.recipe.name, gtype)
        if not path.is_file():
            raise FactoryKitError(f"{paths.relative(path, project)}: not written yet; run `factory-kit export "
                                  f"{paths.relative(rendered.recipe.path, project)}` first")
        shipped.gguf.append(path)
    if (folder / "Modelfile").is_file() and ex["ollama"]:
        shipped.modelfile = folder / "Modelfile"
    return shipped


def push_files(rendered: Rendered, project: Path, shipped: Shipped) -> str:
    """One Hub commit: the model (or adapter) at the root, the adapter beside a merge in ``adapter/``,
    the GGUF files and Modelfile, and the model card."""
    repo = _hub_repo(rendered)
    ctx = rendered.context
    trained = project / ctx["output_dir"]
    if shipped.adapter_only:
        files = hub.adapter_files(shipped.model_dir)
        contents = ["the LoRA adapter (load it on the base model with PEFT)"]
    else:
        files = model_files(shipped.model_dir)
        contents = ["the merged model (safetensors, loads with transformers)" if ctx["adapter"]
                    else "the fine-tuned model (safetensors, loads with transformers)"]
        if ctx["adapter"]:
            files += hub.adapter_files(trained, "adapter/")
            contents.append("`adapter/`: the LoRA adapter it was merged from")
    files += [(p.name, p) for p in shipped.gguf]
    if shipped.gguf:
        contents.append("GGUF files for llama.cpp / Ollama: " + ", ".join(f"`{p.name}`" for p in shipped.gguf))
    if shipped.modelfile:
        files.append(("Modelfile", shipped.modelfile))
        contents.append("`Modelfile`: the Ollama chat template, stop words and parameters")
    text = card.build(rendered, project, contents=contents, gguf=shipped.gguf)
    io.write_text(trained / "model-card.md", text)  # the card as pushed, kept beside the run
    return hub.push(repo, files, text, private=ctx["export"]["hub_private"],
                    message=f"factory-kit export of {rendered.recipe.name}")


def push(recipe_path: str | Path, overrides: tuple[str, ...] = ()) -> str:
    """`factory-kit push RECIPE`: upload what `factory-kit export` wrote; returns the repo URL."""
    project = paths.project_dir()
    rendered = render(recipe_path, overrides, project=project)
    _hub_repo(rendered)
    hub.token()
    return push_files(rendered, project, existing(rendered, project))


def gguf_file(recipe_path: str | Path, overrides: tuple[str, ...] = (), choice: str = "") -> tuple[Path, dict]:
    """The GGUF `chat --gguf` / `serve --gguf` use: a .gguf path, a type (`q4_k_m`) or, empty, the first
    type the recipe lists; with the recipe's infer settings and its family's stop words."""
    project = paths.project_dir()
    rendered = render(recipe_path, overrides, project=project, write=False, check_data=False)
    ctx = rendered.context
    from factory_kit.recipe import catalog

    family = catalog.families().get(ctx["family"])
    settings = {**ctx["infer"], "stop": list(family.stop_words) if family else []}
    if choice.endswith(".gguf"):
        path = Path(choice).expanduser()
        return (path if path.is_absolute() else project / path), settings
    types = llamacpp.wanted_types(choice or ctx["export"]["gguf"])
    if not types:
        raise FactoryKitError(f"{rendered.recipe.path}: no GGUF to use; set `export.gguf: q4_k_m` and run "
                              "`factory-kit export`, or pass `--gguf FILE.gguf`")
    path = llamacpp.gguf_path(gguf_dir(rendered, project), rendered.recipe.name, types[0])
    if not path.is_file():
        raise FactoryKitError(f"{paths.relative(path, project)}: not written yet; run `factory-kit export "
                              f"{paths.relative(rendered.recipe.path, project)}` (with `export.gguf: {types[0]}`)")
    return path, settings
