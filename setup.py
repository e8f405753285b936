"""Build hook (metadata lives in setup.cfg): a wheel carries what ships.

The checkout keeps templates/, recipes/ and data/samples/ at its top level (the design's layout).
A built package has no checkout beside it, so ``build_py`` copies them into the package as
``factory_kit/_shipped/`` (same layout), where ``core/paths.py`` looks first. An editable install
(``pip install -e .``) reads the checkout's folders directly, so nothing is copied then.
MANIFEST.in puts the same folders into an sdist, so a wheel built from the sdist has them too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = ("templates", "recipes", "data/samples")  # relative to the checkout; kept under _shipped/
TARGET = ("factory_kit", "_shipped")


def shipped_files() -> list[Path]:
    """Every file of the shipped folders, relative to the checkout (caches left out)."""
    files = []
    for folder in SHIPPED:
        if not (ROOT / folder).is_dir():
            raise SystemExit(f"{ROOT / folder}: missing; build from a checkout or an sdist of factory-kit")
        files += [p.relative_to(ROOT) for p in sorted((ROOT / folder).rglob("*"))
                  if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith(".")]
    return files


class BuildPyWithShipped(build_py):
    """``build_py`` plus the shipped folders under ``factory_kit/_shipped/`` (not in editable mode)."""

    def _shipped_mapping(self) -> dict[str, str]:
        return {str(Path(self.build_lib, *TARGET, rel)): str(ROOT / rel) for rel in shipped_files()}

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        stale = Path(self.build_lib, *TARGET)
        if stale.exists():  # a file removed from the checkout must not ship from an old build
            shutil.rmtree(stale)
        for target, source in self._shipped_mapping().items():
            self.mkpath(str(Path(target).parent))
            self.copy_file(source, target)

    def get_outputs(self, include_bytecode: int = 1) -> list[str]:
        outputs = super().get_outputs(include_bytecode)
        return outputs if self.editable_mode else [*outputs, *self._shipped_mapping()]


setup(cmdclass={"build_py": BuildPyWithShipped})
