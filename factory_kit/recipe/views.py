"""Human-facing views of recipes and what ships: `show`, `ls`, `new` (torchtune's spirit)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from factory_kit.core import io, paths
from factory_kit.core.errors import FactoryKitError
from factory_kit.recipe import catalog
from factory_kit.recipe.load import Recipe, yaml_loader
from factory_kit.core.yamlio import to_yaml

# `factory-kit ls methods|stages|hardware` and `new` read catalog/profiles.yaml.
TABLES = {"methods": catalog.methods, "stages": catalog.stages, "hardware": catalog.hardware}


def format_recipe(r: Recipe) -> str:
    """The merged recipe as YAML, each leaf followed by `# from <file | --set | default>`."""
    lines = [f"# {r.path}  (chain: {' <- '.join(p.name for p in reversed(r.chain))})"]

    def walk(data: dict[str, Any], prefix: str, indent: int) -> None:
        for key, value in data.items():
            dotted = f"{prefix}{key}"
            pad = "  " * indent
            if isinstance(value, dict) and value and key != "llamafactory":
                lines.append(f"{pad}{key}:")
                walk(value, dotted + ".", indent + 1)
            else:
                lines.append(f"{pad}{key}: {to_yaml(value)}  # from {r.origins.get(dotted, 'default')}")

    walk(r.data, "", 0)
    return "\n".join(lines)


def recipe_files() -> list[Path]:
    seen: dict[str, Path] = {}
    for folder in (paths.SHIPPED_RECIPES_DIR, paths.project_dir() / "recipes"):
        for p in sorted(folder.glob("*.yaml")):
            seen[p.name] = p
    return sorted(seen.values(), key=lambda p: p.name)


def _describe(path: Path) -> str:
    """A recipe's description for `ls`; a broken file is listed, marked, never a traceback."""
    try:
        data = yaml_loader().load(path.read_text(encoding="utf-8"))
    except Exception as exc:  # ruamel raises many types; all mean the same to a listing
        return f"[red]broken: not valid YAML ({type(exc).__name__}); `factory-kit check {path.name}` explains[/]"
    if data is None:
        return "(empty)"
    if not isinstance(data, dict):
        return f"[red]broken: a recipe is a mapping of keys, this file holds a {type(data).__name__}[/]"
    if "model" not in data and "datasets" not in data:
        return str(data.get("description") or "(shared defaults for `extends`)")
    return escape(str(data.get("description") or ""))


def listing(what: str) -> list[Table]:
    tables = []
    if what in ("models", "all"):
        t = Table(title="model families (factory_kit/recipe/catalog/models.yaml)")
        for col in ("family", "template", "thinking", "lora_target", "cutoff", "description"):
            t.add_column(col)
        for name, fam in catalog.families().items():
            template = fam.template or "-"
            if fam.template_removed:
                template = f"[red]removed[/] ({fam.fix or ''})"
            t.add_row(name, template, fam.thinking, fam.lora_target, str(fam.cutoff_len), fam.description)
        tables.append(t)
    for key, rows in TABLES.items():
        if what in (key, "all"):
            t = Table(title=f"{key} (factory_kit/recipe/catalog/profiles.yaml)")
            t.add_column("name")
            t.add_column("what it is")
            t.add_column("needs")
            for row in rows().values():
                t.add_row(row.name, row.description, escape(row.needs) or "-")
            tables.append(t)
    if what in ("recipes", "all"):
        t = Table(title="recipes")
        t.add_column("recipe")
        t.add_column("description")
        for p in recipe_files():
            t.add_row(str(p.relative_to(p.parent.parent)), _describe(p))
        tables.append(t)
    return tables


def scaffold(model: str, method: str, stage: str, hardware: str, datasets: list[str],
             out: Path | None, name: str | None) -> Path:
    """Write a short starting recipe; values the catalog knows are left to defaults, and what
    each method, stage and hardware row of catalog/profiles.yaml adds (its `new:`) is written."""
    rows = []
    for label, value, table in (("method", method, "methods"), ("stage", stage, "stages"),
                                ("hardware", hardware, "hardware")):
        options = TABLES[table]()
        if value not in options:
            raise FactoryKitError(f"--{label} {value!r}: choose one of {', '.join(options)}")
        rows.append(options[value])
    info = catalog.resolve(model, base_dir=paths.project_dir())
    name = name or f"{Path(model).name.lower()}-{method}-{stage}"
    out = out or paths.project_dir() / "recipes" / f"{name}.yaml"
    if out.exists():
        raise FactoryKitError(f"{out} already exists; choose another --name or --out")
    fill = {"lora_target": info.family.lora_target, "cutoff_len": info.family.cutoff_len}
    default_data = rows[1].new.get("datasets") or ["tcm_qa_train"]
    learning_rate = rows[0].new.get("learning_rate", 1.0e-4)
    body = [
        f"# {name}: {method} {stage} on {model} ({info.family.name}, template {info.family.template}).",
        "# Scaffolded by `factory-kit new`; `factory-kit show` prints every value and where it came from.",
        f"description: {method} {stage} on {model}",
        f"model: {model}",
        f"method: {method}",
        f"stage: {stage}",
        f"hardware: {hardware}",
        f"datasets: [{', '.join(datasets or default_data)}]",
        f"train: {{epochs: 3, learning_rate: {to_yaml(float(learning_rate))}"
        + f", cutoff_len: {info.family.cutoff_len}, batch_size: 2, grad_accum: 8}}",
    ]
    for row in rows:
        for key, value in (row.new.get("recipe") or {}).items():
            body.append(f"{key}: {_flow(value, fill)}")
    return io.write_text(out, "\n".join(body) + "\n")


def _flow(value: Any, fill: dict[str, Any]) -> str:
    """A recipe value as one line of flow YAML; "{lora_target}" and the like filled from the family."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v, fill)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v, fill) for v in value) + "]"
    if isinstance(value, str):
        value = value.format(**fill)
    return to_yaml(value)


def key_table(markdown: bool = False) -> Table | str:
    """Every recipe key with its type, default and help line, from the schema (`factory-kit ls keys`);
    ``markdown`` gives the table docs/recipes.md holds (a test keeps the two equal)."""
    from factory_kit.recipe import schema
    from factory_kit.recipe.load import fields

    if markdown:
        return schema.markdown(fields())
    t = Table(title="recipe keys (factory_kit/recipe/schema.py)")
    t.add_column("key", no_wrap=True)
    for col in ("type", "default", "meaning"):
        t.add_column(col)
    for key, kind, default, text in schema.rows(fields()):
        style = "bold" if key in schema.SECTIONS else ("red" if default == "refused" else "")
        t.add_row(escape(key), kind, escape(default), escape(text), style=style)
    return t
