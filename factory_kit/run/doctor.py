"""`factory-kit doctor`: what this machine has (Python, torch, CUDA, GPUs, the packages LLaMA-Factory
can use) and which shipped recipes can run here, and why not.

Fast on purpose (well under 3 s): package versions come from installed metadata, GPUs from
``nvidia-smi``, torch's CUDA build from its ``version.py``; nothing imports torch or llamafactory.
Whether a recipe runs is what ``check`` says about this machine (recipe/checks.py check_machine)
plus the memory planner (recipe/plan.py) against this machine's GPU, or its RAM on a CPU.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from importlib import metadata, util
from pathlib import Path

from factory_kit.core import paths
from factory_kit.core.errors import FactoryKitError

# (distribution, what factory-kit uses it for): the packages a recipe may need, in the order shown.
PACKAGES = (
    ("torch", "training (every recipe)"), ("llamafactory", "the trainer (`factory-kit train`)"),
    ("transformers", "models and tokenizers"), ("peft", "LoRA / QLoRA / DoRA adapters"),
    ("accelerate", "device placement"), ("trl", "dpo, kto, ppo stages"),
    ("deepspeed", "hardware: ds-z2, ds-z3, ds-z3-offload"), ("flash-attn", "FlashAttention-2 (faster attention)"),
    ("liger-kernel", "Liger kernels (less memory: fused loss)"), ("bitsandbytes", "method: qlora (CUDA only)"),
    ("vllm", "infer.backend: vllm (fast generation)"), ("ray", "hardware: ray"),
    ("llama-cpp-python", "GGUF models (llama.cpp)"),
)
NVIDIA_SMI_QUERY = ("nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader,nounits")


@dataclass(frozen=True)
class Device:
    name: str
    memory_gb: float
    driver: str = ""


@dataclass
class Machine:
    python: str
    system: str
    cpus: int
    ram_gb: float | None
    torch: str | None  # version, or None when not installed
    torch_cuda: str | None  # the CUDA version torch was built for (None: a CPU build)
    gpus: list[Device] = field(default_factory=list)
    gpu_note: str = ""  # why no GPU is listed
    packages: dict[str, str | None] = field(default_factory=dict)  # distribution -> version (None: missing)


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _ram_gb() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024 ** 3
    except (ValueError, OSError, AttributeError):  # not on Linux/macOS
        return None


def _torch_cuda() -> str | None:
    """torch.version.cuda read from torch/version.py itself: importing torch takes seconds."""
    spec = util.find_spec("torch")
    folder = Path(spec.origin).parent if spec and spec.origin else None
    if folder is None or not (folder / "version.py").is_file():
        return None
    try:
        text = (folder / "version.py").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    found = re.search(r"^cuda\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", text, re.MULTILINE)  # cuda = None: a CPU build
    return found.group(1) if found else None


def gpus_here() -> tuple[list[Device], str]:
    """This machine's NVIDIA GPUs (nvidia-smi), or none and why."""
    if shutil.which(NVIDIA_SMI_QUERY[0]) is None:
        return [], "no NVIDIA GPU (nvidia-smi is not on PATH)"
    try:
        done = subprocess.run(NVIDIA_SMI_QUERY, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [], f"nvidia-smi failed ({exc.__class__.__name__})"
    if done.returncode != 0:
        return [], f"nvidia-smi failed: {(done.stderr or done.stdout).strip().splitlines()[:1]}"
    found = []
    for line in done.stdout.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 2:
            try:
                found.append(Device(parts[0], float(parts[1]) / 1024, parts[2] if len(parts) > 2 else ""))
            except ValueError:
                continue
    return found, "" if found else "nvidia-smi lists no GPU"


def machine() -> Machine:
    gpus, note = gpus_here()
    return Machine(
        python=platform.python_version(), system=f"{platform.system()} {platform.machine()}",
        cpus=os.cpu_count() or 1, ram_gb=_ram_gb(), torch=_version("torch"), torch_cuda=_torch_cuda(),
        gpus=gpus, gpu_note=note, packages={name: _version(name) for name, _ in PACKAGES},
    )


@dataclass(frozen=True)
class Verdict:
    recipe: str
    runs: bool
    why: str


def _recipe_files() -> list[Path]:
    return sorted(paths.SHIPPED_RECIPES_DIR.glob("*.yaml"))


def recipe_verdict(path: Path, here: Machine, project: Path) -> Verdict | None:
    """Whether one recipe can train on this machine, and the first reason it cannot; None for a recipe
    that only other recipes extend (no model)."""
    from factory_kit.recipe import catalog, plan
    from factory_kit.recipe.checks import check_machine
    from factory_kit.recipe.render import render

    name = path.stem
    try:
        out = render(path, write=False, check_data=False, project=project)
        out.context.pop("deepspeed_check", None)  # `check` runs DeepSpeed's config classes (seconds: torch)
        problems = check_machine(out.context, project)
    except FactoryKitError as exc:
        if "`model` is required" in str(exc):
            return None
        return Verdict(name, False, _short(str(exc)))
    if problems:
        return Verdict(name, False, _short(problems[0]))
    ctx = out.context
    hardware = catalog.hardware()[ctx["hardware"]]
    method = catalog.methods()[ctx["method"]]
    found = plan.plan_recipe(out.recipe, ctx, project, use_recipe_gpu=False)
    need = found.setup.gpus if found else 1
    if not here.gpus:
        if hardware.deepspeed or method.quantised:
            what = f"`hardware: {hardware.name}` (DeepSpeed)" if hardware.deepspeed else f"`method: {method.name}`"
            return Verdict(name, False, f"{what} needs a CUDA GPU; {here.gpu_note}")
        if found is None:
            return Verdict(name, True, "on the CPU (model size unknown)")
        cpu = found.estimate.total - plan.constants()["cuda_context_gb"]
        if here.ram_gb and cpu > here.ram_gb:
            return Verdict(name, False, f"needs about {cpu:.0f} GB and this CPU machine has {here.ram_gb:.0f} GB RAM")
        return Verdict(name, True, f"on the CPU, about {max(cpu, 0.1):.1f} GB")
    if need > len(here.gpus) and hardware.name != "multi-node":
        return Verdict(name, False, f"needs {need} GPUs, this machine has {len(here.gpus)}")
    if found is None:
        return Verdict(name, True, "model size unknown: memory not checked")
    gpu = plan.gpu_for_device(here.gpus[0].name, here.gpus[0].memory_gb)
    fitted = plan.fit(found.shape, found.setup, gpu, found.params)
    if not fitted.fits:
        return Verdict(name, False, f"needs about {fitted.estimate.total:.0f} GB per GPU, {gpu.name} has "
                                    f"{gpu.memory_gb:g} GB: {fitted.advice()}")
    return Verdict(name, True, f"about {fitted.estimate.total:.0f} of {gpu.memory_gb:g} GB per GPU")


def _short(message: str) -> str:
    """A check's message without its leading recipe path (the table names the recipe) and without its
    fix (`factory-kit check RECIPE` prints that whole): what is missing, in one short line."""
    head, sep, rest = message.partition(": ")
    text = rest if sep and head.endswith((".yaml", "--set")) else message
    return text.split("; ")[0]


def recipe_verdicts(here: Machine, project: Path | None = None) -> list[Verdict]:
    project = project or paths.project_dir()
    found = (recipe_verdict(path, here, project) for path in _recipe_files())
    return [v for v in found if v is not None]


def report(here: Machine, verdicts: list[Verdict]) -> object:
    """One rich table (compact at 80 columns): the machine, the packages, the recipes."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False, title="factory-kit doctor")
    table.add_column("what", no_wrap=True)
    table.add_column("here", overflow="fold")
    table.add_column("note", overflow="fold")
    ram = f", {here.ram_gb:.0f} GB RAM" if here.ram_gb else ""
    table.add_row("python", here.python, f"{here.system}, {here.cpus} CPUs{ram}")
    cuda = f"CUDA {here.torch_cuda} build" if here.torch_cuda else "CPU build"
    table.add_row("torch", here.torch or "[red]not installed[/]", cuda if here.torch else "pip install torch")
    if here.gpus:
        for i, gpu in enumerate(here.gpus):
            table.add_row(f"gpu {i}", escape(gpu.name), f"{gpu.memory_gb:.0f} GB, driver {gpu.driver}")
    else:
        table.add_row("gpu", "[yellow]none[/]", escape(here.gpu_note) + "; CPU training needs `precision: fp32`")
    table.add_section()
    for name, use in PACKAGES:
        if name == "torch":
            continue
        version = here.packages.get(name)
        table.add_row(name, version or "[dim]-[/]", use)
    table.add_section()
    for v in verdicts:
        table.add_row(v.recipe, "[green]yes[/]" if v.runs else "[red]no[/]", escape(v.why))
    return table
