"""The recipe's keys as typed field definitions, each with a one-line help.

One table feeds everything that needs to know the keys: validation and defaults
(``recipe.load``), ``factory-kit ls keys`` and the key table in ``docs/recipes.md``
(a test keeps the doc equal to :func:`markdown`). Like LLaMA-Factory's ``hparams``
dataclasses, but small: the recipe is the short layer above LLaMA-Factory's ~350 keys.

A field's ``choices`` may name a knowledge table (``"methods"``, ``"stages"``,
``"hardware"``) instead of listing values; :func:`bind` fills those in from the
profile table (catalog/profiles.yaml, read by ``recipe.load.fields``), so the names
live in one place. A key that is known but does nothing yet is ``refused``: a recipe
that sets it fails with what to use instead.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

from factory_kit.core.yamlio import to_yaml

NUM = (int, float)


@dataclass(frozen=True)
class Range:
    """A value rule checked after defaults are filled: ``test`` passes or the message is shown."""

    test: Callable[[Any], bool]
    message: str  # follows "`key: value` "
    shown: str  # short form for the key table


GGUF_TYPES = ("f16", "q8_0", "q5_k_m", "q4_k_m")  # what `export.gguf` may list (ship/llamacpp.py writes them)
POSITIVE = Range(lambda v: v > 0, "must be greater than 0", "> 0")
FRACTION = Range(lambda v: 0 <= v < 1, "must be a fraction in [0, 1)", "in [0, 1)")
PORT = Range(lambda v: 1 <= v <= 65535, "is not a TCP port (1-65535); the default is 29500", "1-65535")
LEARNING_RATE = Range(lambda v: 0 < v < 1, "must be in (0, 1), e.g. 1.0e-4 for adapters or 1.0e-5 for full",
                      "in (0, 1)")
LAYERS = Range(lambda v: v != 0, "trains nothing; use n > 0 for the last n layers or n < 0 for the first |n|",
               "not 0")
# The order ranges are checked in (one error is reported: the first one found).
RANGE_ORDER = (LAYERS, PORT, LEARNING_RATE, POSITIVE, FRACTION)


@dataclass(frozen=True)
class Field:
    """One recipe key. ``key`` is dotted (``train.epochs``); a dot means a section."""

    key: str
    types: tuple[type, ...]
    default: Any
    help: str
    choices: tuple | str | None = None  # allowed values, or a table name that bind() resolves
    range: Range | None = None
    required: bool = False
    shown_default: str | None = None  # for the key table when the real default is computed at render
    refused: str | None = None  # the key is known but does nothing yet: why, and what to use instead
    table: str | None = None  # set by bind(): the table the choices came from (`factory-kit ls <table>`)
    items: tuple[type, ...] | None = None  # for a list: the type of its items (checked at load)

    @property
    def name(self) -> str:
        return self.key.rpartition(".")[2]

    @property
    def section(self) -> str:
        return self.key.rpartition(".")[0]


def key(dotted: str, types: type | tuple[type, ...], default: Any, help: str, **kw: Any) -> Field:
    return Field(dotted, types if isinstance(types, tuple) else (types,), default, help, **kw)


def refuse(dotted: str, types: type | tuple[type, ...], why: str) -> Field:
    """A key recipes may not set: ``why`` says what to use instead (it follows "`key` ")."""
    return key(dotted, types, None, why, refused=why)


CATALOG = "from the model catalog"

# Sections (mappings of keys) and what they are for, in the order the recipe shows them.
SECTIONS = {
    "mix": "how several training datasets combine",
    "train": "the training loop (LLaMA-Factory's trainer arguments)",
    "lora": "adapters for `method: lora`, `qlora`, `dora`",
    "quant": "a quantised base model (`method: qlora`, or 8-bit LoRA)",
    "freeze": "partial training for `method: freeze`",
    "pref": "preference tuning (`stage: dpo`, `kto`)",
    "nodes": "machines and processes for `ds-*`, `multi-node` and `ray`",
    "predict": "generation on the eval data after training",
    "export": "`factory-kit export`: merge, GGUF, Ollama; `factory-kit push`: the Hub",
    "infer": "`factory-kit chat` and `serve`",
}

FIELDS: tuple[Field, ...] = (
    key("extends", str, None, "parent recipe, relative to this file; maps merge, lists replace"),
    key("description", str, "", "one line shown by `factory-kit ls recipes`"),
    key("model", str, None, "HF id or local folder (relative to the project); its family comes from the catalog",
        required=True),
    key("template", str, None, "force a LLaMA-Factory chat template (bypasses the catalog)",
        shown_default=CATALOG),
    key("method", str, "lora", "how the weights train (`factory-kit ls methods`)", choices="methods"),
    key("stage", str, "sft", "what the training does (`factory-kit ls stages`)", choices="stages"),
    key("reward_model", str, None, "for `stage: ppo`: a reward-model recipe (`stage: rm`, e.g. tcm-rm.yaml), "
        "its trained folder, or an http(s) URL"),
    key("datasets", list, None, "training dataset names in `dataset_info/dataset_info.json`; `[a, b]` or `a,b`",
        required=True, items=(str,)),
    key("eval_datasets", list, [], "eval dataset names, scored during training (not with `val_size`)", items=(str,)),
    key("val_size", NUM, 0.0, "split this fraction off the training data for eval (not with `eval_datasets`)",
        range=FRACTION),
    key("mix.strategy", str, "concat", "concatenate the datasets, or interleave them (by `mix.probs`)",
        choices=("concat", "interleave_under", "interleave_over", "interleave_once")),
    key("mix.probs", list, None, "sampling probability per dataset when interleaving, e.g. [0.8, 0.2]; sums to 1",
        items=NUM),
    key("hardware", str, "single", "where it runs (`factory-kit ls hardware`)", choices="hardware"),
    key("deepspeed_config", str, None, "your own DeepSpeed JSON (relative to the project), used instead of the "
        "rendered one with a `ds-*` hardware; checked by DeepSpeed's config classes", shown_default="rendered"),
    key("precision", str, "bf16", "training dtype; fp32 on machines without a GPU",
        choices=("bf16", "fp16", "fp32")),
    key("thinking", bool, None, "`enable_thinking` for hybrid reasoning models (Qwen3); off for sft unless set",
        shown_default=CATALOG),
    key("output_dir", str, None, "where the trained adapter or model is written",
        shown_default="`outputs/<recipe>`"),
    key("overwrite", bool, False, "replace a previous run in `output_dir` (as `train --overwrite`)"),
    key("train.epochs", NUM, 3.0, "passes over the training data", range=POSITIVE),
    key("train.max_steps", int, None, "stop after this many optimizer steps (wins over epochs)", range=POSITIVE),
    key("train.learning_rate", NUM, 1.0e-4, "peak learning rate; about 1e-4 for adapters, 1e-5 for full",
        range=LEARNING_RATE),
    key("train.cutoff_len", int, None, "tokens per example; longer examples are cut", range=POSITIVE,
        shown_default=CATALOG),
    key("train.batch_size", int, 2, "examples per GPU per step (training and eval)", range=POSITIVE),
    key("train.grad_accum", int, 8, "steps accumulated into one optimizer update", range=POSITIVE),
    key("train.scheduler", str, "cosine", "learning-rate schedule (`lr_scheduler_type`: cosine, linear...)"),
    key("train.warmup_ratio", NUM, 0.1, "share of the steps that warm the learning rate up", range=FRACTION),
    key("train.weight_decay", NUM, 0.0, "AdamW weight decay"),
    key("train.max_grad_norm", NUM, 1.0, "gradient clipping norm"),
    key("train.max_samples", int, None, "use at most this many examples per dataset (quick trials)",
        range=POSITIVE),
    key("train.logging_steps", int, 10, "log the loss every N steps", range=POSITIVE),
    key("train.save_steps", int, 500, "write a checkpoint every N steps", range=POSITIVE),
    key("train.save_total_limit", int, 3, "keep only the newest N checkpoints in `output_dir` (older ones are "
        "deleted; LLaMA-Factory's `save_total_limit`)", range=POSITIVE),
    key("train.eval_steps", int, 500, "evaluate every N steps (when there is eval data)", range=POSITIVE),
    key("train.seed", int, 42, "random seed"),
    key("train.gradient_checkpointing", bool, True, "recompute activations to save memory (slower)"),
    key("train.packing", bool, None, "pack short examples into full-length sequences",
        shown_default="LLaMA-Factory's (pt packs, sft does not)"),
    key("train.workers", int, 4, "processes that tokenize the data; unset, `train` uses one per CPU (at most 16; "
        "1 for data under 4 MB)", range=POSITIVE, shown_default="4 in build/, sized by `train`"),
    key("train.tokenized_cache", bool, True, "`train` reuses the tokenised data of an earlier run with the same "
        "data, tokenizer and data keys (`.cache/tokenized/`; LLaMA-Factory's `tokenized_path`)"),
    key("train.plot_loss", bool, True, "save loss curve images in `output_dir`"),
    key("lora.rank", int, 16, "adapter rank: its size and capacity", range=POSITIVE),
    key("lora.alpha", int, 32, "adapter scaling, usually twice the rank", range=POSITIVE),
    key("lora.dropout", NUM, 0.05, "dropout on the adapter layers", range=FRACTION),
    key("lora.target", str, None, "modules that get adapters: `all` or comma-separated names",
        shown_default=CATALOG),
    key("quant.bits", int, 4, "bits of the quantised base model (bitsandbytes)", choices=(4, 8)),
    key("quant.type", str, "nf4", "4-bit data type", choices=("nf4", "fp4")),
    key("quant.double", bool, True, "quantise the 4-bit quantisation constants too (less memory)"),
    key("freeze.trainable_layers", int, 2, "train the last n layers (n > 0) or the first |n| (n < 0)",
        range=LAYERS),
    key("freeze.trainable_modules", str, "all", "modules that train in those layers: `all` or names"),
    key("pref.beta", NUM, 0.1, "how far the model may move from the reference model", range=POSITIVE),
    key("pref.loss", str, "sigmoid", "dpo loss variant",
        choices=("sigmoid", "hinge", "ipo", "kto_pair", "orpo", "simpo")),
    key("pref.ftx", NUM, 0.0, "weight of an added supervised loss on the preferred answers"),
    key("nodes.count", int, 1, "machines (`hardware: multi-node` or `ray`)", range=POSITIVE),
    key("nodes.gpus_per_node", int, 1, "GPUs per machine (NPROC_PER_NODE)", range=POSITIVE),
    key("nodes.gpu", str, None, "the GPU each process runs on (`factory-kit plan --gpu` names them: rtx4090, "
        "a100-80, h100...): `check` warns when the recipe does not fit it", shown_default="the hardware profile's"),
    key("nodes.master_addr", str, "127.0.0.1", "address of node 0 (MASTER_ADDR); needed for multi-node"),
    key("nodes.master_port", int, 29500, "TCP port on node 0 (MASTER_PORT)", range=PORT),
    key("nodes.backend", str, None, "torch.distributed backend for multi-node (`ddp_backend`)",
        choices=("nccl", "gloo"), shown_default="torch's"),
    key("nodes.ray_workers", int, 1, "Ray Train workers (`hardware: ray`)", range=POSITIVE),
    key("nodes.ray_address", str, None, "an existing Ray cluster to join (`auto`, `HOST:6379`, `ray://HOST:10001`); "
        "unset: a local one sized to `nodes.gpus_per_node` starts with the run", shown_default="local cluster"),
    key("predict.enabled", bool, False, "after training, generate answers for the eval data and score them (sft)"),
    key("predict.max_new_tokens", int, 512, "length limit of those answers, in tokens", range=POSITIVE),
    key("export.merge", bool, True, "merge the adapter into the base model; `false` ships the adapter alone "
        "(GGUF and Ollama need the merge)"),
    key("export.dir", str, None, "where `factory-kit export` writes the merged model",
        shown_default="`<output_dir>/merged`"),
    key("export.size_gb", int, 5, "largest shard of the merged model, in GB", range=POSITIVE),
    key("export.gguf", (str, list), None, "GGUF files for llama.cpp / Ollama in `<output_dir>/gguf/`: "
        "f16, q8_0, q5_k_m, q4_k_m, or a list (the `gguf` extra)", items=(str,)),
    key("export.gguf_pre_tokenizer", str, None, "llama.cpp pre-tokenizer for a tokenizer its converter does not "
        "recognise (e.g. qwen2, llama-bpe, gpt-2)"),
    key("export.ollama", (bool, str), False, "write an Ollama Modelfile beside the first GGUF and `ollama create` "
        "it (`true`: named after the recipe, or the model name)"),
    key("export.hub_repo", str, None, "the Hub repo `factory-kit push` / `export --push` uploads to "
        "(token from HF_TOKEN)"),
    key("export.hub_private", bool, True, "create the Hub repo private"),
    key("infer.backend", str, "huggingface", "inference engine", choices=("huggingface", "vllm", "sglang")),
    key("infer.max_new_tokens", int, 512, "answer length limit, in tokens", range=POSITIVE),
    key("infer.temperature", NUM, 0.7, "sampling temperature"),
    key("infer.top_p", NUM, 0.9, "nucleus sampling threshold"),
    key("llamafactory", dict, {}, "raw LLaMA-Factory train keys, merged last and checked like the rest"),
)


# Names users type for a recipe key (LLaMA-Factory's own key names, common short forms): an unknown key
# that is one of these gets "did you mean" the recipe key, in `--set` and in recipe files alike.
ALIASES = {
    "lr": "train.learning_rate", "num_train_epochs": "train.epochs", "epoch": "train.epochs",
    "per_device_train_batch_size": "train.batch_size", "bs": "train.batch_size", "batch": "train.batch_size",
    "gradient_accumulation_steps": "train.grad_accum", "gradient_accumulation": "train.grad_accum",
    "max_length": "train.cutoff_len", "max_seq_length": "train.cutoff_len", "seq_len": "train.cutoff_len",
    "cutoff": "train.cutoff_len", "lr_scheduler_type": "train.scheduler", "warmup": "train.warmup_ratio",
    "preprocessing_num_workers": "train.workers", "max_checkpoints": "train.save_total_limit",
    "lora_rank": "lora.rank", "r": "lora.rank", "lora_alpha": "lora.alpha", "lora_dropout": "lora.dropout",
    "lora_target": "lora.target", "target_modules": "lora.target", "quantization_bit": "quant.bits",
    "pref_beta": "pref.beta", "beta": "pref.beta", "pref_loss": "pref.loss", "pref_ftx": "pref.ftx", "dataset": "datasets",
    "eval_dataset": "eval_datasets", "model_name_or_path": "model", "base_model": "model",
    "finetuning_type": "method", "enable_thinking": "thinking", "deepspeed": "hardware",
    "mix_strategy": "mix.strategy", "interleave_probs": "mix.probs",
}


def bind(tables: dict[str, tuple], fields: tuple[Field, ...] = FIELDS) -> tuple[Field, ...]:
    """Fields with table-named ``choices`` (``"methods"``) replaced by the table's names."""
    return tuple(replace(x, choices=tuple(tables[x.choices]), table=x.choices) if isinstance(x.choices, str)
                 else x for x in fields)


def tree(fields: tuple[Field, ...]) -> dict[str, Any]:
    """Nested ``{key: Field | {key: Field}}`` in recipe order (sections where their first key is)."""
    out: dict[str, Any] = {}
    for x in fields:
        node = out
        for part in x.section.split(".") if x.section else ():
            node = node.setdefault(part, {})
        node[x.name] = x
    return out


TYPE_LABELS = {int: "integer", float: "number", str: "text", bool: "true/false", list: "list", dict: "mapping"}


def type_label(x: Field) -> str:
    if x.types == NUM:
        return "number"
    return " or ".join(TYPE_LABELS[t] for t in x.types)


def default_label(x: Field) -> str:
    if x.refused:
        return "refused"
    if x.required:
        return "required"
    return x.shown_default or ("-" if x.default is None else to_yaml(x.default))


def meaning(x: Field) -> str:
    """The help line, with the allowed values or range when there are any. Values from a table are
    left to `factory-kit ls <table>`, so adding a row there changes no doc."""
    text = x.help.removeprefix("is ") if x.refused else x.help
    if x.choices and not isinstance(x.choices, str) and not x.table:
        text += f"; one of {', '.join(f'`{c}`' for c in x.choices)}"
    if x.range:
        text += f"; {x.range.shown}"
    return text


def rows(fields: tuple[Field, ...]) -> list[tuple[str, str, str, str]]:
    """(key, type, default, meaning) per key, each section headed by its own row."""
    out: list[tuple[str, str, str, str]] = []
    seen: set[str] = set()
    for x in fields:
        if x.section and x.section not in seen:
            seen.add(x.section)
            out.append((x.section, "mapping", "", SECTIONS[x.section]))
        out.append((x.key, type_label(x), default_label(x), meaning(x)))
    return out


def markdown(fields: tuple[Field, ...]) -> str:
    """The key table of docs/recipes.md (a test keeps the doc equal to this)."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for name, kind, default, text in rows(fields):
        cell = f"**`{name}`**" if name in SECTIONS else f"`{name}`"
        text = text.replace("|", "\\|")  # `|n|` in a help line must not split the cell
        lines.append(f"| {cell} | {kind} | {default} | {text} |")
    return "\n".join(lines) + "\n"
