"""Render-time checks: catch in a second what LLaMA-Factory would reject after loading a model.

Two kinds: combinations of recipe settings that cannot work together, and datasets named
by the recipe that are missing, incomplete (a ``columns`` map without a key LLaMA-Factory
needs surfaces only as "Cannot find valid samples"), or the wrong shape for the stage.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from factory_kit.core import paths
from factory_kit.data import registry, store
from factory_kit.recipe import catalog, reward
from factory_kit.core.errors import FactoryKitError
from factory_kit.data.samples import sample_dataset_names

# Keys LLaMA-Factory needs in a `columns` map, per formatting and the kind of data a stage
# trains on (the stage's `data:` in catalog/profiles.yaml).
REQUIRED_COLUMNS = {
    ("alpaca", "pt"): ("prompt",),
    ("alpaca", "sft"): ("prompt", "response"),
    ("alpaca", "prompts"): ("prompt",),
    ("sharegpt", "prompts"): ("messages",),
    ("alpaca", "ranking"): ("prompt", "chosen", "rejected"),
    ("alpaca", "kto"): ("prompt", "response", "kto_tag"),
    ("sharegpt", "sft"): ("messages",),
    ("sharegpt", "ranking"): ("messages", "chosen", "rejected"),
    ("sharegpt", "kto"): ("messages", "kto_tag"),
}
SHAREGPT_TAGS = ("role_tag", "content_tag", "user_tag", "assistant_tag")
FORMATTINGS = ("alpaca", "sharegpt", "openai")


def facts(r, ctx: dict[str, Any]) -> dict[str, Any]:
    """What the `forbids` rules of catalog/profiles.yaml are written over (listed at its head)."""
    d = r.data
    method, hw = catalog.methods()[d["method"]], catalog.hardware()[d["hardware"]]
    return {
        "method": d["method"], "stage": d["stage"], "hardware": d["hardware"], "adapter": method.adapter,
        "quantised": bool(ctx["quant"]), "quant_bits": d["quant"]["bits"], "predict": d["predict"]["enabled"],
        "eval": bool(d["val_size"] or d["eval_datasets"]), "params_b": ctx["params_b"] or 0,
        "nodes": d["nodes"]["count"], "master_addr": r.origins.get("nodes.master_addr", "default") != "default",
        "distributed": hw.distributed, "reward_model_type": (ctx.get("reward_model") or {}).get("type"),
    }


def check_combination(r, ctx: dict[str, Any]) -> None:
    """Settings that cannot work together fail here, with the reason: first what the method,
    hardware and stage rows of catalog/profiles.yaml forbid, then the rules of the recipe's own keys."""
    d, where = r.data, str(r.path)
    known = facts(r, ctx)

    def fail(msg: str) -> None:
        raise FactoryKitError(f"{where}: {msg}")

    for row in (catalog.methods()[d["method"]], catalog.hardware()[d["hardware"]], catalog.stages()[d["stage"]]):
        for rule in row.forbids:
            if rule.holds(known):
                fail(rule.message(known))
    if d["val_size"] and d["eval_datasets"]:
        fail("set either `val_size` (split off the training data) or `eval_datasets`, not both")
    probs = d["mix"]["probs"]
    if probs is not None:
        if d["mix"]["strategy"] == "concat":
            fail("`mix.probs` needs `mix.strategy: interleave_under` or `interleave_over` (concat ignores them)")
        if len(probs) != len(d["datasets"]):
            fail(f"`mix.probs` has {len(probs)} values for {len(d['datasets'])} datasets; give one per dataset")
        if abs(sum(probs) - 1.0) > 1e-6:
            fail(f"`mix.probs` must sum to 1 (they sum to {sum(probs):g})")
    if d["thinking"] is not None and ctx["family"] != "custom":
        fam = catalog.families().get(ctx["family"])
        if d["thinking"] and fam is not None and fam.thinking == "none":
            fail(f"`thinking: true` but {ctx['family']} models have no thinking mode; remove it")
        if d["thinking"] is False and fam is not None and fam.thinking == "always":
            fail(f"`thinking: false` but {ctx['family']} models always think: LLaMA-Factory would strip the "
                 "<think> reasoning from the training targets; remove it (or pick a non-reasoning model)")
    if d["template"]:
        import difflib

        from factory_kit.recipe import lfargs

        known = lfargs.snapshot()["templates"]
        if d["template"] not in known:
            close = difflib.get_close_matches(d["template"], known, n=1)
            fail(f"`template: {d['template']}` is not a LLaMA-Factory template"
                 + (f"; did you mean `{close[0]}`?" if close else "; `factory-kit ls models` shows each family's"))

    check_export(r, ctx)


def check_export(r, ctx: dict[str, Any]) -> None:
    """The export block's steps need each other: GGUF needs merged weights, Ollama needs a GGUF."""
    from factory_kit.recipe.schema import GGUF_TYPES

    ex = r.data["export"]
    gguf = ex["gguf"]
    types = [t.strip().lower() for t in (gguf.split(",") if isinstance(gguf, str) else gguf or []) if str(t).strip()]
    bad = [t for t in types if t not in GGUF_TYPES]
    if bad:
        import difflib

        close = difflib.get_close_matches(bad[0], GGUF_TYPES, n=1)
        raise FactoryKitError(f"{r.where('export.gguf')}: `export.gguf: {bad[0]}` is not a GGUF type factory-kit "
                              + (f"writes (did you mean `{close[0]}`?); " if close else "writes; ")
                              + f"use one or a list of {', '.join(GGUF_TYPES)}")
    if types and ctx["adapter"] and not ex["merge"]:
        raise FactoryKitError(f"{r.where('export.merge')}: `export.gguf` converts merged weights; set "
                              "`export.merge: true` (or remove `export.gguf` to ship the adapter alone)")
    if ex["ollama"] not in (False, None) and not types:
        raise FactoryKitError(f"{r.where('export.ollama')}: Ollama loads a GGUF file; set `export.gguf` too "
                              "(e.g. `export.gguf: q4_k_m`)")

# Raw `llamafactory:` keys that shadow a recipe key: set through the raw section they would bypass the
# recipe's checks and leave export.yaml / infer.yaml (rendered from the recipe) out of step.
SHADOWED_BY_RECIPE = {
    "model_name_or_path": "model", "template": "template", "stage": "stage", "finetuning_type": "method",
    "dataset": "datasets", "eval_dataset": "eval_datasets", "dataset_dir": "datasets (dataset_info/)",
    "output_dir": "output_dir", "deepspeed": "hardware", "quantization_bit": "method: qlora + quant.bits",
    "enable_thinking": "thinking", "packing": "train.packing", "val_size": "val_size",
    "predict_with_generate": "predict.enabled", "do_predict": "predict.enabled",
}


def check_raw_keys(r) -> None:
    """Raw keys may add what the recipe does not cover, never replace what it does."""
    for key in sorted(r.data.get("llamafactory") or {}):
        if key in SHADOWED_BY_RECIPE:
            raise FactoryKitError(
                f"{r.where('llamafactory')}: `llamafactory.{key}` replaces a recipe setting; set "
                f"`{SHADOWED_BY_RECIPE[key]}` in the recipe instead (the raw section would bypass the checks and "
                "leave export.yaml / infer.yaml out of step)")
    ranges = catalog.raw_ranges()  # catalog/lf_ranges.yaml; the types are checked against lf_args.json
    for key, value in sorted((r.data.get("llamafactory") or {}).items()):
        if key in ranges and isinstance(value, (int, float)) and not isinstance(value, bool):
            wanted = catalog.out_of_range(value, ranges[key])
            if wanted:
                raise FactoryKitError(f"{r.where(f'llamafactory.{key}')}: `llamafactory.{key}: {value}` is out of "
                                      f"range: LLaMA-Factory expects {wanted} (catalog/lf_ranges.yaml)")


def check_dataset_entry(name: str, entry: dict[str, Any], stage: str, registry_dir: Path, where: str) -> str:
    """Check one dataset_info entry for a stage; returns its formatting."""
    formatting = entry.get("formatting", "alpaca")
    reg = registry.registry_path(registry_dir)
    if formatting not in FORMATTINGS:
        raise FactoryKitError(f"{reg}: dataset `{name}` has formatting {formatting!r}; use one of {', '.join(FORMATTINGS)}")
    if not any(k in entry for k in ("file_name", "hf_hub_url", "ms_hub_url", "script_url", "om_hub_url", "cloud_file_name")):
        raise FactoryKitError(f"{reg}: dataset `{name}` has no `file_name`; re-import it with `factory-kit data import`")
    if "file_name" in entry:
        data_path = Path(registry_dir) / entry["file_name"]
        if not data_path.exists():
            raise FactoryKitError(
                f"{reg}: dataset `{name}` points to {entry['file_name']} which does not exist "
                f"(looked for {data_path}); re-import it or fix `file_name`"
            )
    ranking = bool(entry.get("ranking"))
    kind = catalog.stages()[stage].data
    if kind == "pt" and formatting != "alpaca":
        raise FactoryKitError(
            f"{where}: dataset `{name}` is {formatting} (conversations); `stage: pt` needs plain text "
            "(alpaca formatting with columns: {prompt: text}); import a text corpus with `factory-kit data import`"
        )
    if kind == "ranking" and not ranking:
        raise FactoryKitError(
            f"{where}: dataset `{name}` is not a preference dataset (`ranking: true` with chosen/rejected); "
            f"`stage: {stage}` needs one, e.g. import chosen/rejected pairs with `factory-kit data import`"
        )
    if kind != "ranking" and ranking:
        fits = " or ".join(f"`stage: {s.name}`" for s in catalog.stages().values() if s.data == "ranking")
        raise FactoryKitError(f"{where}: dataset `{name}` holds preference pairs (ranking); use it with {fits}")
    if kind == "kto" and "kto_tag" not in (entry.get("columns") or {}):
        raise FactoryKitError(f"{where}: dataset `{name}` has no `columns.kto_tag`; `stage: kto` needs a kto_tag column")
    columns = entry.get("columns")
    fmt = "sharegpt" if formatting in ("sharegpt", "openai") else "alpaca"
    required = REQUIRED_COLUMNS.get((fmt, kind), ())
    if fmt == "sharegpt" and kind == "pt":
        required = ()
    if columns is not None:
        missing = [c for c in required if not columns.get(c)]
        if missing:
            raise FactoryKitError(
                f"{reg}: dataset `{name}` has a `columns` map without {', '.join(missing)}; LLaMA-Factory then "
                "finds no valid samples. Write the complete map (or re-import the dataset)"
            )
    tags = entry.get("tags")
    if fmt == "sharegpt" and tags is not None:
        missing = [t for t in SHAREGPT_TAGS if not tags.get(t)]
        if missing:
            raise FactoryKitError(f"{reg}: dataset `{name}` has a `tags` map without {', '.join(missing)}; write all four")
    return formatting


def check_datasets(r, ctx: dict[str, Any], registry_dir: Path) -> dict[str, str]:
    """Every dataset named by the recipe exists in dataset_info.json and fits the stage."""
    import difflib

    entries = registry.load(registry_dir)
    where = r.origins.get("datasets", str(r.path))
    formats = {}
    for key in ("datasets", "eval_datasets"):
        for name in r.data[key]:
            if name not in entries:
                close = difflib.get_close_matches(name, list(entries), n=1)
                hint = f"; did you mean `{close[0]}`?" if close else (
                    "; import it first with `factory-kit data import PATH --name " + name + "`"
                    + (" (it is a shipped sample: `factory-kit data samples` imports them all)"
                       if name in sample_dataset_names() else ""))
                raise FactoryKitError(
                    f"{r.origins.get(key, where)}: dataset `{name}` is not in {registry.registry_path(registry_dir)}{hint}"
                )
            formats[name] = check_dataset_entry(name, entries[name], r.data["stage"], registry_dir,
                                                r.origins.get(key, where))
    if ctx.get("thinking") is False and catalog.stages()[r.data["stage"]].think_targets:
        think = _think_datasets(paths.meta_dir(registry_dir.parent))
        with_think = [n for n in r.data["datasets"] if n in think]
        if with_think:
            fail_where = r.origins.get("thinking") if r.data["thinking"] is False else where
            raise FactoryKitError(
                f"{fail_where}: {', '.join(with_think)} hold chain-of-thought in <think> tags, but thinking is off "
                f"for this {ctx['family']} recipe, so LLaMA-Factory would strip the reasoning from every target; "
                "set `thinking: true` (or import the data with --cot-style plain/drop)")
    return formats


def combination_warnings(r, ctx: dict[str, Any]) -> list[str]:
    """What the method, stage and hardware rows of catalog/profiles.yaml ``warns`` about (settings that may
    not fit in memory): one line each; `check` goes on."""
    d, known = r.data, facts(r, ctx)
    rows = (catalog.methods()[d["method"]], catalog.hardware()[d["hardware"]], catalog.stages()[d["stage"]])
    return [f"{r.path}: {rule.message(known)}" for row in rows for rule in row.warns if rule.holds(known)]


REASONING_SCAN_BYTES = 1 << 20  # how much of a dataset file is read to see whether its answers reason
TEXT_SUFFIXES = (".json", ".jsonl", ".txt", ".csv", ".tsv")


def reasoning_of(project: Path, names: list[str], marker: str = "<think>") -> dict[str, bool | None]:
    """For each dataset name: True when its rows carry reasoning (``marker``, e.g. ``<think>``), False when
    they do not, None when that cannot be told here (not registered, hub data, binary files). An import of
    chain-of-thought rows in <think> style says so in its meta; other files are read (their first MB)."""
    registry_dir = paths.registry_dir(project)
    try:
        entries = registry.load(registry_dir)
    except FactoryKitError:  # a broken registry is `check`'s to report, with its line
        entries = {}
    think = _think_datasets(paths.meta_dir(project)) if marker == "<think>" else set()
    out: dict[str, bool | None] = {}
    for name in names:
        entry = entries.get(name)
        if entry is None or not entry.get("file_name"):
            out[name] = None
        elif name in think:
            out[name] = True
        else:
            out[name] = _file_has(registry_dir / entry["file_name"], marker)
    return out


def _file_has(path: Path, marker: str) -> bool | None:
    if path.is_dir():
        path = next(iter(sorted(p for p in path.iterdir() if p.is_file())), path)
    if not path.is_file() or path.suffix.lower() not in TEXT_SUFFIXES:
        return None
    try:
        with path.open("rb") as f:
            head = f.read(REASONING_SCAN_BYTES).decode("utf-8", errors="ignore")
    except OSError:
        return None
    return marker in head or json.dumps(marker)[1:-1] in head


def thinking_warnings(r, ctx: dict[str, Any], project: Path) -> list[str]:
    """A recipe whose model reasons (it always thinks, or `thinking: true`) trained on answers without
    reasoning: the model learns to answer without thinking (LLaMA-Factory's reasoning templates put an empty
    <think></think> block before each such answer and train on it). One warning line with the fix."""
    fam = catalog.families().get(ctx["family"])
    if fam is None or fam.think_markers is None or not catalog.stages()[r.data["stage"]].think_targets:
        return []
    on = ctx["thinking"] is True if fam.thinking == "optional" else ctx["thinking"] is not False
    if not on:
        return []
    marker = fam.think_markers[0]
    found = reasoning_of(project, list(dict.fromkeys(r.data["datasets"])), marker)
    without = [name for name, has in found.items() if has is False]
    if not without:
        return []
    if fam.thinking == "optional":
        why = "`thinking: true`"
        fix = ("set `thinking: false` for this data (LLaMA-Factory then keeps the empty block out of the loss), "
               "or train on reasoning data")
    else:
        why = f"{fam.name} models always think"
        how = ", e.g. `factory-kit data import FILE --format cot`" if marker == "<think>" else ""
        fix = (f"train on reasoning data (answers that carry {marker} reasoning{how}), or fine-tune a model that "
               "does not reason (e.g. Qwen/Qwen2.5-7B-Instruct)")
    where = r.where("thinking") if fam.thinking == "optional" else r.origins.get("datasets", str(r.path))
    names = ", ".join(f"`{n}`" for n in without)
    return [f"{where}: {names} {'holds' if len(without) == 1 else 'hold'} no reasoning ({marker} ...), but {why}: "
            "the model is trained to answer without reasoning (a reasoning template such as deepseekr1 or qwen3 "
            f"adds an empty <think></think> block to each such answer and trains on it); {fix}"]


def _think_datasets(meta_dir: Path) -> set[str]:
    """Dataset names (splits included) imported from chain-of-thought rows with <think> tags."""
    names: set[str] = set()
    for _, meta in registry.import_metas(meta_dir):
        if meta.get("format") == "cot" and (meta.get("options") or {}).get("cot_style", "think") == "think":
            names.update(meta.get("registered") or [meta.get("name")])
    return names


def package_problem(requirement: str) -> str | None:
    """Why ``requirement`` (pip syntax) is not met here, or None; reads installed metadata only."""
    from importlib import metadata

    from packaging.requirements import Requirement

    req = Requirement(requirement)
    try:
        version = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        return f"{req.name} is not installed"
    if req.specifier and not req.specifier.contains(version, prereleases=True):
        return f"{req.name} {version} is installed"
    return None


def check_launch(ctx: dict[str, Any], project: Path) -> None:
    """What `factory-kit train` checks before it launches: what this machine needs for the recipe
    (check_machine, strictly) and a reward model that its recipe has trained. Each problem is one
    line with the fix, instead of a traceback later."""
    check_machine(ctx, project, launching=True)
    rm = ctx.get("reward_model")
    why = reward.missing(reward.RewardModel(rm["path"], rm["type"], rm["recipe"]), project) if rm else None
    if why:
        raise FactoryKitError(why)


def check_machine(ctx: dict[str, Any], project: Path, *, launching: bool = False) -> list[str]:
    """What this machine lacks for the recipe, found without importing torch: a package the method,
    stage or hardware row of catalog/profiles.yaml needs that is not installed fails (one install
    fixes it). What `check` cannot be sure of is returned as warnings (an installed package of
    another version, a hub model while offline, bf16 without a GPU); with ``launching`` (train)
    those fail too, before any time is spent."""
    warnings: list[str] = []

    def problem(message: str) -> None:
        if launching:
            raise FactoryKitError(message)
        warnings.append(message)

    rows = (("method", catalog.methods()[ctx["method"]]), ("stage", catalog.stages()[ctx["stage"]]),
            ("hardware", catalog.hardware()[ctx["hardware"]]))
    for kind, row in rows:
        for requirement, fix in row.packages.items():
            missing = not importable(requirement)
            why = f"{_requirement_name(requirement)} is not installed" if missing else package_problem(requirement)
            if why:
                message = f"{ctx['recipe_file']}: `{kind}: {row.name}` needs {requirement} ({why}); {' '.join(fix.split())}"
                if missing:
                    raise FactoryKitError(message)
                problem(message)
    if ctx.get("deepspeed_check") and importable("deepspeed"):  # DeepSpeed's own config classes (imports torch)
        from factory_kit.recipe import dsconfig

        ds = ctx["deepspeed_check"]
        dsconfig.check(ds["config"], ds["train"], dsconfig.world_size(ds["env"]), ds["source"])
    launcher = _torchrun_launcher_with_space(catalog.hardware()[ctx["hardware"]])
    if launcher:
        raise FactoryKitError(f"{ctx['recipe_file']}: {launcher}")
    if ctx["hardware"] == "ray" and not _maybe_gpu(confirm=launching):
        problem(f"{ctx['recipe_file']}: {RAY_NEEDS_GPUS}")
    hub = hub_model_problem(ctx["model"], project)
    if hub:
        problem(f"{ctx['recipe_file']}: {hub} and set `model: models/NAME`")
    precision = precision_problem(ctx, confirm=launching)
    if precision:
        problem(f"{ctx['recipe_file']}: {precision}")
    return warnings


def _torchrun_launcher_with_space(hardware) -> str | None:
    """LLaMA-Factory 0.9.5 builds its torchrun command from its own file's path, split on spaces."""
    import importlib.util

    if "FORCE_TORCHRUN" not in hardware.env and not hardware.deepspeed:
        return None
    spec = importlib.util.find_spec("llamafactory")
    origin = str(spec.origin) if spec and spec.origin else ""
    if " " not in origin:
        return None
    return (f"`hardware: {hardware.name}` launches through torchrun, whose command line LLaMA-Factory 0.9.5 "
            f"splits on spaces, and its own path has one ({origin}); install it in a folder without spaces")


def _requirement_name(requirement: str) -> str:
    from packaging.requirements import Requirement

    return Requirement(requirement).name


def importable(requirement: str) -> bool:
    """Whether the package of ``requirement`` (pip syntax) can be imported here, without importing it
    (a leftover dist-info without its module does not count)."""
    import importlib.util

    module = _requirement_name(requirement).lower().replace("-", "_")
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


_WINDOWS_PATH = re.compile(r"^[A-Za-z]:[\\/]|\\")
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")  # org/name: one slash


def check_model_path(model: str, project: Path, where: str) -> None:
    """`model` must be a model folder here, or read as a Hugging Face id (``org/name``: one slash, no
    backslash, no drive). A Windows path, or a local-looking path that is not a folder, would
    otherwise pass as a hub id and end in "Failed to load tokenizer" after the launch."""
    text = str(model).strip()
    if not text:
        return  # the schema says `model` is required
    name = re.split(r"[\\/]", text.rstrip("\\/"))[-1] or "NAME"
    if os.name != "nt" and _WINDOWS_PATH.search(text):
        raise FactoryKitError(
            f"{where}: `model: {text}` is a Windows path, which this machine cannot open; copy the model here "
            f"and set `model:` to its folder (e.g. models/{name}), or to a Hugging Face id (org/name)")
    folder = Path(text).expanduser()
    if not folder.is_absolute():
        folder = project / folder
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise FactoryKitError(f"{where}: `model: {text}` is a folder without config.json ({folder}), not a "
                                  "model; point `model:` at the folder that holds config.json and the weights")
        return
    if text.startswith(("/", "./", "../", "~")) or not (HUB_ID.match(text) or "/" not in text):
        raise FactoryKitError(
            f"{where}: `model: {text}` is not a folder here (looked for {folder}) and cannot be a Hugging Face id "
            f"(org/name); fix the path, or download the model: `hf download ORG/NAME --local-dir models/{name}` "
            f"and set `model: models/{name}`")


def hub_offline() -> bool:
    """Whether the Hugging Face hub is switched off for this process and its children."""
    return any(os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on")
               for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_cached(model_id: str) -> bool:
    """Whether the local Hugging Face cache holds a snapshot of ``model_id`` with its config.json."""
    from huggingface_hub import constants  # the cache folder as the hub library resolves it (cheap)

    repo = Path(constants.HF_HUB_CACHE) / ("models--" + model_id.replace("/", "--"))
    return any(repo.glob("snapshots/*/config.json"))


def hub_model_problem(model: str, project: Path) -> str | None:
    """Why a hub model cannot be loaded here (hub offline and not in the local cache), or None;
    local folders and reachable hubs are fine. The caller adds how to point at a local copy."""
    text = str(model).strip()
    folder = Path(text).expanduser()
    if (folder if folder.is_absolute() else project / folder).is_dir() or not hub_offline() or hub_cached(text):
        return None
    return (f"model {text} is not a folder here, and as a Hugging Face id it is not in the local cache while the "
            f"hub is offline (HF_HUB_OFFLINE=1); download it where the hub is reachable "
            f"(`hf download {text} --local-dir models/NAME`), copy it here")


GPU_TOOLS = ("nvidia-smi", "rocm-smi", "npu-smi", "xpu-smi", "hl-smi")  # a driver's tool on PATH: maybe a GPU


# Measured with LLaMA-Factory 0.9.5 + Ray 2.60 on a machine without GPUs: the run waits forever at pg.ready().
RAY_NEEDS_GPUS = ("`hardware: ray` needs a GPU on the machine that launches it: without one LLaMA-Factory 0.9.5 "
                  "counts the cluster's CPUs as its devices and asks 10 CPUs for each, a placement group no "
                  "cluster can satisfy, so the run would wait forever; for several processes on CPUs use "
                  "`hardware: ddp` with `nodes.backend: gloo`")


def _maybe_gpu(*, confirm: bool) -> bool:
    """A GPU driver's tool on PATH (or /dev/nvidia0): maybe a GPU; ``confirm`` asks torch (seconds)."""
    import shutil

    if any(shutil.which(tool) for tool in GPU_TOOLS) or Path("/dev/nvidia0").exists():
        return not confirm or _torch_has_bf16_device()
    return confirm and _torch_has_bf16_device()


def precision_problem(ctx: dict[str, Any], *, confirm: bool = False) -> str | None:
    """bf16 on a machine without a GPU that has it: LLaMA-Factory (transformers) refuses that only after
    its imports, with a traceback. No GPU tool on PATH says "probably none"; ``confirm`` asks torch
    (seconds, so only at train, and only then)."""
    import shutil
    import sys

    raw = ctx.get("overrides") or {}
    if not (ctx.get("precision") == "bf16" or raw.get("bf16") or raw.get("pure_bf16")):
        return None
    if sys.platform == "darwin" or any(shutil.which(tool) for tool in GPU_TOOLS) or Path("/dev/nvidia0").exists():
        return None
    if confirm and _torch_has_bf16_device():
        return None
    return ("`precision: bf16` needs a GPU with bf16 and this machine has none; to train on the CPU set "
            "`precision: fp32` (--set precision=fp32)")


def _torch_has_bf16_device() -> bool:
    try:
        import torch
    except ImportError:
        return False
    xpu = getattr(torch, "xpu", None)
    return bool(torch.cuda.is_available() or (xpu is not None and xpu.is_available())
                or torch.backends.mps.is_available())


def benchmark_files(project: Path) -> dict[str, Path]:
    """The benchmarks `factory-kit eval RECIPE` scores by default (recipes name none of their own):
    every ``data/benchmarks/NAME.jsonl`` of the project, few-shot ``NAME.dev.jsonl`` files aside."""
    folder = paths.benchmark_dir(project)
    if not folder.is_dir():
        return {}
    return {p.name[:-len(".jsonl")]: p for p in sorted(folder.glob("*.jsonl")) if not p.name.endswith(".dev.jsonl")}


def _import_record(project: Path, name: str) -> tuple[str | None, dict[str, Any] | None, Path | None]:
    """The import that made ``name``: its own ``data/meta/NAME.json``, else the record whose
    ``registered`` lists it (a split: ``tcm_qa_train`` -> tcm_qa). (owner, meta, meta file)."""
    meta = store.read_meta(project, name)
    if meta is not None:
        return name, meta, store.meta_file(project, name)
    for path, other in registry.import_metas(paths.meta_dir(project)):
        if name in (other.get("registered") or []):
            return path.stem, other, path
    return None, None, None


def _decontam_record(project: Path, name: str) -> tuple[str, dict[str, Any] | None, float | None]:
    """(the dataset to decontaminate, its `decontaminated` record or None, when the record was
    written). An import's record lives in its meta (a re-import drops it); a hand-registered
    dataset has only the report ``data/decontam/NAME.json``."""
    owner, meta, meta_path = _import_record(project, name)
    if meta is not None:
        record = meta.get("decontaminated")
        return owner, record if isinstance(record, dict) else None, _mtime(meta_path)
    report_path = paths.data_dir(project) / "decontam" / f"{name}.json"
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return name, None, None
    usable = isinstance(report, dict) and report.get("in_place") and not report.get("dry_run")
    return name, report if usable else None, _mtime(report_path)


def _mtime(path: Path | None) -> float | None:
    try:
        return path.stat().st_mtime if path is not None else None
    except OSError:
        return None


def _started(record: dict[str, Any], written: float | None) -> float | None:
    """When decontamination read the eval items (its ``at`` stamp, local time)."""
    try:
        return datetime.strptime(str(record.get("at")), "%Y%m%d-%H%M%S-%f").timestamp()
    except ValueError:
        return written


def _stale_reasons(project: Path, name: str, record: dict[str, Any] | None, written: float | None, data_path: Path,
                   benches: dict[str, Path]) -> list[str]:
    """Why ``record`` does not cover each benchmark: none, not against it, or older than a file."""
    if record is None:
        return [(f"was never decontaminated against benchmark {', '.join(benches)}"
                 f" ({', '.join(paths.relative(p, project) for p in benches.values())})")]
    if written is not None and (_mtime(data_path) or 0) > written:
        return [f"changed after it was decontaminated (benchmark {', '.join(benches)})"]
    covered = set(record.get("against") or []) if name in (record.get("datasets") or [name]) else set()
    started = _started(record, written)
    never = [b for b in benches if b not in covered]
    older = [b for b in benches if b in covered and started is not None and (_mtime(benches[b]) or 0) > started]
    reasons = [(f"was never decontaminated against benchmark {', '.join(never)}"
                f" ({', '.join(paths.relative(benches[b], project) for b in never)})")] if never else []
    if older:
        reasons.append(f"was decontaminated against {', '.join(older)} before "
                       + ", ".join(paths.relative(benches[b], project) for b in older) + " last changed")
    return reasons


def decontamination_warnings(r, project: Path) -> list[str]:
    """One line per training dataset that was never decontaminated against a benchmark the
    recipe's evaluation scores (see benchmark_files), or whose record is older than the benchmark
    file or than the dataset's file, with the command that fixes it. A warning, never an error:
    the data may be clean, and only the user knows whether the exam is the one that matters."""
    benches = benchmark_files(project)
    if not benches:
        return []
    registry_dir = paths.registry_dir(project)
    entries = registry.load(registry_dir)
    warnings = []
    for name in dict.fromkeys(r.data["datasets"]):
        file_name = (entries.get(name) or {}).get("file_name")
        if not file_name:
            continue  # hub datasets: decontaminate reads local files only
        owner, record, written = _decontam_record(project, name)
        applies = [b for b in benches if b not in (name, owner)]  # an exam's own splits are held out
        if not applies:
            continue
        reasons = _stale_reasons(project, name, record, written, registry_dir / file_name, {b: benches[b] for b in applies})
        if reasons:
            splits = f" (it cleans {owner} and its splits)" if owner != name else ""
            warnings.append(
                f"{r.origins.get('datasets', str(r.path))}: training dataset `{name}` {'; '.join(reasons)}; "
                "`factory-kit eval` scores the model on that exam, so a training row that copies an item would "
                f"inflate the score. Run `factory-kit data decontaminate {owner} {' '.join(f'--against {b}' for b in applies)}`{splits}")
    return warnings
