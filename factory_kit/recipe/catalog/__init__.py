"""Model catalog: which LLaMA-Factory template, LoRA target and defaults fit a model.

The knowledge lives in ``models.yaml`` (adding a family is a one-file change); this module
only loads it and matches a model against it. It imports neither torch nor llamafactory,
because ``render`` must stay fast: template names were checked against LLaMA-Factory's
source by the tests, not at run time.

Matching order (see the head of models.yaml): the first family, in file order, whose
``match`` glob fits one of the model's names wins; a local folder whose names match
nothing falls back to ``config_match`` against its config.json, again in file order.

The same folder holds ``profiles.yaml``, the table of training methods, stages and hardware
profiles (typed in ``profiles.py``, re-exported here). Both files can be replaced for one
process by a folder named in ``$FACTORY_KIT_CATALOG`` (adding a family or a profile is then
a change to that folder only; see :func:`catalog_file`).
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field, fields
from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import Path

from factory_kit.core.errors import FactoryKitError
from factory_kit.recipe.catalog.profiles import (  # noqa: F401  (the table, re-exported)
    CATALOG_ENV, Hardware, Method, Profiles, Rule, Stage, catalog_file, hardware, methods, stages, table,
)

CATALOG_FILE = Path(__file__).with_name("models.yaml")  # the shipped one; catalog_file() says which is used
THINKING = ("none", "optional", "always")
ADD_FAMILY_HINT = "set `template:` in the recipe, or add a family to factory_kit/recipe/catalog/models.yaml"


@dataclass(frozen=True)
class ModelFamily:
    """One entry of models.yaml. Dict-valued fields are left out of the hash."""

    name: str
    description: str
    template: str | None
    lora_target: str
    thinking: str  # none | optional | always
    cutoff_len: int
    template_removed: bool = False
    fix: str | None = None
    match: tuple[str, ...] = ()
    config_match: dict = field(default_factory=dict, hash=False)
    params_b: dict = field(default_factory=dict, hash=False)
    cot_format: str | None = None  # "{thought}" + "{answer}" joined as the model writes them
    stop_words: tuple[str, ...] = ()  # strings that end the model's turn (lm-eval's `until`)
    base: str | None = None
    notes: str | None = None
    new: dict = field(default_factory=dict, hash=False)  # recipe keys `factory-kit new` writes
    new_thinking: dict = field(default_factory=dict, hash=False)  # ... and, when the recipe reasons, these

    @property
    def usable(self) -> bool:
        """True when LLaMA-Factory 0.9.5 ships a template for this family."""
        return self.template is not None and not self.template_removed

    @property
    def think_markers(self) -> tuple[str, str] | None:
        """(open, close) around the reasoning, read from ``cot_format`` (``<think>``/``</think>``,
        HuatuoGPT-o1's ``## Thinking``/``## Final Response``); None for a family that does not think."""
        if not self.cot_format or self.thinking == "none":
            return None
        head, _, rest = self.cot_format.partition("{thought}")
        middle = rest.partition("{answer}")[0]
        return head.strip(), middle.strip()


@dataclass(frozen=True)
class ModelInfo:
    """What ``resolve`` found out about the model a recipe names."""

    model: str  # what the user gave
    family: ModelFamily
    params_b: float | None  # billions of parameters, if known
    local: bool  # True if it is a local folder
    path: Path | None = None  # the local folder, resolved


def _load(path: Path) -> dict[str, ModelFamily]:
    """Parse and check models.yaml; a typo fails here, naming the family and key."""
    from ruamel.yaml import YAML  # YAML 1.2: `1e-4` is a number, unlike PyYAML

    try:
        doc = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8")) or {}
    except Exception as exc:  # ruamel raises many types; all mean "fix the file"
        raise FactoryKitError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from exc
    defaults = doc.get("defaults") or {}
    known = {f.name for f in fields(ModelFamily)} - {"name"}
    out: dict[str, ModelFamily] = {}
    for name, entry in (doc.get("families") or {}).items():
        entry = {**defaults, **(entry or {})}
        for key in entry:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean `{close[0]}`?)" if close else ""
                raise FactoryKitError(f"{path}: family {name!r}: unknown key `{key}`{hint}")
        if entry.get("thinking") not in THINKING:
            raise FactoryKitError(f"{path}: family {name!r}: `thinking` must be one of {', '.join(THINKING)}")
        if "description" not in entry or "template" not in entry:
            raise FactoryKitError(f"{path}: family {name!r} needs `description` and `template`")
        entry["match"] = tuple(m.lower() for m in entry.get("match") or ())
        entry["params_b"] = {str(k).lower(): float(v) for k, v in (entry.get("params_b") or {}).items()}
        entry["stop_words"] = tuple(str(w) for w in entry.get("stop_words") or ())
        out[str(name)] = ModelFamily(name=str(name), **entry)
    return out


@lru_cache(maxsize=4)
def _families(path: Path, mtime: float) -> dict[str, ModelFamily]:
    return _load(path)


def families() -> dict[str, ModelFamily]:
    """Every family in models.yaml, in file order (which is the matching precedence)."""
    path = catalog_file("models.yaml")
    return _families(path, path.stat().st_mtime)


def _name_groups(model: str, folder: Path | None, config: dict) -> list[list[str]]:
    """Names to match, most trustworthy first: the id (or folder name), then config.json's."""
    def forms(name: str) -> list[str]:
        name = name.strip().rstrip("/").lower()
        return [name, name.rsplit("/", 1)[-1]] if name else []

    groups = [forms(folder.name if folder else model)]
    recorded = config.get("_name_or_path")
    if isinstance(recorded, str) and recorded:
        groups.append(forms(recorded))
    return groups


def _config_fits(want: dict, config: dict) -> bool:
    """All keys must match; a list in models.yaml means any of its values."""
    return bool(want) and all(
        config.get(key) in (value if isinstance(value, list) else [value]) for key, value in want.items()
    )


_SIZE_TAG = re.compile(r"(?:^|[-_/ ])(\d+(?:[._]\d+)?(?:x\d+)?[bm])(?=$|[-_ ])")


def _params_from_tag(names: list[str], family: ModelFamily) -> float | None:
    """Billions of parameters from a size tag such as 7b, 1_8b (InternLM), 270m or 8x7b."""
    for name in names:
        found = _SIZE_TAG.search(name.rsplit("/", 1)[-1])
        if found:
            tag = found.group(1).replace("_", ".")
            if tag in family.params_b:
                return family.params_b[tag]
            if "x" not in tag:  # an unlisted size: its nominal number is the best guess
                return float(tag[:-1]) / (1000 if tag.endswith("m") else 1)
    return family.params_b.get("*")


def estimate_params_b(config: dict) -> float | None:
    """Rough size of a decoder from config.json: embeddings + layers * (attention + MLP).

    Counts a gated MLP (gate, up, down) and, for MoE configs, every expert; ignores norms
    and biases. Good to a few percent for Llama/Qwen-style models, enough to pick hardware.
    """
    c = config.get("text_config") or config
    h, layers = c.get("hidden_size"), c.get("num_hidden_layers")
    vocab = c.get("vocab_size") or c.get("padded_vocab_size")
    inter = c.get("intermediate_size") or c.get("ffn_hidden_size")
    heads = c.get("num_attention_heads")
    if not all(isinstance(v, int) and v > 0 for v in (h, layers, vocab, inter, heads)):
        return None
    kv_heads = c.get("num_key_value_heads") or heads
    head_dim = c.get("head_dim") or h // heads
    attention = 2 * h * heads * head_dim + 2 * h * kv_heads * head_dim  # q, o + k, v
    experts = c.get("num_experts") or c.get("num_local_experts") or c.get("n_routed_experts") or 0
    mlp = 3 * h * (experts * (c.get("moe_intermediate_size") or inter) if experts else inter)
    embeddings = vocab * h * (1 if c.get("tie_word_embeddings", False) else 2)
    return (embeddings + layers * (attention + mlp)) / 1e9


def _suggest(names: list[str]) -> str | None:
    """The family whose name or glob looks most like the unknown model, for "did you mean".

    Both sides are cut to their stem ("qwen2.6-7b-instruct" -> "qwen2.6", "*qwen3-*" ->
    "qwen3") so that sizes and suffixes do not dominate the similarity.
    """
    keys: dict[str, str] = {}
    for fam in families().values():
        keys[fam.name] = fam.name
        for glob in fam.match:
            stem = re.split(r"[*\[]", glob.rsplit("/", 1)[-1].lstrip("*"))[0].strip("-_")
            if len(stem) > 2:
                keys.setdefault(stem, fam.name)
    for name in names:
        stem = re.split(r"[-_](?=\d+(?:[._]\d+)?[bm](?:$|[-_]))", name.rsplit("/", 1)[-1])[0]
        best = difflib.get_close_matches(stem, keys, n=1, cutoff=0.6)
        if best:
            return keys[best[0]]
    for name in names:  # an id that merely contains a family's name, e.g. "mistral/foo"
        for key in sorted(keys, key=len, reverse=True):
            if key in name:
                return keys[key]
    return None


def resolve(model: str, base_dir: Path | None = None, *, strict: bool = True) -> ModelInfo:
    """Find the family of an HF id ("Qwen/Qwen2.5-7B-Instruct") or a local model folder.

    A relative path is looked up under ``base_dir`` (default: the current directory); a
    folder that exists wins over an HF id of the same spelling. Raises FactoryKitError for
    an unknown model, and (when ``strict``) for a family LLaMA-Factory has no template for.
    """
    text = str(model).strip()
    if not text:
        raise FactoryKitError(f"model is empty: name an HF id or a local folder; {ADD_FAMILY_HINT}")
    folder = Path(text).expanduser()
    if not folder.is_absolute():
        folder = Path(base_dir or Path.cwd()) / folder
    local = folder.is_dir()
    if not local and text.startswith(("/", "./", "../", "~")):
        raise FactoryKitError(f"model folder {text} not found: {folder} is not a folder")
    config: dict = {}
    if local and (folder / "config.json").is_file():
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise FactoryKitError(f"{folder / 'config.json'}: unreadable: {exc}") from exc

    groups = _name_groups(text, folder if local else None, config)
    family = next(
        (fam for names in groups for fam in families().values()
         if any(fnmatchcase(n, glob) for n in names for glob in fam.match)),
        None,
    ) or next((fam for fam in families().values() if _config_fits(fam.config_match, config)), None)

    if family is None:
        names = [n for g in groups for n in g]
        guess = _suggest(names)
        mean = f" Did you mean the `{guess}` family ({families()[guess].description})?" if guess else ""
        what = f"local model {text} (model_type {config.get('model_type', 'unknown')})" if local else f"model {text}"
        raise FactoryKitError(f"unknown {what}: no family in the model catalog matches it.{mean} "
                              f"To use it anyway, {ADD_FAMILY_HINT}.")
    if strict and not family.usable:
        raise FactoryKitError(f"model {text} ({family.name}): {family.fix or ADD_FAMILY_HINT}")

    params = estimate_params_b(config) if config else None
    if params is None:
        params = _params_from_tag([n for g in groups for n in g], family)
    return ModelInfo(model=text, family=family, params_b=params, local=local, path=folder if local else None)


def family_of(model: str, base_dir: Path | None = None) -> ModelFamily | None:
    """The family of a model id or folder, or None when the catalog does not know it (never raises):
    for callers that only refine their behaviour by family, e.g. the stop words of an evaluation."""
    try:
        return resolve(model, base_dir, strict=False).family
    except FactoryKitError:
        return None


RANGE_WORDS = {"over": ">", "under": "<", "at_least": ">=", "at_most": "<="}


@lru_cache(maxsize=4)
def _ranges(path: Path, mtime: float) -> dict[str, dict[str, float]]:
    from ruamel.yaml import YAML

    try:
        doc = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8")) or {}
    except Exception as exc:  # ruamel raises many types; all mean "fix the file"
        raise FactoryKitError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from exc
    for key, rule in doc.items():
        if not isinstance(rule, dict) or not rule or any(k not in RANGE_WORDS for k in rule):
            raise FactoryKitError(f"{path}: `{key}` needs a mapping of {', '.join(RANGE_WORDS)}")
    return {str(k): dict(v) for k, v in doc.items()}


def raw_ranges() -> dict[str, dict[str, float]]:
    """Sanity ranges of raw LLaMA-Factory keys (lf_ranges.yaml): key -> {over|under|at_least|at_most: n}."""
    path = catalog_file("lf_ranges.yaml")
    return _ranges(path, path.stat().st_mtime)


def out_of_range(value: float, rule: dict[str, float]) -> str | None:
    """None when ``value`` keeps ``rule``; else the rule in words ("> 0 and < 1")."""
    tests = {"over": value > rule.get("over", value - 1), "under": value < rule.get("under", value + 1),
             "at_least": value >= rule.get("at_least", value), "at_most": value <= rule.get("at_most", value)}
    if all(tests.values()):
        return None
    return " and ".join(f"{RANGE_WORDS[k]} {n:g}" for k, n in rule.items())
