"""An Ollama ``Modelfile`` next to the GGUF: the family's chat format (catalog/ollama.yaml), its stop
words (catalog/models.yaml) and the recipe's infer parameters; then ``ollama create`` when Ollama
is installed, else the one command to run once it is."""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from factory_kit.core import io
from factory_kit.core.errors import FactoryKitError
from factory_kit.recipe import catalog

CATALOG = "ollama.yaml"


@lru_cache(maxsize=4)
def _table(path: Path, mtime: float) -> dict[str, Any]:
    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8")) or {}


def table() -> dict[str, Any]:
    path = catalog.catalog_file(CATALOG)
    return _table(path, path.stat().st_mtime)


def chat_format(template: str | None) -> tuple[str, dict[str, Any]]:
    """(format name, its entry) for a LLaMA-Factory template name."""
    data = table()
    name = data.get("templates", {}).get(template or "")
    if name is None or name not in data.get("formats", {}):
        raise FactoryKitError(f"template `{template}` has no Ollama chat format; add it under `templates:` in "
                              f"factory_kit/recipe/catalog/{CATALOG} (or set `export.ollama: false`)")
    return name, data["formats"][name]


def model_name(value: Any, recipe_name: str) -> str:
    """`export.ollama: true` -> the recipe's name; a string -> that name; checked against Ollama's rules."""
    name = recipe_name.lower() if value is True else str(value)
    name = re.sub(r"[^a-z0-9._:/-]+", "-", name.lower()) if value is True else name
    if not re.fullmatch(r"[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9._-]+)?", name):
        raise FactoryKitError(f"`export.ollama: {value}` is not an Ollama model name (lowercase letters, digits, "
                              "`.`, `_`, `-`, an optional `:tag`)")
    return name


def modelfile_text(gguf_name: str, ctx: dict[str, Any]) -> str:
    """The Modelfile for the rendered recipe context ``ctx``, pointing at ``gguf_name`` beside it."""
    fmt_name, fmt = chat_format(ctx["template"])
    family = catalog.families().get(ctx["family"])
    stops = list(family.stop_words) if family and family.stop_words else list(fmt.get("stop", []))
    template = fmt["template"]
    if '"""' in template:
        raise FactoryKitError(f"catalog/{CATALOG}: format {fmt_name}'s template contains \"\"\"")
    infer = ctx["infer"]
    lines = [f"# Written by factory-kit from {ctx['recipe_file']} (family {ctx['family']}, chat format {fmt_name}).",
             "# Load it with: ollama create NAME -f Modelfile", f"FROM ./{gguf_name}",
             f'TEMPLATE """{template}"""']
    lines += [f"PARAMETER stop {_quoted(s)}" for s in stops]
    lines += [f"PARAMETER temperature {infer['temperature']}", f"PARAMETER top_p {infer['top_p']}",
              f"PARAMETER num_predict {infer['max_new_tokens']}", f"PARAMETER num_ctx {ctx['cutoff_len']}"]
    return "\n".join(lines) + "\n"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_modelfile(gguf_file: Path, ctx: dict[str, Any]) -> Path:
    path = gguf_file.parent / "Modelfile"
    io.write_text(path, modelfile_text(gguf_file.name, ctx))
    return path


def create(name: str, modelfile: Path) -> tuple[bool, str]:
    """``ollama create name -f Modelfile`` when ``ollama`` is on PATH: (created, message)."""
    command = f"ollama create {name} -f {modelfile}"
    exe = shutil.which("ollama")
    if exe is None:
        return False, (f"Ollama is not installed here (no `ollama` on PATH): the Modelfile is ready; install Ollama "
                       f"(https://ollama.com/download) and run `{command}`")
    done = subprocess.run([exe, "create", name, "-f", modelfile.name], cwd=modelfile.parent,
                          capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise FactoryKitError(f"`{command}` failed: {last[0]}")
    return True, f"ollama model {name} created; try `ollama run {name}`"
