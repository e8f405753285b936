"""Where things live.

The *kit* directory holds what ships with factory-kit (templates/, recipes/, data/samples/): in an
installed wheel the package's ``_shipped/`` folder (setup.py copies them there), in a checkout
(editable install) the checkout's top-level folders. Both have the same layout.
The *project* directory is the user's working folder (normally the current directory):
recipes/, data/, dataset_info/, build/, outputs/, models/ are resolved against it.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent
SHIPPED_DIR = PACKAGE_DIR / "_shipped"  # only in a built wheel
KIT_DIR = SHIPPED_DIR if SHIPPED_DIR.is_dir() else PACKAGE_DIR.parent
TEMPLATES_DIR = KIT_DIR / "templates"
SHIPPED_RECIPES_DIR = KIT_DIR / "recipes"
SAMPLES_DIR = KIT_DIR / "data" / "samples"
CATALOG_DIR = PACKAGE_DIR / "recipe" / "catalog"
REGISTRY_DIRNAME = "dataset_info"  # relative to the project; also what rendered configs name as dataset_dir


def project_dir() -> Path:
    """The user's project folder: $FACTORY_KIT_PROJECT or the current directory."""
    return Path(os.environ.get("FACTORY_KIT_PROJECT") or os.getcwd()).resolve()


def data_dir(project: Path | None = None) -> Path:
    """Imported datasets (``data/NAME.jsonl``) and their side folders."""
    return Path(project or project_dir()) / "data"


def quarantine_dir(project: Path | None = None) -> Path:
    """Rejected rows, one ``NAME.jsonl`` per import, each with its reason."""
    return data_dir(project) / "quarantine"


def meta_dir(project: Path | None = None) -> Path:
    """What each import did (counts, options, hashes): ``NAME.json``."""
    return data_dir(project) / "meta"


def benchmark_dir(project: Path | None = None) -> Path:
    """Multiple-choice items kept for evaluation (``NAME.jsonl``, few-shot ``NAME.dev.jsonl``)."""
    return data_dir(project) / "benchmarks"


def registry_dir(project: Path | None = None) -> Path:
    """The folder of ``dataset_info.json``: LLaMA-Factory's ``dataset_dir``."""
    return Path(project or project_dir()) / REGISTRY_DIRNAME


def build_dir(project: Path | None = None) -> Path:
    """Rendered configs, one folder per recipe."""
    return Path(project or project_dir()) / "build"


def outputs_dir(project: Path | None = None) -> Path:
    """Training outputs, run records and evaluations, one folder per recipe."""
    return Path(project or project_dir()) / "outputs"


def models_dir(project: Path | None = None) -> Path:
    """Locally built models (the tiny demo model)."""
    return Path(project or project_dir()) / "models"


def relative(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` for messages and reports; as given when it lies outside."""
    try:
        return str(Path(path).resolve().relative_to(Path(base).resolve()))
    except ValueError:
        return str(path)
