"""Render-time checks: catch in a second what LLaMA-Factory would reject after loading a model.

Two kinds: combinations of recipe settings that cannot work together, and datasets named
by the recipe that are missing, incomplete (a ``columns`` map without a key LLaMA-Factory
needs surfaces only as "Cannot find valid samples"), or the wrong shape for the stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from factory_kit.data import registry
from factory_kit.core.errors import FactoryKitError
from factory_kit.data.samples import sample_dataset_names

# Keys LLaMA-Factory needs in a `columns` map, per formatting and kind of stage.
REQUIRED_COLUMNS = {
    ("alpaca", "pt"): ("prompt",),
    ("alpaca", "sft"): ("prompt", "response"),
    ("alpaca", "ranking"): ("prompt", "chosen", "rejected"),
    ("alpaca", "kto"): ("prompt", "response", "kto_tag"),
    ("sharegpt", "sft"): ("messages",),
    ("sharegpt", "ranking"): ("messages", "chosen", "rejected"),
    ("sharegpt", "kto"): ("messages", "kto_tag"),
}
SHAREGPT_TAGS = ("role_tag", "content_tag", "user_tag", "assistant_tag")
FORMATTINGS = ("alpaca", "sharegpt", "openai")


def check_combination(r, ctx: dict[str, Any]) -> None:
    """Settings that cannot work together fail here, with the reason."""
    d, where = r.data, str(r.path)
    method, stage, hw = d["method"], d["stage"], d["hardware"]

    def fail(msg: str) -> None:
        raise FactoryKitError(f"{where}: {msg}")

    if ctx["quant"] and method in ("full", "freeze"):
        fail(f"`quant` (bitsandbytes quantisation) needs an adapter method; `method: {method}` "
             "trains the base weights, which cannot be quantised. Use `method: qlora` or drop `quant`")
    if method == "qlora" and hw in ("ds-z3", "ds-z3-offload") and d["quant"]["bits"] == 8:
        fail("8-bit QLoRA does not work with DeepSpeed ZeRO-3; use `quant.bits: 4` or `hardware: ds-z2`")
    if d["predict"]["enabled"] and hw in ("ds-z3", "ds-z3-offload"):
        fail("`predict.enabled` (do_predict) does not work with DeepSpeed ZeRO-3; "
             "predict with `hardware: single` or `ds-z2` after training")
    if d["val_size"] and d["eval_datasets"]:
        fail("set either `val_size` (split off the training data) or `eval_datasets`, not both")
    if stage in ("dpo", "kto") and method in ("full", "freeze") and hw == "single" and (ctx["params_b"] or 0) > 3:
        fail(f"full-parameter {stage} needs a frozen reference copy of the model; "
             f"a {ctx['params_b']}B model will not fit on one GPU: use `method: lora` or a DeepSpeed profile")
    if hw == "multi-node" and d["nodes"]["count"] < 2:
        fail("`hardware: multi-node` needs `nodes.count` of 2 or more (and nodes.master_addr)")
    probs = d["mix"]["probs"]
    if probs is not None:
        if d["mix"]["strategy"] == "concat":
            fail("`mix.probs` needs `mix.strategy: interleave_under` or `interleave_over` (concat ignores them)")
        if len(probs) != len(d["datasets"]):
            fail(f"`mix.probs` has {len(probs)} values for {len(d['datasets'])} datasets; give one per dataset")
        if abs(sum(probs) - 1.0) > 1e-6:
            fail(f"`mix.probs` must sum to 1 (they sum to {sum(probs):g})")
    if d["thinking"] is not None and ctx["family"] != "custom":
        from factory_kit.recipe import catalog

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
    if d["predict"]["enabled"] and stage != "sft":
        fail(f"`predict.enabled` (predict_with_generate) works only with `stage: sft`, not {stage}; "
             "evaluate a preference or pre-trained model with `factory-kit eval`")
    if d["nodes"]["count"] > 1 and hw not in ("multi-node", "ray"):
        fail(f"`nodes.count: {d['nodes']['count']}` needs `hardware: multi-node` (torchrun across nodes) or `ray`; "
             f"`hardware: {hw}` runs on one node")
    if hw == "multi-node" and d["nodes"]["count"] >= 2 and r.origins.get("nodes.master_addr", "default") == "default":
        fail("`hardware: multi-node` needs `nodes.master_addr`: the address of node 0 that every node can reach "
             "(127.0.0.1 only works when all ranks are on this machine)")


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


def _kind(stage: str) -> str:
    return {"dpo": "ranking", "kto": "kto"}.get(stage, stage)


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
    kind = _kind(stage)
    if stage == "pt" and formatting != "alpaca":
        raise FactoryKitError(
            f"{where}: dataset `{name}` is {formatting} (conversations); `stage: pt` needs plain text "
            "(alpaca formatting with columns: {prompt: text}); import a text corpus with `factory-kit data import`"
        )
    if kind == "ranking" and not ranking:
        raise FactoryKitError(
            f"{where}: dataset `{name}` is not a preference dataset (`ranking: true` with chosen/rejected); "
            f"`stage: {stage}` needs one, e.g. import chosen/rejected pairs with `factory-kit data import`"
        )
    if kind in ("sft", "pt") and ranking:
        raise FactoryKitError(f"{where}: dataset `{name}` holds preference pairs (ranking); use it with `stage: dpo`")
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
    if ctx.get("thinking") is False and r.data["stage"] == "sft":
        think = _think_datasets(registry_dir.parent / "data" / "meta")
        with_think = [n for n in r.data["datasets"] if n in think]
        if with_think:
            fail_where = r.origins.get("thinking") if r.data["thinking"] is False else where
            raise FactoryKitError(
                f"{fail_where}: {', '.join(with_think)} hold chain-of-thought in <think> tags, but thinking is off "
                f"for this {ctx['family']} recipe, so LLaMA-Factory would strip the reasoning from every target; "
                "set `thinking: true` (or import the data with --cot-style plain/drop)")
    return formats


def _think_datasets(meta_dir: Path) -> set[str]:
    """Dataset names (splits included) imported from chain-of-thought rows with <think> tags."""
    names: set[str] = set()
    for _, meta in registry.import_metas(meta_dir):
        if meta.get("format") == "cot" and (meta.get("options") or {}).get("cot_style", "think") == "think":
            names.update(meta.get("registered") or [meta.get("name")])
    return names
