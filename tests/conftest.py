"""Shared fixtures: one tiny model per test session, and throwaway project folders."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from factory_kit import launch, tinymodel
from factory_kit.paths import KIT_DIR

os.environ.update(launch.OFFLINE_ENV)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """The embedded default model, built once per session (seconds) in a temp folder."""
    cached = KIT_DIR / "models" / "tiny-qwen2"
    if tinymodel.is_built(cached):
        return cached
    path, _ = tinymodel.build(tmp_path_factory.mktemp("models") / "tiny-qwen2")
    return path


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """An empty factory-kit project folder (cwd), with the shipped recipes copied in."""
    proj = tmp_path / "proj"
    proj.mkdir()
    shutil.copytree(KIT_DIR / "recipes", proj / "recipes")
    monkeypatch.chdir(proj)
    monkeypatch.setenv("FACTORY_KIT_PROJECT", str(proj))
    return proj


def write_train_yaml(path: Path, model: Path, dataset: str, dataset_dir: Path, output_dir: Path,
                     stage: str = "sft", **extra) -> Path:
    """A minimal LLaMA-Factory train config for the tiny model (seconds on a CPU)."""
    lines = {
        "model_name_or_path": str(model), "stage": stage, "do_train": True,
        "finetuning_type": "lora", "lora_target": "all", "dataset": dataset,
        "dataset_dir": str(dataset_dir), "template": "qwen", "cutoff_len": 128,
        "max_samples": 16, "output_dir": str(output_dir), "overwrite_output_dir": True,
        "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1, "num_train_epochs": 1.0,
        "learning_rate": 1.0e-3, "logging_steps": 1, "save_strategy": "no", "report_to": "none",
        "preprocessing_num_workers": 1, "dataloader_num_workers": 0, **extra,
    }
    import json

    path.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in lines.items()))
    return path
