"""A regular install works outside the checkout: the wheel carries templates/, recipes/ and
data/samples/, and a new user's first hour runs from it in a folder far from the repository.

The wheel is built from a copy of the checkout (what a clone holds), with setuptools' scratch
folder kept out of `build/`, the project's rendered-config folder. It is installed into a fresh
venv whose only link to the checkout's venv is a .pth line naming its site-packages (torch and
LLaMA-Factory are reused, not reinstalled); .pth files inside that folder are not processed, so
the checkout's editable install cannot leak in (asserted).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from factory_kit.run import launch

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("templates", "recipes", "data/samples")  # setup.py's list
BUILD_INPUTS = ("setup.py", "setup.cfg", "pyproject.toml", "MANIFEST.in", "README.md", "factory_kit", *SHIPPED)


def _source_copy(dest: Path) -> Path:
    """What a clone of the repository holds, as far as a build reads it (no caches, no user data)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "_shipped")
    for name in BUILD_INPUTS:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        else:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """`pip wheel . --no-deps --no-build-isolation` (offline) from a copy of the checkout."""
    src = _source_copy(tmp_path_factory.mktemp("src"))
    dist = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation",
                           "--no-index", "-q", "-w", str(dist)], cwd=src, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (src / "build").exists(), "setuptools wrote into build/, the project's rendered-config folder"
    assert (src / ".cache" / "setuptools-build").is_dir()
    (found,) = dist.glob("factory_kit-*.whl")
    return found


def test_wheel_carries_what_ships(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in SHIPPED:
        files = [p for p in (ROOT / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        assert files, folder
        for path in files:
            assert f"factory_kit/_shipped/{path.relative_to(ROOT).as_posix()}" in names, path
    for name in ("lf_args.json", "models.yaml", "profiles.yaml", "ollama.yaml"):
        assert f"factory_kit/recipe/catalog/{name}" in names, name
    assert "factory_kit/ship/pipeline.py" in names
    for preset in (ROOT / "factory_kit" / "synth" / "endpoints").glob("*.yaml"):  # synth endpoint presets
        assert f"factory_kit/synth/endpoints/{preset.name}" in names, preset
    assert not any(n.startswith(("tests/", "build/")) for n in names)


def test_tools_are_found_from_their_own_install(monkeypatch, tmp_path):
    """A venv that reuses another's packages has no llamafactory-cli beside its Python, and PATH need
    not name the other venv: the script the package installed is used."""
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    for name in ("llamafactory-cli", "lm_eval"):
        found = Path(launch.executable(name))
        assert found.name == name and os.access(found, os.X_OK)


def _venv(root: Path, wheel: Path) -> Path:
    """A venv with the wheel installed, reusing this venv's packages through one .pth line."""
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    # install before the .pth exists: pip must not see the checkout's editable factory-kit
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                           "--no-index", "-q", str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "_reuse_checkout_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def test_installed_wheel_runs_the_whole_flow(wheel, tiny_model, tmp_path):
    start = time.monotonic()
    venv = _venv(tmp_path, wheel)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FACTORY_KIT_PROJECT", "VIRTUAL_ENV")}
    # no checkout venv on PATH: llamafactory-cli and lm_eval must be found from the install itself
    env.update(launch.OFFLINE_ENV, PATH=f"{venv / 'bin'}{os.pathsep}/usr/local/bin:/usr/bin:/bin", COLUMNS="100")
    work = tmp_path / "work"
    work.mkdir()

    def run(cwd: Path, *args: str) -> str:
        done = subprocess.run([str(venv / "bin" / "factory-kit"), *args], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=600)
        out = done.stdout + done.stderr
        assert done.returncode == 0, f"factory-kit {' '.join(args)}:\n{out[-4000:]}"
        return out

    probe = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import json, sys, factory_kit; from factory_kit.core import paths; "
         "print(json.dumps([factory_kit.__file__, str(paths.KIT_DIR), str(paths.TEMPLATES_DIR), "
         "sorted(m for m in sys.modules if 'editable' in m)]))"],
        cwd=work, env=env, capture_output=True, text=True, check=True)
    package, kit, templates, editable = json.loads(probe.stdout)
    assert Path(package).is_relative_to(venv) and not Path(package).is_relative_to(ROOT), package
    assert Path(kit) == Path(package).parent / "_shipped" and Path(templates).is_relative_to(kit)
    assert editable == [], "the checkout's editable finder leaked into the new venv"

    # a project of one's own, outside the repository
    out = run(work, "init", "proj")
    proj = work / "proj"
    assert "wrote proj/recipes/base.yaml" in out
    assert json.loads((proj / "dataset_info" / "dataset_info.json").read_text()) == {}
    assert "build/" in (proj / ".gitignore").read_text()
    (proj / "models").mkdir()
    (proj / "models" / "tiny-qwen2").symlink_to(tiny_model, target_is_directory=True)
    rows = [{"instruction": f"第{i}问：黄芪的主要功效是什么？", "input": "", "output": f"补气升阳，固表止汗，利水消肿。({i})"}
            for i in range(24)]
    (work / "qa.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    exam = (ROOT / "data" / "samples" / "exam_mcq.jsonl").read_text(encoding="utf-8").splitlines()
    by_subject: dict[str, list[str]] = {}
    for line in exam:
        by_subject.setdefault(json.loads(line)["subject"], []).append(line)
    (work / "exam.jsonl").write_text("".join(line + "\n" for group in by_subject.values() for line in group[:2]),
                                     encoding="utf-8")
    run(proj, "data", "import", "../qa.jsonl", "--name", "qa", "--split", "0.8,0.2")
    run(proj, "data", "import", "../exam.jsonl", "--name", "exam")
    assert (proj / "data" / "benchmarks" / "exam.jsonl").is_file()

    run(proj, "new", "--model", "models/tiny-qwen2", "--dataset", "qa_train", "--name", "mine")
    recipe = proj / "recipes" / "mine.yaml"
    data = YAML(typ="safe").load(recipe.read_text(encoding="utf-8"))  # the user edits it for a CPU
    data["precision"] = "fp32"
    data["train"] = {"epochs": 1, "learning_rate": 2.0e-3, "cutoff_len": 128, "batch_size": 8, "grad_accum": 1,
                     "logging_steps": 1, "save_steps": 1000, "workers": 1}
    YAML(typ="safe").dump(data, recipe)
    assert "using project recipe recipes/mine.yaml" in run(proj, "check", "mine")
    run(proj, "train", "mine")
    assert (proj / "outputs" / "mine" / "adapter_config.json").is_file()
    run(proj, "eval", "mine", "--baseline")
    assert (proj / "outputs" / "mine" / "eval" / "before-after.md").is_file()
    run(proj, "report", "mine")
    assert (proj / "outputs" / "mine" / "report" / "report.md").is_file()

    # the demo in an empty folder: the shipped demo-tiny recipe (extends tcm-lora, base) from the wheel
    empty = work / "empty"
    (empty / "models").mkdir(parents=True)
    (empty / "models" / "tiny-qwen2").symlink_to(tiny_model, target_is_directory=True)
    out = run(empty, "demo")
    assert "using shipped recipe demo-tiny" in out
    summary = out[out.index("factory-kit demo"):]
    for expected in ("tcm_qa (alpaca): 80 rows", "build/demo-tiny/train.yaml", "falling", "outputs/demo-tiny/merged",
                     "total time"):
        assert expected in summary, expected
    assert (empty / "outputs" / "demo-tiny" / "merged" / "model.safetensors").is_file()
    assert "using shipped recipe tcm-lora" in run(empty, "render", "tcm-lora")
    assert (empty / "build" / "tcm-lora" / "train.yaml").read_text().startswith("# ")
    assert any(line.split()[:2] == ["tcm-lora", "shipped"] for line in run(empty, "ls", "recipes").splitlines())
    print(f"wheel flow: {time.monotonic() - start:.1f} s")
