"""Render a recipe into LLaMA-Factory configs through Jinja templates.

One recipe -> ``build/<recipe>/``: ``train.yaml`` (llamafactory-cli train), ``export.yaml``
(merge), ``infer.yaml`` (chat/api), ``deepspeed.json`` for DeepSpeed profiles and
``launch.env`` for torchrun/ray environments. Output is deterministic: same recipe,
byte-identical files. Nothing here imports torch or llamafactory (render must be fast).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jinja2

from factory_kit.recipe import catalog, lfargs, reward
from factory_kit.core import io, paths
from factory_kit.recipe import load as recipe_mod
from factory_kit.recipe.checks import (check_combination, check_datasets, check_model_path, check_raw_keys,
                                      combination_warnings, decontamination_warnings, thinking_warnings)
from factory_kit.core.errors import FactoryKitError
from factory_kit.core.templates import environment
from factory_kit.core.yamlio import to_yaml
from factory_kit.recipe.llamaboard import write_llamaboard_config


@dataclass
class Rendered:
    recipe: recipe_mod.Recipe
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # for the console; never in the rendered files


# LLaMA-Factory 0.9.5 re-launches `train` under torchrun with `" ".join(sys.argv[1:])` split on spaces:
# only the train.yaml path (build/<recipe>/train.yaml, relative to the project) is on that command line,
# so a space in the recipe's name breaks a torchrun launch; spaces in the project folder, model path or
# output_dir are inside the YAML and work (a single-process launch takes the path whole).
TORCHRUN_SPLITS = ("recipe name {name!r} contains a space, and LLaMA-Factory 0.9.5 splits the torchrun command "
                   "line on spaces (it would look for {first!r})")


def _torchrun_space_problem(build_rel: str, name: str, hardware, where: str) -> str | None:
    """A recipe name with a space: refused when the hardware launches through torchrun (FORCE_TORCHRUN
    in its launch env), else a warning (a machine with several GPUs launches through torchrun too)."""
    if " " not in build_rel:
        return None
    message = (f"{where}: " + TORCHRUN_SPLITS.format(name=name, first=build_rel.split(" ")[0])
               + f"; rename the recipe file (e.g. {name.replace(' ', '-')}.yaml)")
    if "FORCE_TORCHRUN" in hardware.env or hardware.deepspeed:
        raise FactoryKitError(message.replace("; rename", f" with `hardware: {hardware.name}`; rename"))
    return message.replace("; rename", " on a machine with several GPUs; fine on one, but rename")


def build_context(r: recipe_mod.Recipe, project: Path) -> dict[str, Any]:
    """Everything the templates need, derived once from the recipe and the model catalog."""
    d = r.data
    where = str(r.path)
    check_model_path(d["model"], project, r.where("model"))  # a Windows or missing path is no hub id
    try:
        info = catalog.resolve(d["model"], base_dir=project, strict=not d["template"])
    except FactoryKitError:
        if not d["template"]:  # an explicit `template:` lets any model through
            raise
        info = None
    family = info.family if info else None
    template = d["template"] or family.template
    method, stage, hardware = d["method"], d["stage"], d["hardware"]
    rows = {"method": catalog.methods()[method], "stage": catalog.stages()[stage],
            "hardware": catalog.hardware()[hardware]}  # what each does: catalog/profiles.yaml
    train = d["train"]
    cutoff = train["cutoff_len"] or (family.cutoff_len if family else 2048)
    lora_target = d["lora"]["target"] or (family.lora_target if family else "all")
    output_dir = d["output_dir"] or str((paths.outputs_dir(project) / r.name).relative_to(project))
    build_rel = str((paths.build_dir(project) / r.name).relative_to(project))
    space_warning = _torchrun_space_problem(build_rel, r.name, rows["hardware"], where)
    if d.get("deepspeed_config") and not rows["hardware"].deepspeed:
        raise FactoryKitError(f"{r.where('deepspeed_config')}: `deepspeed_config` needs a DeepSpeed hardware "
                              f"(`factory-kit ls hardware`: ds-z2, ds-z3...); `hardware: {hardware}` does not start "
                              "DeepSpeed")
    thinking = d["thinking"]
    if thinking is None and family is not None and family.thinking == "optional":
        thinking = False if rows["stage"].data != "pt" else None  # plain text has no chat turns
    quant = None
    if rows["method"].quantised or (r.origins.get("quant.bits", "default") != "default"):
        quant = d["quant"]
    export_dir = d["export"]["dir"] or f"{output_dir}/merged"
    ctx = {
        "recipe_name": r.name,
        "recipe_file": _shown_path(r.path, project),
        "chain": [p.name for p in r.chain],
        "model": d["model"],
        "family": family.name if family else "custom",
        "params_b": info.params_b if info else None,
        "template": template,
        "thinking": thinking,
        "method": method,
        "adapter": rows["method"].adapter,
        "finetuning_type": rows["method"].finetuning_type,
        "stage": stage,
        "hardware": hardware,
        "precision": d["precision"],
        "quant": quant,
        "lora": {**d["lora"], "target": lora_target},
        "freeze": d["freeze"],
        "pref": d["pref"],
        "nodes": d["nodes"],
        "predict": d["predict"],
        "datasets": ",".join(d["datasets"]),
        "eval_datasets": ",".join(d["eval_datasets"]),
        "val_size": d["val_size"],
        "mix": d["mix"],
        "interleave_probs": ",".join(str(p) for p in d["mix"]["probs"]) if d["mix"]["probs"] else None,
        "dataset_dir": paths.REGISTRY_DIRNAME,
        "cutoff_len": cutoff,
        "train": train,
        "output_dir": output_dir,
        "overwrite": d["overwrite"],
        "build_dir": build_rel,
        "deepspeed": f"{build_rel}/deepspeed.json" if rows["hardware"].deepspeed else None,
        "ds": rows["hardware"].deepspeed,
        "parts": {kind: row.part for kind, row in rows.items()},  # templates/train/<kind>_<part>.yaml.j2
        "part_keys": {kind: list(row.keys.items()) for kind, row in rows.items()},
        "reward_model": None,
        "export": {**d["export"], "dir": export_dir},
        "infer": d["infer"],
        "overrides": d["llamafactory"],
        "space_warnings": [space_warning] if space_warning else [],
    }
    rm = reward.resolve(r, project)
    if rm is not None:
        ctx["reward_model"] = {"path": rm.path, "type": rm.type, "recipe": rm.recipe, "marker": rm.marker}
    return ctx


def _shown_path(path: Path, project: Path) -> str:
    """The recipe's path for file headers: relative to the project (or to factory-kit for a shipped
    recipe), never an absolute machine path, so output stays the same on every machine."""
    for base in (project, paths.KIT_DIR):
        try:
            return Path(path).resolve().relative_to(Path(base).resolve()).as_posix()
        except ValueError:
            continue
    return Path(path).name


def _kv_factory(overrides: dict[str, Any]):
    def kv(key: str, value: Any) -> str:
        if key in overrides:
            return f"# {key}: set under `llamafactory:` below"
        return f"{key}: {to_yaml(value)}"
    return kv


def _render_template(env: jinja2.Environment, name: str, ctx: dict[str, Any], overrides: dict) -> str:
    template = env.get_template(name)
    text = template.render(**ctx, kv=_kv_factory(overrides), overrides_items=sorted(overrides.items()))
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip() + "\n"


def _parse(text: str, label: str) -> dict[str, Any]:
    data = recipe_mod.yaml_loader().load(text)
    if not isinstance(data, dict):
        raise FactoryKitError(f"{label}: template produced no mapping")
    return data


def render(
    recipe_path: str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    project: Path | None = None,
    write: bool = True,
    check_data: bool = True,
) -> Rendered:
    """Load, check and render a recipe; write ``build/<recipe>/`` unless ``write`` is False."""
    project = project or paths.project_dir()
    r = recipe_mod.load(recipe_path, overrides)
    ctx = build_context(r, project)
    check_combination(r, ctx)
    check_raw_keys(r)
    if check_data:
        ctx["dataset_formats"] = check_datasets(r, ctx, project / ctx["dataset_dir"])
    env = environment()
    out = Rendered(recipe=r, out_dir=project / ctx["build_dir"], context=ctx)
    from factory_kit.recipe.plan import plan_warnings  # GPU memory against the recipe's GPU (recipe/plan.py)

    out.warnings = combination_warnings(r, ctx) + plan_warnings(r, ctx, project) + ctx["space_warnings"]
    if check_data:
        out.warnings += thinking_warnings(r, ctx, project) + decontamination_warnings(r, project)
    overrides_map = ctx["overrides"]
    texts = {
        "train.yaml": _render_template(env, "train.yaml.j2", ctx, overrides_map),
        "export.yaml": _render_template(env, "export.yaml.j2", ctx, {}),
        "infer.yaml": _render_template(env, "infer.yaml.j2", {**ctx, "merged": False}, {}),
    }
    if ctx["adapter"]:
        texts["infer-merged.yaml"] = _render_template(env, "infer.yaml.j2", {**ctx, "merged": True}, {})
    if ctx["deepspeed"]:
        texts["deepspeed.json"] = _deepspeed_text(r, ctx, env, project)
    launch_env = launch_environment(ctx)
    if launch_env:
        texts["launch.env"] = "".join(
            [f"# Environment for llamafactory-cli train ({ctx['hardware']}), from {r.path.name}\n"]
            + [f"{k}={v}\n" for k, v in launch_env.items()]
        )
    out.env = launch_env
    for name in texts:
        if not name.endswith(".yaml"):
            continue
        kind = "train" if name == "train.yaml" else "infer"
        config = _parse(texts[name], name)
        problems = lfargs.check(config, kind)
        if problems:
            key, message = problems[0]
            origin = r.where(f"llamafactory.{key}")
            more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
            raise FactoryKitError(f"{origin}: `llamafactory.{key}` in rendered {name}: {message}{more}")
        out.configs[name] = config
    if "deepspeed.json" in texts:  # checked by DeepSpeed's own classes in `check` and `train` (recipe.dsconfig)
        source = ctx.pop("deepspeed_source", None) or f"{ctx['deepspeed']} (rendered for `hardware: {ctx['hardware']}`)"
        ctx["deepspeed_check"] = {"config": json.loads(texts["deepspeed.json"]), "source": source,
                                  "train": out.configs["train.yaml"], "env": launch_env}
    if write:
        out.out_dir.mkdir(parents=True, exist_ok=True)
        for stale in out.out_dir.glob("*"):
            if stale.is_file() and stale.name not in texts:
                stale.unlink()
        for name, text in texts.items():
            path = out.out_dir / name
            io.write_if_changed(path, text)
            out.files[name] = path
        # The web UI cannot read CLI YAMLs: also write its saved-arguments file for this recipe.
        out.files["llamaboard.yaml"] = write_llamaboard_config(project, r.name, out.configs["train.yaml"], ctx)
    return out


def _deepspeed_text(r: recipe_mod.Recipe, ctx: dict[str, Any], env: jinja2.Environment, project: Path) -> str:
    """deepspeed.json: rendered from deepspeed/zero.json.j2, or the recipe's own `deepspeed_config` file
    copied as it is (so build/ and the run's record hold what ran), after a JSON check naming its line."""
    own = r.data.get("deepspeed_config")
    if not own:
        return env.get_template("deepspeed/zero.json.j2").render(**ctx).strip() + "\n"
    where = r.where("deepspeed_config")
    path = Path(own) if Path(own).is_absolute() else project / own
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FactoryKitError(f"{where}: `deepspeed_config: {own}` cannot be read ({exc.__class__.__name__}: "
                              f"{getattr(exc, 'strerror', None) or exc}); give a DeepSpeed JSON file relative to "
                              "the project") from None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FactoryKitError(f"{own}:{exc.lineno}: not valid JSON ({exc.msg}, column {exc.colno}); "
                              f"named by `deepspeed_config` in {where}") from None
    if not isinstance(config, dict):
        raise FactoryKitError(f"{own}: a DeepSpeed config is a JSON object ({{...}}); named by {where}")
    ctx["deepspeed_source"] = f"{own} (`deepspeed_config` in {where})"
    return text if text.endswith("\n") else text + "\n"


def launch_environment(ctx: dict[str, Any]) -> dict[str, str]:
    """torchrun / ray variables that llamafactory-cli reads: the hardware row's ``env``, with
    ``{nodes.count}`` and the like filled from the recipe's ``nodes`` section. A DeepSpeed row always
    launches through torchrun (FORCE_TORCHRUN=1), even on one GPU and even if its row forgets the variable:
    LLaMA-Factory only starts DeepSpeed's distributed engine under torchrun."""
    nodes = SimpleNamespace(**ctx["nodes"])
    row = catalog.hardware()[ctx["hardware"]]
    env = {key: str(value).format(nodes=nodes) for key, value in row.env.items()}
    if row.deepspeed:
        env = {"FORCE_TORCHRUN": "1", **env}
        env["FORCE_TORCHRUN"] = "1"  # a row's "0" would start DeepSpeed without its launcher
        env.setdefault("NPROC_PER_NODE", str(nodes.gpus_per_node))
    return env
