"""Human-facing views of recipes and what ships: `show`, `ls` (torchtune's spirit); `new` is recipe/scaffold.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich import box
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from factory_kit.core import paths
from factory_kit.recipe import catalog
from factory_kit.recipe.load import Recipe, yaml_loader
from factory_kit.core.yamlio import to_yaml

# `factory-kit ls methods|stages|hardware` reads catalog/profiles.yaml.
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


@dataclass(frozen=True)
class RecipeEntry:
    """One recipe `ls recipes` shows: its bare name, where it lives (project | shipped) and its file."""
    name: str
    where: str
    path: Path
    shadows: bool = False  # a project recipe with the name of a shipped one (the bare name picks it)


def recipe_entries(project: Path | None = None) -> list[RecipeEntry]:
    """The recipes a bare name can reach: the project's recipes/ first, then the shipped ones."""
    project_dir = Path(project or paths.project_dir()) / "recipes"
    shipped = {p.stem: p for p in sorted(paths.SHIPPED_RECIPES_DIR.glob("*.yaml"))}
    entries = {p.stem: RecipeEntry(p.stem, "project", p, p.stem in shipped) for p in sorted(project_dir.glob("*.yaml"))
               if project_dir.resolve() != paths.SHIPPED_RECIPES_DIR.resolve()}
    for stem, p in shipped.items():
        entries.setdefault(stem, RecipeEntry(stem, "shipped", p))
    return sorted(entries.values(), key=lambda e: (e.where != "project", e.name))


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


def _table(title: str, wide: bool, headers: tuple[str, ...], rows: list[tuple[str, ...]], caption: str = "",
           wrap: bool = False) -> Table:
    """Compact (fits 80 columns): one line per row; every column but the last keeps the width of its
    longest cell (ids are never cut), the last (a description) takes what is left, cut with an
    ellipsis. ``wrap``: compact, but text wraps (short tables whose every word counts). ``wide``:
    every column, text wrapped."""
    if wide or wrap:
        t = Table(title=title, **({} if wide else {"box": box.SIMPLE_HEAD, "title_justify": "left",
                                                   "pad_edge": False, "collapse_padding": True}))
        t.add_column(headers[0], no_wrap=True, min_width=max(len(row[0]) for row in rows))
        for col in headers[1:]:
            t.add_column(col)
    else:
        t = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False, caption=caption or None,
                  expand=True, collapse_padding=True)
        for i, col in enumerate(headers[:-1]):
            width = max([len(col), *(Text.from_markup(row[i]).cell_len for row in rows)])
            t.add_column(col, no_wrap=True, min_width=width)
        t.add_column(headers[-1], no_wrap=True, overflow="ellipsis", ratio=1)
    for row in rows:
        t.add_row(*row)
    return t


def listing(what: str, wide: bool = False) -> list[Table]:
    """The `factory-kit ls` tables. Compact by default (one line per row, ids whole, fits 80
    columns); ``wide``: every column."""
    tables = []
    if what in ("models", "all"):
        rows = []
        for name, fam in catalog.families().items():
            template = fam.template or "-"
            if fam.template_removed:
                template = f"[red]removed[/] ({escape(fam.fix or '')})" if wide else "[red]removed[/]"
            rows.append((name, template, fam.thinking, fam.lora_target, str(fam.cutoff_len), escape(fam.description))
                        if wide else (name, template, fam.thinking, escape(fam.description)))
        cols = ("family", "template", "thinking", *(("lora_target", "cutoff") if wide else ()), "description")
        tables.append(_table("model families (factory_kit/recipe/catalog/models.yaml)", wide, cols, rows))
    for key, table_rows in TABLES.items():
        if what in (key, "all"):
            rows = [(row.name, escape(row.description), escape(row.needs) or "-") for row in table_rows().values()]
            tables.append(_table(f"{key} (factory_kit/recipe/catalog/profiles.yaml)", wide,
                                 ("name", "what it is", "needs"), rows, wrap=True))
    if what in ("recipes", "all"):
        entries = recipe_entries()
        rows = [(e.name, e.where + ((" (shadows shipped)" if wide else "*") if e.shadows else ""),
                 *((paths.relative(e.path, paths.project_dir()),) if wide else ()), _describe(e.path))
                for e in entries]
        caption = ("* shadows the shipped recipe of that name; " if any(e.shadows for e in entries) else "") \
            + "--wide shows each file's path"
        tables.append(_table("recipes (a bare name picks the project's, then the shipped one)", wide,
                             ("recipe", "where", *(("path",) if wide else ()), "description"), rows, caption))
    return tables


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
