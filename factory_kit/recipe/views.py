"""Human-facing views of recipes and what ships: `show`, `ls`, `new` (torchtune's spirit)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from factory_kit.core import paths
from factory_kit.core.errors import FactoryKitError
from factory_kit.recipe.load import HARDWARE, METHODS, STAGES, Recipe, yaml_loader
from factory_kit.core.yamlio import to_yaml

METHOD_NOTES = {
    "lora": "low-rank adapters on a bf16/fp16 base; the default",
    "qlora": "LoRA over a 4-bit (or 8-bit) bitsandbytes base; least memory",
    "dora": "weight-decomposed LoRA (use_dora); slower, sometimes better",
    "full": "every weight trains; most memory (DeepSpeed for 7B+)",
    "freeze": "only the last N layers train",
}
STAGE_NOTES = {
    "pt": "continued pre-training on plain text",
    "sft": "supervised fine-tuning on QA / conversations / CoT",
    "dpo": "preference tuning on chosen/rejected pairs",
    "kto": "preference tuning on single answers tagged good/bad",
}
HARDWARE_NOTES = {
    "single": "one GPU (or CPU), no launcher",
    "ds-z2": "DeepSpeed ZeRO-2 (optimizer+gradients sharded), torchrun",
    "ds-z3": "DeepSpeed ZeRO-3 (parameters sharded too), torchrun",
    "ds-z3-offload": "ZeRO-3 with optimizer and parameters offloaded to CPU RAM",
    "multi-node": "torchrun across nodes (NNODES / NODE_RANK / MASTER_ADDR in launch.env)",
    "ray": "Ray Train workers (USE_RAY=1, ray_num_workers)",
}


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
    from factory_kit.recipe import catalog

    tables = []
    if what in ("models", "all"):
        t = Table(title="model families (factory_kit/catalog/models.yaml)")
        for col in ("family", "template", "thinking", "lora_target", "cutoff", "description"):
            t.add_column(col)
        for name, fam in catalog.families().items():
            template = fam.template or "-"
            if fam.template_removed:
                template = f"[red]removed[/] ({fam.fix or ''})"
            t.add_row(name, template, fam.thinking, fam.lora_target, str(fam.cutoff_len), fam.description)
        tables.append(t)
    for key, names, notes in (("methods", METHODS, METHOD_NOTES), ("stages", STAGES, STAGE_NOTES),
                              ("hardware", HARDWARE, HARDWARE_NOTES)):
        if what in (key, "all"):
            t = Table(title=key)
            t.add_column("name")
            t.add_column("what it is")
            for n in names:
                t.add_row(n, notes[n])
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
    """Write a short starting recipe; values the catalog knows are left to defaults."""
    from factory_kit.recipe import catalog

    for label, value, options in (("method", method, METHODS), ("stage", stage, STAGES),
                                  ("hardware", hardware, HARDWARE)):
        if value not in options:
            raise FactoryKitError(f"--{label} {value!r}: choose one of {', '.join(options)}")
    info = catalog.resolve(model, base_dir=paths.project_dir())
    name = name or f"{Path(model).name.lower()}-{method}-{stage}"
    out = out or paths.project_dir() / "recipes" / f"{name}.yaml"
    if out.exists():
        raise FactoryKitError(f"{out} already exists; choose another --name or --out")
    default_data = {"pt": ["tcm_herbs"], "dpo": ["tcm_pref"], "kto": ["tcm_kto"]}.get(stage, ["tcm_qa_train"])
    body = [
        f"# {name}: {method} {stage} on {model} ({info.family.name}, template {info.family.template}).",
        "# Scaffolded by `factory-kit new`; `factory-kit show` prints every value and where it came from.",
        f"description: {method} {stage} on {model}",
        f"model: {model}",
        f"method: {method}",
        f"stage: {stage}",
        f"hardware: {hardware}",
        f"datasets: [{', '.join(datasets or default_data)}]",
        "train: {epochs: 3, learning_rate: " + ("1.0e-5" if method == "full" else "1.0e-4")
        + f", cutoff_len: {info.family.cutoff_len}, batch_size: 2, grad_accum: 8}}",
    ]
    if method in ("lora", "qlora", "dora"):
        body.append(f"lora: {{rank: 16, alpha: 32, target: {info.family.lora_target}}}")
    if stage in ("dpo", "kto"):
        body.append("pref: {beta: 0.1}")
    if hardware == "multi-node":
        body.append("nodes: {count: 2, gpus_per_node: 8, master_addr: 10.0.0.1}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(body) + "\n", encoding="utf-8")
    return out
