"""A real tiny training run, then `eval --baseline`, `compare`, `report` and do_predict on it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from factory_kit.run import train
from factory_kit.cli.evaluate import compare, eval_cmd, report
from factory_kit.evaluate import benchmarks as bm
from factory_kit.core.paths import KIT_DIR, SAMPLES_DIR

from eval_helpers import write_jsonl

QA = [("麻黄汤的君药是什么？", "麻黄汤以麻黄为君药，发汗解表。"), ("肝开窍于何处？", "肝开窍于目。"),
      ("脾的主要功能？", "脾主运化、主统血。"), ("肾主什么？", "肾藏精，主水，主纳气。"),
      ("四君子汤组成？", "人参、白术、茯苓、甘草。"), ("六味地黄丸主治？", "肾阴虚证。"),
      ("心主什么？", "心主血脉，主神志。"), ("肺主什么？", "肺主气司呼吸，主宣发肃降。")]
ALPACA_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output"}


def make_project(root: Path, model: Path) -> Path:
    proj = root / "proj"
    shutil.copytree(KIT_DIR / "recipes", proj / "recipes")
    (proj / "models").mkdir(parents=True)
    (proj / "models" / "tiny-qwen2").symlink_to(model, target_is_directory=True)
    rows = [{"instruction": q, "input": "", "output": a} for q, a in QA]
    write_jsonl(proj / "dataset_info" / "tcm_qa_train.jsonl", rows * 3)
    write_jsonl(proj / "dataset_info" / "tcm_consultations.jsonl", rows[:4])
    write_jsonl(proj / "dataset_info" / "tcm_qa_val.jsonl", rows[:4])
    info = {name: {"file_name": f"{name}.jsonl", "formatting": "alpaca", "columns": ALPACA_COLUMNS}
            for name in ("tcm_qa_train", "tcm_consultations", "tcm_qa_val")}
    (proj / "dataset_info" / "dataset_info.json").write_text(json.dumps(info, ensure_ascii=False, indent=2))
    (proj / "data" / "benchmarks").mkdir(parents=True)
    # a small slice of the shipped exam keeps each lm-eval run to seconds
    items = [json.loads(l) for l in (SAMPLES_DIR / "exam_mcq.jsonl").read_text(encoding="utf-8").splitlines() if l.strip()]
    by_subject: dict[str, list] = {}
    for it in items:
        by_subject.setdefault(it["subject"], []).append(it)
    write_jsonl(proj / "data" / "benchmarks" / "exam.jsonl", [it for group in by_subject.values() for it in group[:4]])
    return proj


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model):
    proj = make_project(tmp_path_factory.mktemp("evalrun"), tiny_model)
    old_cwd, old_env = os.getcwd(), os.environ.get("FACTORY_KIT_PROJECT")
    os.chdir(proj)
    os.environ["FACTORY_KIT_PROJECT"] = str(proj)
    try:
        result = train.train("recipes/demo-tiny.yaml", ("train.eval_steps=2", "train.logging_steps=1",
                                                       "train.epochs=2"), echo=False)
        yield proj, result
    finally:
        os.chdir(old_cwd)
        if old_env is None:
            os.environ.pop("FACTORY_KIT_PROJECT", None)
        else:
            os.environ["FACTORY_KIT_PROJECT"] = old_env


def test_baseline_writes_before_after_table_and_png(trained):
    proj, _ = trained
    result = CliRunner().invoke(eval_cmd, ["recipes/demo-tiny.yaml", "--baseline", "--shots", "1"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    eval_dir = proj / "outputs" / "demo-tiny" / "eval"
    # a 1-shot run is named so that it does not overwrite the default (zero-shot) one
    base, tuned = bm.load_result(eval_dir / "base.1shot.json"), bm.load_result(eval_dir / "finetuned.1shot.json")
    assert base["adapter"] is None and tuned["adapter"].endswith("outputs/demo-tiny")
    # which weights each scored, so `report` can flag them once the adapter changes (train --resume)
    from factory_kit.run import records

    assert base["trained_weights"] is None
    assert tuned["trained_weights"]["sha256"] == records.weights_identity(proj / "outputs" / "demo-tiny")["sha256"]
    assert base["shots"] == tuned["shots"] == 1 and base["mode"] == "loglikelihood"
    assert base["overall"]["n"] == tuned["overall"]["n"] == 12
    assert set(base["benchmarks"]["exam"]["subjects"]) == {"tcm_basic_theory", "tcm_pharmacology", "clinical_medicine"}
    md = (eval_dir / "before-after.1shot.md").read_text(encoding="utf-8")
    assert "| Key | Benchmark / subject | N | base (%) | finetuned (%) | Δ (points) |" in md
    for subject in base["benchmarks"]["exam"]["subjects"]:
        assert f"exam / {subject}" in md
    assert "**Overall**" in md and "McNemar" in md
    png = eval_dir / "before-after.1shot.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    record = json.loads((eval_dir / "run.json").read_text(encoding="utf-8"))  # every run is traceable
    assert record["kind"] == "eval" and record["exit_code"] == 0 and record["packages"]["lm_eval"]
    assert [t["label"] for t in record["targets"]] == ["base", "finetuned"] and record["recipe_sha256"]
    # the adapter was really loaded: lm-eval's per-option log-likelihoods differ from the base model's
    def logliks(label):
        out = []
        for f in sorted((eval_dir / f".{label}.1shot" / "lm_eval").rglob("samples_*.jsonl")):
            out += [json.loads(l)["resps"] for l in f.read_text().splitlines()]
        return out
    assert len(logliks("base")) == len(logliks("finetuned")) == 12
    assert logliks("base") != logliks("finetuned")

    # compare any two result files
    out = proj / "cmp"
    result = CliRunner().invoke(compare, [str(eval_dir / "base.1shot.json"), str(eval_dir / "finetuned.1shot.json"),
                                          "--out", str(out), "--label-a", "before", "--label-b", "after"])
    assert result.exit_code == 0, result.output
    assert "| before (%) | after (%) |" in (proj / "cmp.md").read_text(encoding="utf-8")
    assert (proj / "cmp.png").stat().st_size > 5000
    rows = json.loads((proj / "cmp.json").read_text())["rows"]
    overall = rows[-1]
    assert overall["a"] == base["overall"]["accuracy"] and overall["b"] == tuned["overall"]["accuracy"]
    assert "different numbers of items" not in (proj / "cmp.md").read_text(encoding="utf-8")
    # a run over fewer items (--limit) is compared on the items both scored, and says so
    tuned_items = [json.loads(l) for l in (eval_dir / "finetuned.1shot.items.jsonl").read_text().splitlines()]
    kept = tuned_items[::2]
    write_jsonl(proj / "lim" / "limited.items.jsonl", kept)
    limited = dict(tuned, limit=2, **bm.summarize(kept), items_file="limited.items.jsonl")
    (proj / "lim" / "limited.json").write_text(json.dumps(limited), encoding="utf-8")
    result = CliRunner().invoke(compare, [str(eval_dir / "base.1shot.json"), str(proj / "lim" / "limited.json"),
                                          "--out", str(proj / "cmp2")])
    assert result.exit_code == 0, result.output
    text = (proj / "cmp2.md").read_text(encoding="utf-8")
    n = len(kept)
    assert f"different items (A: 12, B: {n}; --limit None vs 2)" in text and f"only the {n} items both scored" in text
    assert json.loads((proj / "cmp2.json").read_text())["rows"][-1]["n"] == n


def test_report_renders_real_loss_curves(trained):
    proj, train_result = trained
    assert train_result.losses and train_result.eval_losses
    result = CliRunner().invoke(report, ["recipes/demo-tiny.yaml"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report_dir = proj / "outputs" / "demo-tiny" / "report"
    md = (report_dir / "report.md").read_text(encoding="utf-8")
    png = report_dir / "loss.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 5000
    first, last = train_result.losses[0][1], train_result.losses[-1][1]
    assert f"Train loss {first:.4f}" in md and f"{last:.4f}" in md
    assert "Eval loss" in md
    assert "(chain: demo-tiny.yaml <- tcm-lora.yaml <- base.yaml)" in md  # the merged recipe, as trained
    assert "eval_steps: 2  # from --set" in md
    assert "model_name_or_path: models/tiny-qwen2" in md  # the rendered config
    assert "| tcm_qa_train | 24 |" in md and "| tcm_qa_val (eval) | 4 |" in md  # dataset cards
    run = json.loads((proj / "outputs" / "demo-tiny" / "run.json").read_text())
    assert run["recipe_sha256"] in md and run["packages"]["llamafactory"] in md
    # "Reproduce" gives the command that produced the benchmark numbers shown (files, shots), not the default
    assert "factory-kit eval recipes/demo-tiny.yaml --baseline -b data/benchmarks/exam.jsonl --shots 1 " \
           "--mode loglikelihood" in md
    html = (report_dir / "report.html").read_text(encoding="utf-8")
    assert "<table>" in html and 'src="loss.png"' in html
    # an output folder works as RUN too
    result = CliRunner().invoke(report, [str(proj / "outputs" / "demo-tiny"), "--no-html", "--out", "rep2"])
    assert result.exit_code == 0, result.output
    assert (proj / "rep2" / "report.md").is_file() and not (proj / "rep2" / "report.html").exists()


def test_report_shows_what_the_run_used_not_a_later_render(trained):
    proj, _ = trained
    from factory_kit.recipe.render import render

    render("recipes/demo-tiny.yaml", ["train.learning_rate=9e-9"])  # build/ now differs from the run
    result = CliRunner().invoke(report, ["recipes/demo-tiny.yaml", "--no-html", "--out", "rep3"])
    assert result.exit_code == 0, result.output
    md = (proj / "rep3" / "report.md").read_text(encoding="utf-8")
    assert "outputs/demo-tiny/rendered/train.yaml" in md and "learning_rate: 0.002" in md
    assert "9.0e-09" not in md


def test_report_on_an_eval_folder_and_failed_eval_records(trained):
    proj, _ = trained
    failed = CliRunner().invoke(eval_cmd, ["recipes/demo-tiny.yaml", "-b", "nope", "--out", "outputs/ev"])
    assert failed.exit_code == 2 and "benchmark 'nope' not found" in failed.output
    record = json.loads((proj / "outputs" / "ev" / "run.json").read_text())
    assert record["exit_code"] == 2 and "benchmark 'nope' not found" in record["error"]
    history = (proj / "outputs" / "ev" / "runs.jsonl").read_text().splitlines()
    assert len(history) == 1 and json.loads(history[0])["exit_code"] == 2
    result = CliRunner().invoke(report, ["outputs/ev"])
    assert result.exit_code == 2 and "holds `factory-kit eval` results, not a training run" in result.output


def test_report_without_a_run_fails_clearly(trained):
    result = CliRunner().invoke(report, ["recipes/tcm-lora.yaml"])
    assert result.exit_code != 0
    assert "no run.json" in result.output and result.output.strip().count("\n") == 0


def test_generation_metrics_through_do_predict(trained):
    proj, _ = trained
    result = CliRunner().invoke(eval_cmd, ["recipes/demo-tiny.yaml", "--no-benchmarks", "--predict",
                                           "--max-samples", "3", "--max-new-tokens", "8"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    gen_dir = proj / "outputs" / "demo-tiny" / "eval" / "generation"
    record = json.loads((gen_dir / "generation.json").read_text())
    assert set(record["metrics"]) == {"bleu-4", "rouge-1", "rouge-2", "rouge-l"}
    assert all(0.0 <= v <= 100.0 for v in record["metrics"].values())
    rows = [json.loads(l) for l in (gen_dir / "generated_predictions.jsonl").read_text().splitlines()]
    assert len(rows) == record["rows"] == 3
    assert {"prompt", "predict", "label"} <= set(rows[0])
    assert rows[0]["label"].strip() == QA[0][1]
    # the report picks the generation metrics up
    CliRunner().invoke(report, ["recipes/demo-tiny.yaml"], catch_exceptions=False)
    md = (proj / "outputs" / "demo-tiny" / "report" / "report.md").read_text(encoding="utf-8")
    assert "| bleu-4 |" in md
