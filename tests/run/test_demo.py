"""The main job end to end, as a newcomer runs it: `factory-kit demo` on the embedded default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_demo_end_to_end(project, tiny_model):
    (project / "models").mkdir()
    (project / "models" / "tiny-qwen2").symlink_to(tiny_model)  # built once per session (fixture)
    exe = Path(sys.executable).parent / "factory-kit"
    done = subprocess.run([str(exe), "demo"], cwd=project, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "COLUMNS": "160"})
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    summary = out[out.index("factory-kit demo"):]
    for expected in ("tcm_qa (alpaca): 80 rows", "tcm_consultations (sharegpt): 30 rows", "build/demo-tiny/train.yaml",
                     "falling", "outputs/demo-tiny/merged", "黄芪的主要功效是什么", "total time"):
        assert expected in summary, expected
    registry = json.loads((project / "dataset_info" / "dataset_info.json").read_text())
    for name in ("tcm_qa_train", "tcm_qa_val", "tcm_consultations", "medical_o1_cot", "tcm_exam", "tcm_herbs", "tcm_pref"):
        assert name in registry, name
    assert (project / "outputs" / "demo-tiny" / "merged" / "model.safetensors").exists()
    losses = [json.loads(line)["loss"] for line in
              (project / "outputs" / "demo-tiny" / "trainer_log.jsonl").read_text().splitlines()
              if "loss" in json.loads(line)]
    assert losses[-1] < losses[0]
    answer = summary[summary.index("answer"):summary.index("total time")]
    assert len(answer.replace("answer", "").strip()) > 10, "the merged model produced no answer"
    # the merged model says which adapter it came from; a new adapter makes `chat --merged` refuse it
    from factory_kit.run import records

    out_dir = project / "outputs" / "demo-tiny"
    assert records.merged_from(out_dir / "merged")["sha256"] == records.weights_identity(out_dir)["sha256"]
    (out_dir / "adapter_model.safetensors").write_bytes(b"another adapter")
    chat = subprocess.run([str(exe), "chat", "recipes/demo-tiny.yaml", "--merged", "-q", "hi"], cwd=project,
                          capture_output=True, text=True, timeout=120)
    assert chat.returncode == 2 and "merged model is older than the adapter" in chat.stderr, chat.stderr
