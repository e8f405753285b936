"""Shared fixtures: one tiny model per test session, and throwaway project folders."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from factory_kit.run import launch, tinymodel
from factory_kit.core.paths import KIT_DIR

os.environ.update(launch.OFFLINE_ENV)

# Test tiers, assigned here so test files need no markers: `make test-fast` (-m "not slow") is
# the inner loop; `make test` runs everything. A test is slow when it needs a fixture that runs
# real parts (the tiny model, so llamafactory-cli/lm-eval runs on it; a web UI; a browser), or
# is listed below because it starts such a part itself or feeds stress-sized input.
SLOW_FIXTURES = {"tiny_model", "ui", "webui_project"}
SLOW_TESTS = {
    "test_lfargs.py::test_snapshot_matches_installed_llamafactory",  # imports llamafactory.hparams
    "test_data_llamafactory.py::test_every_written_shape_aligns_in_llamafactory",  # LF's loader, ~20 s
    "test_data_badinput.py::test_ten_megabyte_row",  # 10 MB row, imported twice, ~8 s
    "test_data_quality.py::test_streaming_memory_is_bounded",  # 200k rows in a child, ~8 s
    "test_hub.py::test_push_commits_files_and_card_without_the_token",  # two `factory-kit push` children, ~12 s
    "test_synth_kill.py::test_kill_9_mid_run_resumes_without_repeating_paid_calls",  # two CLI processes, ~10 s
    "test_synth_kill.py::test_sigterm_stops_cleanly_and_sends_nothing_queued",  # a CLI process, ~4 s
    "test_ray.py::test_local_ray_cluster_places_the_workers",  # a real local Ray cluster, ~30-50 s
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        name = f"{item.path.name}::{item.originalname}"
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or name in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)


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


ALPACA_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output", "system": "system"}
SHAREGPT = {"columns": {"messages": "conversations", "system": "system"},
            "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"}}


def fake_registry(project: Path) -> Path:
    """A dataset_info.json with one dataset of every shape the recipes name (tiny files)."""
    import json

    data = project / "data"
    data.mkdir(exist_ok=True)
    rows = {
        "qa": [{"instruction": f"黄芪的功效{i}？", "input": "", "output": "补气升阳，固表止汗。", "system": ""} for i in range(8)],
        "chat": [{"conversations": [{"from": "human", "value": "头痛怎么办？"}, {"from": "gpt", "value": "请先测血压。"}],
                  "system": ""} for _ in range(8)],
        "text": [{"text": "【黄芪】味甘，微温。归脾、肺经。补气升阳。"} for _ in range(8)],
        "pref": [{"instruction": "感冒能用抗生素吗？", "input": "", "chosen": "病毒性感冒一般不需要。", "rejected": "必须用。"}
                 for _ in range(8)],
        "kto": [{"instruction": "感冒能用抗生素吗？", "input": "", "output": "一般不需要。" if i % 2 else "必须用。",
                 "label": bool(i % 2)} for i in range(8)],
    }
    for name, items in rows.items():
        (data / f"{name}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in items),
                                            encoding="utf-8")
    entries = {
        "tcm_qa_train": {"file_name": "../data/qa.jsonl", "columns": ALPACA_COLUMNS},
        "tcm_qa_val": {"file_name": "../data/qa.jsonl", "columns": ALPACA_COLUMNS},
        "medical_o1_cot": {"file_name": "../data/qa.jsonl", "columns": ALPACA_COLUMNS},
        "tcm_consultations": {"file_name": "../data/chat.jsonl", "formatting": "sharegpt", **SHAREGPT},
        "tcm_herbs": {"file_name": "../data/text.jsonl", "columns": {"prompt": "text"}},
        "tcm_pref": {"file_name": "../data/pref.jsonl", "ranking": True,
                     "columns": {"prompt": "instruction", "query": "input", "chosen": "chosen", "rejected": "rejected"}},
        "tcm_kto": {"file_name": "../data/kto.jsonl",
                    "columns": {"prompt": "instruction", "query": "input", "response": "output", "kto_tag": "label"}},
    }
    reg = project / "dataset_info"
    reg.mkdir(exist_ok=True)
    (reg / "dataset_info.json").write_text(json.dumps(entries, ensure_ascii=False, indent=2), encoding="utf-8")
    return reg


@pytest.fixture
def registry_project(project) -> Path:
    """A project whose dataset_info.json has every dataset the shipped recipes name."""
    fake_registry(project)
    return project
