"""GPU memory before launch: what a recipe needs per GPU, whether it fits, and what makes it fit.

Counts, per device, the weights, gradients, optimizer states and activations (with the loss's
vocabulary-sized logits) of the recipe's model at its micro-batch, ``cutoff_len``, precision,
method (LoRA, QLoRA 4/8-bit, DoRA, freeze, full), gradient checkpointing, ZeRO stage, offload
and GPU count, plus the CUDA context and allocator fragmentation. The model's shape comes from
its config.json (a local folder, or the Hugging Face cache), else from catalog/architectures.yaml.
The constants live in catalog/memory.yaml and the GPUs in catalog/gpus.yaml: knowledge as data.
No torch: `render` and `check` run this on their hot path.

The activations are an upper bound: every example is taken at ``cutoff_len`` (with packing that
is exact). It is an estimate for choosing hardware, good to about 20%, not an allocator trace.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from factory_kit.core.errors import FactoryKitError
from factory_kit.recipe import catalog

GIB = 1024 ** 3
LORA_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@lru_cache(maxsize=16)
def _load(path: Path, mtime: float) -> dict:
    """PyYAML's C loader: ~100x faster than ruamel's pure-Python one, and `render` reads these three files
    on every run (they hold only numbers, names and quoted size tags: YAML 1.1 and 1.2 read them alike)."""
    import yaml

    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    except yaml.YAMLError as exc:
        raise FactoryKitError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from exc
    if not isinstance(doc, dict):
        raise FactoryKitError(f"{path}: a mapping of keys was expected")
    return doc


def _yaml(name: str) -> tuple[dict, Path]:
    """A catalog file (the one in $FACTORY_KIT_CATALOG when it has it), read once per change."""
    path = catalog.catalog_file(name)
    return _load(path, path.stat().st_mtime), path


MEMORY_KEYS = ("quant_bytes", "adam_state_bytes", "zero_optimizer_bytes", "logits_bytes", "hidden_saved",
               "cuda_context_gb", "fragmentation", "zero3_live_layers")


def constants() -> dict:
    """catalog/memory.yaml: bytes per state, overheads, the stage factors, the order of fixes."""
    doc, path = _yaml("memory.yaml")
    missing = [k for k in MEMORY_KEYS if k not in doc]
    if missing:
        raise FactoryKitError(f"{path}: needs `{missing[0]}` (see the head of the shipped memory.yaml)")
    unknown = [f for f in doc.get("fixes") or () if f not in FIXES]
    if unknown:
        raise FactoryKitError(f"{path}: `fixes` names unknown fix `{unknown[0]}`; known: {', '.join(FIXES)}")
    return doc


# ---- GPUs --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Gpu:
    key: str
    name: str
    memory_gb: float
    bf16_tflops: float | None = None
    aliases: tuple[str, ...] = ()
    match: tuple[str, ...] = ()


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", str(name).lower()).replace("nvidia", "").replace("geforce", "")


def gpus() -> dict[str, Gpu]:
    """catalog/gpus.yaml, in file order; a row without `name` or a positive `memory_gb` fails naming it."""
    doc, path = _yaml("gpus.yaml")
    out = {}
    for key, row in (doc.get("gpus") or {}).items():
        memory = row.get("memory_gb") if isinstance(row, dict) else None
        if not isinstance(memory, (int, float)) or memory <= 0 or not row.get("name"):
            raise FactoryKitError(f"{path}: gpus.{key} needs `name` and `memory_gb` (GiB, as nvidia-smi reports)")
        out[str(key)] = Gpu(str(key), str(row["name"]), float(memory), row.get("bf16_tflops"),
                            tuple(str(a) for a in row.get("aliases") or ()), tuple(row.get("match") or ()))
    return out


def find_gpu(name: str, where: str = "--gpu") -> Gpu:
    """A GPU by its key, name or alias ("RTX 4090", "a100", "H100-80"); unknown -> one line with the list."""
    want = _norm(name)
    for gpu in gpus().values():
        if want in {_norm(gpu.key), _norm(gpu.name), *(_norm(a) for a in gpu.aliases)}:
            return gpu
    names = [g.key for g in gpus().values()]
    close = difflib.get_close_matches(str(name).lower(), names, n=1)
    hint = f"did you mean `{close[0]}`? " if close else ""
    other = " (or give its memory: `--gpu-mem GB`)" if where == "--gpu" else " (catalog/gpus.yaml)"
    raise FactoryKitError(f"{where}: unknown GPU `{name}`; {hint}known: {', '.join(names)}{other}")


def gpu_for_device(device_name: str, memory_gb: float) -> Gpu:
    """The catalog row of a GPU torch reports (the longest `match` in its name wins: H200 over H20),
    with the memory the device reports; else a row made from that memory."""
    found = [(len(m), gpu) for gpu in gpus().values() for m in gpu.match if m.lower() in device_name.lower()]
    if found:
        gpu = max(found, key=lambda pair: pair[0])[1]
        return replace(gpu, memory_gb=round(memory_gb, 1) or gpu.memory_gb)
    return Gpu("custom", device_name, round(memory_gb, 1))


def custom_gpu(memory_gb: float) -> Gpu:
    if memory_gb <= 0:
        raise FactoryKitError(f"--gpu-mem {memory_gb:g}: give the GPU's memory in GB, e.g. --gpu-mem 24")
    return Gpu("custom", f"{memory_gb:g} GB GPU", float(memory_gb))


# ---- Model shapes ------------------------------------------------------------------------------

SHORT_KEYS = {"hidden": "hidden_size", "layers": "num_hidden_layers", "heads": "num_attention_heads",
              "kv_heads": "num_key_value_heads", "intermediate": "intermediate_size", "vocab": "vocab_size",
              "tied": "tie_word_embeddings", "head_dim": "head_dim"}


@dataclass(frozen=True)
class Shape:
    """A decoder's sizes (config.json's keys, shortened); parameter counts follow from them."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    head_dim: int = 0
    tied: bool = False
    experts: int = 0  # MoE: routed experts (all hold weights); active: experts per token
    active: int = 0
    source: str = ""

    @property
    def hd(self) -> int:
        return self.head_dim or self.hidden // self.heads

    def module_dims(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each linear layer in one decoder layer, as LoRA targets name them."""
        h, q, kv, i = self.hidden, self.heads * self.hd, self.kv_heads * self.hd, self.intermediate
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    @property
    def layer_params(self) -> int:
        dims = self.module_dims()
        attention = sum(a * b for m, (a, b) in dims.items() if m in LORA_MODULES[:4])
        mlp = sum(a * b for m, (a, b) in dims.items() if m in LORA_MODULES[4:])
        return attention + mlp * max(self.experts, 1) + 2 * self.hidden

    @property
    def embed_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied else 2)  # input embeddings (+ an untied lm_head)

    @property
    def params(self) -> int:
        return self.embed_params + self.layers * self.layer_params + self.hidden


def shape_from_config(config: dict, source: str) -> Shape | None:
    """A Shape from a config.json (multimodal configs: their text_config), or None when it lacks sizes."""
    c = config.get("text_config") or config
    wanted = {short: c.get(key) for short, key in SHORT_KEYS.items()}
    wanted["intermediate"] = wanted["intermediate"] or c.get("ffn_hidden_size")
    wanted["vocab"] = wanted["vocab"] or c.get("padded_vocab_size")
    if not all(isinstance(wanted[k], int) and wanted[k] > 0
               for k in ("hidden", "layers", "heads", "intermediate", "vocab")):
        return None
    experts = c.get("num_experts") or c.get("num_local_experts") or c.get("n_routed_experts") or 0
    return Shape(hidden=wanted["hidden"], layers=wanted["layers"], heads=wanted["heads"],
                 kv_heads=wanted["kv_heads"] or wanted["heads"],
                 intermediate=(c.get("moe_intermediate_size") or wanted["intermediate"]) if experts
                 else wanted["intermediate"],
                 vocab=wanted["vocab"], head_dim=wanted["head_dim"] or 0, tied=bool(wanted["tied"]),
                 experts=int(experts), active=int(c.get("num_experts_per_tok") or 0), source=source)


def architectures() -> dict[str, dict[str, Shape]]:
    """catalog/architectures.yaml: family -> size tag -> Shape (``like:`` resolved); a row with an unknown
    or missing size fails naming it."""
    path = catalog.catalog_file("architectures.yaml")
    return _architectures(path, path.stat().st_mtime)


@lru_cache(maxsize=4)
def _architectures(path: Path, mtime: float) -> dict[str, dict[str, Shape]]:
    doc = _load(path, mtime).get("architectures") or {}

    def sizes(family: str, seen: tuple[str, ...] = ()) -> dict[str, Shape]:
        entry = dict(doc.get(family) or {})
        like = entry.pop("like", None)
        out = sizes(like, (*seen, family)) if like and like not in seen else {}
        for tag, row in entry.items():
            where = f"{path}: architectures.{family}.{tag}"
            unknown = [k for k in (row if isinstance(row, dict) else {"(not a mapping)": 0}) if k not in SHORT_KEYS]
            if unknown:
                raise FactoryKitError(f"{where}: unknown key `{unknown[0]}`; keys: {', '.join(SHORT_KEYS)}")
            shape = shape_from_config({SHORT_KEYS[k]: v for k, v in row.items()},
                                      f"catalog/architectures.yaml: {family} {tag}")
            if shape is None:
                raise FactoryKitError(f"{where}: needs hidden, layers, heads, intermediate and vocab (positive integers)")
            out[str(tag)] = shape
        return out

    return {family: sizes(family) for family in doc}


def _cached_config(model_id: str) -> dict | None:
    """config.json of a hub model from the local Hugging Face cache (no network), or None."""
    from factory_kit.recipe.checks import HUB_ID

    if not HUB_ID.match(model_id):
        return None
    try:
        from huggingface_hub import constants as hub
    except ImportError:
        return None
    repo = Path(hub.HF_HUB_CACHE) / ("models--" + model_id.replace("/", "--"))
    for path in sorted(repo.glob("snapshots/*/config.json")):
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return None


def model_shape(model: str, family: str | None, params_b: float | None, project: Path) -> Shape | None:
    """The shape of a recipe's model: its config.json (a local folder, or the hub cache), else the
    catalog's row for its family and size tag, else the catalog architecture nearest its size (of its
    family when the catalog has any)."""
    folder = Path(model).expanduser()
    folder = folder if folder.is_absolute() else project / folder
    config_file = folder / "config.json"
    config = None
    if config_file.is_file():
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            config = None
        source = f"{model}/config.json"
    else:
        config, source = _cached_config(model), f"{model} config.json (Hugging Face cache)"
    shape = shape_from_config(config, source) if config else None
    if shape is not None:
        return shape
    rows = architectures().get(family or "", {})
    found = catalog._SIZE_TAG.search(str(model).lower().rsplit("/", 1)[-1])  # the size tag: 7b, 1.5b, ...
    tag = found.group(1).replace("_", ".") if found else None
    if tag in rows:
        return rows[tag]
    if not params_b:
        return None
    every = list(rows.values()) or [s for family_rows in architectures().values() for s in family_rows.values()]
    nearest = min(every, key=lambda s: abs(s.params / 1e9 - params_b))
    return replace(nearest, source=f"nearest catalog architecture ({nearest.source.split(': ')[-1]}) "
                                   f"to {params_b:g}B")


# ---- The knobs and the arithmetic --------------------------------------------------------------

@dataclass(frozen=True)
class Setup:
    """Everything memory depends on, taken from a rendered recipe (or changed by a fix)."""

    method: str = "lora"  # a method row of profiles.yaml
    finetuning: str = "lora"  # lora | full | freeze
    quant_bits: int | None = None
    precision: str = "bf16"
    pure_bf16: bool = False
    stage: str = "sft"
    batch_size: int = 1
    grad_accum: int = 1
    cutoff_len: int = 2048
    gradient_checkpointing: bool = True
    liger: bool = False
    zero_stage: int = 0
    offload: tuple[str, ...] = ()
    hardware: str = "single"
    gpus: int = 1  # data-parallel processes (GPUs) in all
    lora_rank: int = 16
    lora_target: str = "all"
    lora_dropout: float = 0.0
    dora: bool = False
    freeze_layers: int = 2
    reference_copy: bool = False  # a full-parameter preference/PPO stage keeps a frozen copy

    @property
    def tokens_per_step(self) -> int:
        """Tokens in one optimizer step (at most: every example at cutoff_len)."""
        return self.batch_size * self.grad_accum * self.cutoff_len * self.gpus


@dataclass(frozen=True)
class Estimate:
    """Per-device GiB of each part of training, and what they add up to."""

    weights: float
    gradients: float
    optimizer: float
    activations: float
    logits: float
    overhead: float
    trainable: int  # parameters that train
    params: int
    notes: tuple[str, ...] = ()

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations + self.logits + self.overhead

    def parts(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name in ("weights", "gradients", "optimizer", "activations", "logits", "overhead")}


def _trainable(shape: Shape, s: Setup) -> int:
    if s.finetuning == "full":
        return shape.params
    if s.finetuning == "freeze":
        return min(abs(s.freeze_layers), shape.layers) * shape.layer_params
    dims = shape.module_dims()
    targets = LORA_MODULES if s.lora_target in ("all", "", None) else \
        [m.strip() for m in s.lora_target.split(",") if m.strip() in dims]
    per_layer = sum(s.lora_rank * (dims[m][0] + dims[m][1]) + (dims[m][1] if s.dora else 0) for m in targets)
    return shape.layers * per_layer


def _lora_inputs(shape: Shape, s: Setup) -> int:
    """Per token per layer: elements LoRA's dropout saves (one copy of each targeted module's input)."""
    if s.finetuning != "lora" or not s.lora_dropout:
        return 0
    dims = shape.module_dims()
    targets = LORA_MODULES if s.lora_target in ("all", "", None) else [m.strip() for m in s.lora_target.split(",")]
    return sum(dims[m][0] for m in targets if m in dims)


def estimate(shape: Shape, s: Setup, params: int | None = None) -> Estimate:
    """Per-device memory of training ``shape`` as ``s`` says. ``params`` overrides the parameter count
    (a model planned with a nearby architecture's shape keeps its own size)."""
    k = constants()
    total = params or shape.params
    scale = total / shape.params
    trainable = int(_trainable(shape, s) * scale)
    frozen = total - trainable
    half = 4 if s.precision == "fp32" else 2  # bytes of a weight in the compute dtype
    n = max(s.gpus, 1) if s.zero_stage else 1
    notes = []
    quantised = s.quant_bits is not None and s.finetuning == "lora"
    if quantised:  # the decoder layers' linear weights quantised; embeddings and lm_head stay 16-bit
        layers = int(shape.layers * (shape.layer_params - 2 * shape.hidden) * scale)
        base = layers * k["quant_bytes"][s.quant_bits] + (frozen - layers) * half
    else:
        base = frozen * half
    if s.zero_stage == 3 and not quantised:
        base /= n
    if s.zero_stage:  # DeepSpeed: 16-bit weights and gradients, fp32 master + Adam in its optimizer
        weights = trainable * half / (n if s.zero_stage == 3 else 1)
        grads = trainable * half / (n if s.zero_stage >= 2 else 1)
        optimizer = 0.0 if "optimizer" in s.offload else trainable * k["zero_optimizer_bytes"] / n
        if "param" in s.offload:
            weights, base = 0.0, 0.0
        if s.zero_stage == 3:  # layers gathered for compute
            weights += k["zero3_live_layers"] * shape.layer_params * scale * half
    else:
        upcast = not s.pure_bf16 and s.precision != "fp32"  # LLaMA-Factory casts trainable params to fp32
        weights = trainable * (4 if upcast else half)
        if upcast and s.finetuning != "lora":
            weights += trainable * 2  # autocast keeps a 16-bit copy of each fp32 weight through the step
            notes.append("full/freeze in mixed precision: fp32 trainable weights + autocast's 16-bit copies")
        grads = trainable * (4 if upcast else half)
        optimizer = trainable * (k["adam_state_bytes"] if upcast or s.precision == "fp32" else half * 2)
    weights += base
    if s.reference_copy:
        weights += total * half / (n if s.zero_stage == 3 else 1)
        notes.append("a frozen reference copy of the model (full-parameter preference tuning)")
    sequences = (k.get("stages") or {}).get(s.stage, {}).get("sequences", 1)
    tokens = s.batch_size * s.cutoff_len * sequences
    h, q, kv = shape.hidden, shape.heads * shape.hd, shape.kv_heads * shape.hd
    mlp = shape.intermediate * max(shape.active, 1)
    layer = half * (5 * h + 2 * q + 2 * kv + 4 * mlp + _lora_inputs(shape, s)) + _lora_inputs(shape, s)
    if s.gradient_checkpointing:
        activations = tokens * (shape.layers * k["hidden_saved"] * h * half + 2 * layer)
    else:
        activations = tokens * shape.layers * layer
    logits = 0.0 if s.liger else tokens * shape.vocab * k["logits_bytes"]
    states = weights + grads + optimizer + activations + logits
    overhead = k["cuda_context_gb"] * GIB + k["fragmentation"] * states
    return Estimate(weights / GIB, grads / GIB, optimizer / GIB, activations / GIB, logits / GIB, overhead / GIB,
                    trainable, total, tuple(notes))


# ---- Fitting: the recipe's GPU, and the cheapest change that makes it fit ------------------------

def _hardware_row(stage: int, offload: bool) -> str | None:
    """The hardware profile with this ZeRO stage, with (or without) offload: its name in profiles.yaml."""
    for row in catalog.hardware().values():
        if row.zero_stage == stage and bool((row.deepspeed or {}).get("offload")) == offload:
            return row.name
    return None


def _on_gpus(s: Setup, n: int, hardware: str, stage: int, offload: tuple[str, ...]) -> tuple[dict, Setup]:
    """Setup on ``n`` ranks of ``hardware``, keeping tokens per optimizer step when grad_accum divides."""
    accum = s.grad_accum * s.gpus // n if (s.grad_accum * s.gpus) % n == 0 and s.grad_accum * s.gpus >= n \
        else s.grad_accum
    changes = {"hardware": hardware, "nodes.gpus_per_node": n}
    if accum != s.grad_accum:
        changes["train.grad_accum"] = accum
    return changes, replace(s, hardware=hardware, zero_stage=stage, offload=offload, gpus=n, grad_accum=accum)


def _fix_micro_batch(shape, s, fits):
    if s.batch_size <= 1:
        return None
    b, best = s.batch_size, None
    while b > 1:
        b //= 2
        cand = replace(s, batch_size=b, grad_accum=s.grad_accum * s.batch_size // b if s.batch_size % b == 0
                       else s.grad_accum * -(-s.batch_size // b))
        best = ({"train.batch_size": cand.batch_size, "train.grad_accum": cand.grad_accum}, cand)
        if fits(cand):
            return best
    return best


def _fix_gradient_checkpointing(shape, s, fits):
    return None if s.gradient_checkpointing else ({"train.gradient_checkpointing": True},
                                                  replace(s, gradient_checkpointing=True))


def _fix_liger_kernel(shape, s, fits):
    return None if s.liger else ({"llamafactory.enable_liger_kernel": True}, replace(s, liger=True))


def _fix_qlora(shape, s, fits):
    quantised = next((m for m in catalog.methods().values() if m.quantised), None)
    if s.finetuning != "lora" or s.quant_bits == 4 or quantised is None:
        return None
    return ({"method": quantised.name, "quant.bits": 4},
            replace(s, method=quantised.name, quant_bits=4, dora=False))


def _fix_zero3(shape, s, fits):
    hardware = _hardware_row(3, offload=False)
    if s.zero_stage == 3 or hardware is None or (s.quant_bits == 8 and s.finetuning == "lora"):
        return None
    best = None
    for n in ([s.gpus] if s.gpus > 1 else [2, 4, 8]):
        best = _on_gpus(s, n, hardware, 3, ())
        if fits(best[1]):
            return best
    return best


def _fix_zero3_offload(shape, s, fits):
    hardware = _hardware_row(3, offload=True)
    if hardware is None or "param" in s.offload or (s.quant_bits == 8 and s.finetuning == "lora"):
        return None
    offload = tuple((catalog.hardware()[hardware].deepspeed or {}).get("offload") or ())
    return _on_gpus(s, s.gpus, hardware, 3, offload)


FIXES = {"micro_batch": _fix_micro_batch, "gradient_checkpointing": _fix_gradient_checkpointing,
         "liger_kernel": _fix_liger_kernel, "qlora": _fix_qlora, "zero3": _fix_zero3,
         "zero3_offload": _fix_zero3_offload}


@dataclass
class Plan:
    """A recipe's memory per GPU, whether it fits ``gpu``, and (when not) the change that makes it fit."""

    shape: Shape
    setup: Setup
    estimate: Estimate
    gpu: Gpu | None
    params: int
    changes: dict = field(default_factory=dict)  # recipe key -> value that makes it fit ({} when it fits)
    fixed: Estimate | None = None  # the estimate after ``changes``
    fixed_setup: Setup | None = None

    @property
    def fits(self) -> bool | None:
        return None if self.gpu is None else self.estimate.total <= self.gpu.memory_gb

    def advice(self) -> str:
        """The change in words: recipe settings, the memory after it, tokens per optimizer step."""
        if self.fits is not False:
            return ""
        if self.fixed is None:
            return ("nothing factory-kit tries makes it fit (micro-batch, gradient checkpointing, Liger, QLoRA, "
                    "ZeRO-3, offload): use a bigger GPU, more GPUs, or a smaller model or cutoff_len")
        settings = ", ".join(f"`{k}: {_yaml_value(v)}`" for k, v in self.changes.items())
        tokens = self.fixed_setup.tokens_per_step
        same = "same" if tokens == self.setup.tokens_per_step else "then"
        missing = _missing_packages(self.changes)
        return (f"set {settings} (about {self.fixed.total:.0f} GB per GPU, {same} {tokens:,} tokens per "
                "optimizer step)" + (f"; needs {', '.join(missing)}, not installed here" if missing else ""))


def _missing_packages(changes: dict) -> list[str]:
    """What the changed settings need that this machine lacks (the advice says so, not `train` later)."""
    import importlib.util

    needed = ["liger-kernel"] if changes.get("llamafactory.enable_liger_kernel") else []
    if changes.get("method") in catalog.methods():
        needed += list(catalog.methods()[changes["method"]].packages)
    if changes.get("hardware") in catalog.hardware():
        needed += list(catalog.hardware()[changes["hardware"]].packages)
    names = [re.split(r"[<>=!~\[; ]", n, maxsplit=1)[0] for n in needed]
    return [n for n in names if importlib.util.find_spec(n.lower().replace("-", "_")) is None]


def _yaml_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def fit(shape: Shape, setup: Setup, gpu: Gpu | None, params: int | None = None) -> Plan:
    """Plan ``setup`` on ``gpu``; when it does not fit, try catalog/memory.yaml's fixes in order:
    the first that fits alone wins, else they are stacked until it fits."""
    params = params or shape.params
    plan = Plan(shape, setup, estimate(shape, setup, params), gpu, params)
    if plan.fits is not False:
        return plan

    def fits(s: Setup) -> bool:
        return estimate(shape, s, params).total <= gpu.memory_gb

    order = [FIXES[name] for name in constants().get("fixes") or FIXES]
    for fix in order:
        found = fix(shape, setup, fits)
        if found and fits(found[1]):
            plan.changes, plan.fixed_setup = found
            plan.fixed = estimate(shape, found[1], params)
            return plan
    current, changes = setup, {}
    for fix in order:
        found = fix(shape, current, fits)
        if found:
            changes.update(found[0])
            current = found[1]
            if fits(current):
                plan.changes, plan.fixed_setup = changes, current
                plan.fixed = estimate(shape, current, params)
                return plan
    return plan


def setup_of(ctx: dict[str, Any], data: dict[str, Any]) -> Setup:
    """The memory knobs of a rendered recipe (its build context and merged data)."""
    method = catalog.methods()[ctx["method"]]
    hardware = catalog.hardware()[ctx["hardware"]]
    raw = ctx.get("overrides") or {}
    train, nodes = data["train"], ctx["nodes"]
    gpus = 1
    if hardware.distributed:
        gpus = nodes["ray_workers"] if "USE_RAY" in hardware.env else nodes["count"] * nodes["gpus_per_node"]
    stage = (constants().get("stages") or {}).get(ctx["stage"], {})
    return Setup(
        method=ctx["method"], finetuning=method.finetuning_type,
        quant_bits=(ctx["quant"] or {}).get("bits") if ctx.get("quant") else None,
        precision=ctx["precision"], pure_bf16=bool(raw.get("pure_bf16")), stage=ctx["stage"],
        batch_size=train["batch_size"], grad_accum=train["grad_accum"], cutoff_len=ctx["cutoff_len"],
        gradient_checkpointing=bool(train.get("gradient_checkpointing", True))
        and not raw.get("disable_gradient_checkpointing"),
        liger=bool(raw.get("enable_liger_kernel")), zero_stage=hardware.zero_stage,
        offload=tuple((hardware.deepspeed or {}).get("offload") or ()), hardware=hardware.name, gpus=gpus,
        lora_rank=ctx["lora"]["rank"], lora_target=str(ctx["lora"]["target"] or "all"),
        lora_dropout=float(ctx["lora"]["dropout"] or 0.0), dora=bool(method.keys.get("use_dora")),
        freeze_layers=data["freeze"]["trainable_layers"],
        reference_copy=bool(stage.get("reference")) and not method.adapter,
    )


def recipe_gpu(r, ctx: dict[str, Any]) -> Gpu | None:
    """The GPU a recipe is planned for: its `nodes.gpu`, else its hardware profile's `gpu`."""
    named = r.data["nodes"].get("gpu")
    if named:
        return find_gpu(named, f"{r.where('nodes.gpu')}: `nodes.gpu`")
    default = catalog.hardware()[ctx["hardware"]].gpu
    return find_gpu(default, f"{catalog.table().path}: hardware.{ctx['hardware']}.gpu") if default else None


def plan_recipe(r, ctx: dict[str, Any], project: Path, gpu: Gpu | None = None, gpus: int | None = None,
                *, use_recipe_gpu: bool = True) -> Plan | None:
    """A rendered recipe's plan on ``gpu`` (default: the recipe's) and ``gpus`` processes; None when the
    model's size and shape are unknown (a custom model without config.json, say)."""
    shape = model_shape(ctx["model"], ctx["family"], ctx.get("params_b"), project)
    if shape is None:
        return None
    setup = setup_of(ctx, r.data)
    if gpus:
        setup = replace(setup, gpus=gpus)
    if gpu is None and use_recipe_gpu:
        gpu = recipe_gpu(r, ctx)
    params = shape.params
    if shape.source.startswith("nearest") and ctx.get("params_b"):
        params = int(ctx["params_b"] * 1e9)
    return fit(shape, setup, gpu, params)


def plan_warnings(r, ctx: dict[str, Any], project: Path) -> list[str]:
    """`check`/`render`: one line when the recipe does not fit the GPU it is planned for, with the fix."""
    plan = plan_recipe(r, ctx, project)
    if plan is None or plan.fits is not False:
        return []
    e = plan.estimate
    where = r.where("nodes.gpu") if r.data["nodes"].get("gpu") else str(r.path)
    states = e.weights + e.gradients + e.optimizer
    return [(f"{where}: needs about {e.total:.0f} GB per GPU ({states:.0f} GB weights, gradients and optimizer "
             f"states, {e.activations + e.logits:.0f} GB activations) but {plan.gpu.name} has "
             f"{plan.gpu.memory_gb:g} GB: {plan.advice()}; `factory-kit plan {r.name}` shows the breakdown "
             "(`nodes.gpu` names your GPU)")]


# ---- `factory-kit plan`: the table -------------------------------------------------------------

def count(n: int) -> str:
    """7.62B, 40M, 12,345: a parameter count as people say it."""
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.0f}M" if n >= 1e7 else f"{n / 1e6:.1f}M" if n >= 1e5 \
        else f"{n:,}"


def _why(plan: Plan) -> dict[str, str]:
    """One short phrase per part, for the table (80 columns)."""
    s, e, shape = plan.setup, plan.estimate, plan.shape
    base = {4: "4-bit", 8: "8-bit"}.get(s.quant_bits or 0, s.precision) if s.finetuning == "lora" else s.precision
    zero = f"ZeRO-{s.zero_stage} over {s.gpus} GPUs" if s.zero_stage else ""
    offload = f", {' + '.join(s.offload)} in CPU RAM" if s.offload else ""
    trained = {"lora": f"{base} base + adapter", "full": "every weight", "freeze": f"{s.freeze_layers} layers train"}
    tokens = s.batch_size * s.cutoff_len * ((constants().get("stages") or {}).get(s.stage, {}).get("sequences", 1))
    return {
        "weights": (zero + offload + "; " if zero else "") + trained.get(s.finetuning, s.finetuning)
        + (", reference copy" if s.reference_copy else ""),
        "gradients": f"{count(e.trainable)} trainable parameters",
        "optimizer": "AdamW m, v" + (" + fp32 master (DeepSpeed)" if s.zero_stage else " (fp32)"),
        "activations": f"{tokens:,} tokens, " + ("checkpointed" if s.gradient_checkpointing else "all layers kept"),
        "logits": "Liger fused loss" if s.liger else f"loss over a {shape.vocab:,} vocabulary",
        "overhead": "CUDA context + allocator fragmentation",
    }


def plan_report(plan: Plan, name: str) -> list:
    """Renderables for `factory-kit plan`: a header, the table, the verdict and the advice."""
    from rich.table import Table
    from rich.text import Text

    s, e = plan.setup, plan.estimate
    head = Text(f"{name}: {count(plan.params)} parameters, {s.method}, {s.precision}, "
                f"{s.gpus} GPU{'s' if s.gpus > 1 else ''}; shape from {plan.shape.source}")
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("part")
    table.add_column("GB/GPU", justify="right")
    table.add_column("what", overflow="fold")
    why = _why(plan)
    for part, value in e.parts().items():
        table.add_row(part, f"{value:.1f}", why[part])
    table.add_row("[bold]total[/]", f"[bold]{e.total:.1f}[/]", "upper bound: every example at cutoff_len")
    out: list = [head, table]
    out.append(Text(f"tokens per optimizer step: {s.tokens_per_step:,} ({s.batch_size} x {s.cutoff_len} x "
                    f"{s.grad_accum} accumulation x {s.gpus} GPU{'s' if s.gpus > 1 else ''})"))
    smallest = next((g for g in sorted(gpus().values(), key=lambda g: g.memory_gb) if g.memory_gb >= e.total), None)
    if plan.gpu is not None:
        verdict = "fits" if plan.fits else "does not fit"
        style = "green" if plan.fits else "red"
        out.append(Text.assemble((verdict, f"bold {style}"), f" {plan.gpu.name} ({plan.gpu.memory_gb:g} GB): "
                                 f"{e.total:.1f} GB needed"))
    if smallest is not None:
        out.append(Text(f"smallest GPU it fits as it is: {smallest.name}"))
    if plan.fits is False:
        out.append(Text(f"cheapest fix: {plan.advice()}"))
    return out
