"""Proof that every registered formatting loads through LLaMA-Factory's own pipeline.

Four real ``llamafactory-cli train`` runs on the tiny model (alpaca SFT, sharegpt SFT with
an OpenAI-messages import mixed in, pre-training text, DPO pairs), each asserting that
every sample reached the trainer (``Num examples``), plus one in-process check that runs
LLaMA-Factory's loader + converter over every other shape we write (CoT, MCQ, KTO,
multi-turn alpaca, sharegpt ranking, splits) and finds no row it would drop.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from factory_kit.run import launch
from factory_kit.data.importer import import_source
from factory_kit.core.paths import SAMPLES_DIR
from tests.conftest import write_train_yaml

pytestmark = pytest.mark.timeout(600)


def _train(project: Path, model: Path, dataset: str, stage: str = "sft", **extra) -> list[str]:
    cfg = write_train_yaml(project / f"train_{stage}.yaml", model, dataset, project / "dataset_info",
                           project / "outputs" / stage, stage=stage, **extra)
    result = launch.llamafactory("train", cfg, cwd=project, echo=False)
    return result.tail


def _num_examples(tail: list[str]) -> int:
    for line in tail:
        m = re.search(r"Num examples = ([\d,]+)", line)
        if m:
            return int(m.group(1).replace(",", ""))
    raise AssertionError("no 'Num examples' line in the training output:\n" + "\n".join(tail[-30:]))


def _assert_clean(tail: list[str]) -> None:
    bad = [line for line in tail if "Dropped invalid example" in line or "Invalid role tag" in line
           or "Invalid message count" in line]
    assert not bad, bad[:3]


def test_alpaca_sft_trains(project, tiny_model):
    r = import_source(SAMPLES_DIR / "tcm_qa.jsonl", "tcm_qa", split="0.8,0.1,0.1", seed=1)
    assert r.accepted == 80 and r.registered == ["tcm_qa", "tcm_qa_train", "tcm_qa_val", "tcm_qa_test"]
    tail = _train(project, tiny_model, "tcm_qa_train", eval_dataset="tcm_qa_val", per_device_eval_batch_size=4)
    _assert_clean(tail)
    assert _num_examples(tail) == 16  # max_samples 16: all loaded rows are valid


def test_sharegpt_and_openai_sft_trains(project, tiny_model, tmp_path):
    r = import_source(SAMPLES_DIR / "consultations.json", "consult")
    assert r.format == "sharegpt" and r.accepted == 30
    msgs = tmp_path / "chat.jsonl"
    with msgs.open("w", encoding="utf-8") as fh:
        for i in range(12):
            fh.write(json.dumps({"messages": [
                {"role": "system", "content": "你是一名中医师。"},
                {"role": "user", "content": f"第{i}个问题：失眠多梦怎么办？"},
                {"role": "assistant", "content": "可考虑心脾两虚，宜归脾汤加减，需面诊辨证。"},
                {"role": "user", "content": "需要注意什么？"},
                {"role": "assistant", "content": f"规律作息，睡前少用手机（{i}）。"}]}, ensure_ascii=False) + "\n")
    r2 = import_source(msgs, "chat_openai")
    assert r2.format == "openai" and r2.accepted == 12
    info = json.loads((project / "dataset_info" / "dataset_info.json").read_text())
    assert info["chat_openai"]["formatting"] == "sharegpt"
    assert info["chat_openai"]["tags"]["role_tag"] == "role"
    tail = _train(project, tiny_model, "consult,chat_openai")
    _assert_clean(tail)
    assert _num_examples(tail) == 16 + 12  # both datasets fully valid


def test_pretraining_text_trains(project, tiny_model):
    r = import_source(SAMPLES_DIR / "herb_monographs.txt", "herbs", chunk_chars=400)
    assert r.format == "text" and r.accepted >= 16
    tail = _train(project, tiny_model, "herbs", stage="pt")
    assert _num_examples(tail) >= 1  # pt packs the chunks into cutoff_len blocks


def test_dpo_ranking_trains(project, tiny_model):
    r = import_source(SAMPLES_DIR / "preference_pairs.jsonl", "tcm_pref")
    info = json.loads((project / "dataset_info" / "dataset_info.json").read_text())
    assert r.accepted == 30 and info["tcm_pref"]["ranking"] is True
    tail = _train(project, tiny_model, "tcm_pref", stage="dpo", pref_beta=0.1)
    _assert_clean(tail)
    assert _num_examples(tail) == 16


_ALIGN = textwrap.dedent("""
    import json, sys
    from llamafactory.data.parser import get_dataset_list
    from llamafactory.data.loader import _load_single_dataset
    from llamafactory.hparams import DataArguments, ModelArguments
    from transformers import Seq2SeqTrainingArguments
    dataset_dir, names = sys.argv[1], sys.argv[2].split(",")
    data_args = DataArguments(dataset_dir=dataset_dir, preprocessing_num_workers=None)
    model_args = ModelArguments(model_name_or_path="unused")
    training_args = Seq2SeqTrainingArguments(output_dir="unused", report_to="none")
    out = {}
    for name, attr in zip(names, get_dataset_list(names, dataset_dir)):
        ds = _load_single_dataset(attr, model_args, data_args, training_args)
        rows = list(ds)
        bad = 0
        for r in rows:
            n_resp = 2 if attr.ranking or attr.kto_tag else 1
            if len(r["_prompt"]) % 2 != 1 or len(r["_response"]) != n_resp \\
                    or any(not m["content"] for m in r["_prompt"]) or r["_prompt"][-1]["role"] != "user":
                bad += 1
        out[name] = {"rows": len(rows), "bad": bad, "first": rows[0]}
    print("RESULT" + json.dumps(out, ensure_ascii=False))
""")


def test_every_written_shape_aligns_in_llamafactory(project, tmp_path):
    """LLaMA-Factory's own loader + converter over CoT, MCQ, KTO, multi-turn alpaca, ranking."""
    import_source(SAMPLES_DIR / "medical_o1_cot.jsonl", "o1")
    import_source(SAMPLES_DIR / "exam_mcq.jsonl", "exam", split="0.8,0.2", stratify="subject")
    kto = tmp_path / "kto.jsonl"
    kto.write_text("\n".join(json.dumps({"prompt": f"问题{i}", "completion": f"回答{i}", "label": i % 2 == 0},
                                        ensure_ascii=False) for i in range(6)), encoding="utf-8")
    import_source(kto, "kto", fmt="preference")
    multi = tmp_path / "multi.jsonl"
    multi.write_text("\n".join(json.dumps({"instruction": f"问{i}", "input": "", "output": f"答{i}",
                                           "history": [["上一问", "上一答"]] if i == 3 else []},
                                          ensure_ascii=False) for i in range(6)), encoding="utf-8")
    import_source(multi, "multi")
    conv_pref = tmp_path / "conv_pref.jsonl"
    conv_pref.write_text("\n".join(json.dumps({
        "conversations": [{"from": "human", "value": f"问{i}"}, {"from": "gpt", "value": "答"},
                          {"from": "human", "value": "再问"}],
        "chosen": {"from": "gpt", "value": "好回答"}, "rejected": {"from": "gpt", "value": f"坏回答{i}"}},
        ensure_ascii=False) for i in range(4)), encoding="utf-8")
    import_source(conv_pref, "conv_pref")
    import_source(SAMPLES_DIR / "herb_monographs.txt", "herbs")
    names = ["o1", "exam_train", "exam_val", "kto", "multi", "conv_pref", "herbs"]
    proc = subprocess.run([sys.executable, "-c", _ALIGN, str(project / "dataset_info"), ",".join(names)],
                          capture_output=True, text=True, cwd=project, timeout=300,
                          env={**launch.BASE_ENV, **launch.OFFLINE_ENV, "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    expected = {"o1": 30, "exam_train": 48, "exam_val": 12, "kto": 6, "multi": 6, "conv_pref": 4}
    for name, n in expected.items():
        assert result[name]["rows"] == n, (name, result[name])
        assert result[name]["bad"] == 0, (name, result[name])
    assert result["o1"]["first"]["_response"][0]["content"].startswith("<think>\n")
    assert result["kto"]["first"]["_response"][1]["content"] == ""  # kto_tag true -> desirable
    assert len(result["multi"]["first"]["_prompt"]) == 1 and result["herbs"]["rows"] >= 1
    assert result["herbs"]["first"]["_prompt"][0]["content"].startswith("【黄芪】")


def test_content_parts_and_trimmed_conversations_align_in_llamafactory(project, tmp_path):
    """LLaMA-Factory's newer content-parts rows (reasoning kept as a <think> block, an empty
    system part) and conversations whose unanswered last turn was dropped load through its own
    loader + converter with no row dropped."""
    parts = tmp_path / "parts.jsonl"
    parts.write_text("\n".join(json.dumps({"messages": [
        {"role": "system", "content": [{"type": "text", "value": ""}], "loss_weight": 0.0},
        {"role": "user", "content": [{"type": "text", "value": f"问{i}"}], "loss_weight": 0.0},
        {"role": "assistant", "content": [{"type": "reasoning", "value": "先辨证。"}, {"type": "text", "value": f"答{i}"}],
         "loss_weight": 1.0}]}, ensure_ascii=False) for i in range(5)), encoding="utf-8")
    assert import_source(parts, "parts").accepted == 5
    trimmed = tmp_path / "trimmed.jsonl"
    trimmed.write_text("\n".join(json.dumps({"conversations": [
        {"from": "human", "value": f"问{i}"}, {"from": "gpt", "value": "答"}, {"from": "human", "value": "还有呢？"}]},
        ensure_ascii=False) for i in range(4)), encoding="utf-8")
    r = import_source(trimmed, "trimmed")
    assert r.accepted == 4 and r.notes == ["4 conversations: trailing unanswered turn dropped"]
    proc = subprocess.run([sys.executable, "-c", _ALIGN, str(project / "dataset_info"), "parts,trimmed"],
                          capture_output=True, text=True, cwd=project, timeout=300,
                          env={**launch.BASE_ENV, **launch.OFFLINE_ENV, "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert {k: (v["rows"], v["bad"]) for k, v in result.items()} == {"parts": (5, 0), "trimmed": (4, 0)}
    assert result["parts"]["first"]["_response"][0]["content"] == "<think>\n先辨证。\n</think>\n\n答0"
    assert result["parts"]["first"]["_system"] == ""
    assert [m["content"] for m in result["trimmed"]["first"]["_prompt"]] == ["问0"]
