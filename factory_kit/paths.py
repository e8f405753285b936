"""Where things live.

The *kit* directory holds what ships with factory-kit (templates/, recipes/, data/samples/).
The *project* directory is the user's working folder (normally the current directory):
recipes/, data/, dataset_info/, build/, outputs/, models/ are resolved against it.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
KIT_DIR = PACKAGE_DIR.parent
TEMPLATES_DIR = KIT_DIR / "templates"
SHIPPED_RECIPES_DIR = KIT_DIR / "recipes"
SAMPLES_DIR = KIT_DIR / "data" / "samples"
CATALOG_DIR = PACKAGE_DIR / "catalog"


def project_dir() -> Path:
    """The user's project folder: $FACTORY_KIT_PROJECT or the current directory."""
    return Path(os.environ.get("FACTORY_KIT_PROJECT") or os.getcwd()).resolve()


def data_dir() -> Path:
    return project_dir() / "data"


def registry_dir() -> Path:
    return project_dir() / "dataset_info"


def build_dir() -> Path:
    return project_dir() / "build"


def outputs_dir() -> Path:
    return project_dir() / "outputs"


def models_dir() -> Path:
    return project_dir() / "models"


def relative(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` for messages and reports; as given when it lies outside."""
    try:
        return str(Path(path).resolve().relative_to(Path(base).resolve()))
    except ValueError:
        return str(path)
