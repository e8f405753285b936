"""`factory-kit synth` end to end against the local fault-injecting server: each mode, faults,
wrong item counts, the cached re-run, dedup against existing datasets, PII, the key, budget,
dry run, judge, and the import (registry, provenance)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from fakeserver import FaultServer

from factory_kit.cli.main import main
from factory_kit.data.importer import import_source
from factory_kit.synth.pipeline import Options, synthesize

CORPUS = """【黄芪】
本品为豆科植物蒙古黄芪的干燥根。味甘，性微温，归肺、脾经。功能补气升阳、固表止汗。

【当归】
本品为伞形科植物当归的干燥根。味甘、辛，性温，归肝、心、脾经。功能补血活血、调经止痛。

【川芎】
本品为伞形科植物川芎的干燥根茎。味辛，性温，归肝、胆、心包经。功能活血行气、祛风止痛。
"""


@pytest.fixture
def server():
    srv = FaultServer().start()
    yield srv
    srv.shutdown()


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _docs(project: Path, server: FaultServer, **kw) -> dict:
    corpus = project / "herbs.txt"
    if not corpus.exists():  # written once: two runs in threads must not see it half-written
        corpus.write_text(CORPUS, encoding="utf-8")
    opts = dict(mode="docs", source=str(corpus), name="gen", base_url=server.url, chunk_chars=80, questions=2,
                concurrency=1)
    opts.update(kw)
    return synthesize(Options(**opts), project)


def test_docs_mode_with_faults_then_a_free_rerun(project, server):
    # questions for chunk 1 fenced, chunk 2 after <think>, chunk 3 malformed; the first answer prose-wrapped
    server.faults = [("fence",), ("think",), ("malformed",), ("prose",)]
    rep = _docs(project, server)
    q, a = rep["stages"]["questions"], rep["stages"]["answer"]
    assert (q["requests"], q["parsed"], q["repaired"], q["unparseable"], q["items"]) == (3, 2, 2, 1, 4)
    assert (a["requests"], a["parsed"], a["repaired"], a["items"]) == (4, 4, 1, 4)
    assert rep["import"]["accepted"] == 4 and rep["rows"]["generated"] == 4
    rows = _read(project / "data" / "gen.jsonl")
    assert len(rows) == 4 and all(r["instruction"].endswith("？") for r in rows)
    prov = _read(project / "synth" / "gen" / "provenance.jsonl")
    assert [p["source_row"] for p in prov] == [r["source_row"] for r in rows]
    assert all(p["imported"] and p["chunk"].endswith(("#1", "#2")) and len(p["template_hash"]) == 2 for p in prov)
    rejected = _read(project / "synth" / "gen" / "rejected.jsonl")
    assert rejected[0]["reason"] == "unparseable reply" and rejected[0]["chunk"].endswith("#3")
    assert "gen" in json.loads((project / "dataset_info" / "dataset_info.json").read_text())
    assert (project / "synth" / "gen" / "report.md").read_text().count("| questions |") == 1
    sent = server.total()
    again = _docs(project, server, force=True)
    # the malformed reply is cached too (it was paid for): a re-run asks nothing at all
    assert server.total() == sent and again["requests"]["sent"] == 0 and again["requests"]["cached"] == 7
    assert _read(project / "data" / "gen.jsonl") == rows  # same rows, none twice


def test_wrong_number_of_items_is_counted_and_extra_dropped(project, server):
    server.faults = [("count", 5), ("count", 1)]
    rep = _docs(project, server, limit=2)
    q = rep["stages"]["questions"]
    assert q["wrong_count"] == 2 and q["extra_dropped"] == 3 and q["items"] == 3


def test_topics_mode_batches_and_counts(project, server):
    topics = project / "topics.yaml"
    topics.write_text("心血管内科: 7\n中医内科: 2\n方剂学: 3\n", encoding="utf-8")
    rep = synthesize(Options(mode="topics", source=str(topics), name="t", base_url=server.url, per_request=5,
                             concurrency=4), project)
    assert rep["stages"]["topic"]["requests"] == 4  # 5+2, 2, 3
    assert rep["import"]["accepted"] == 12
    prov = _read(project / "synth" / "t" / "provenance.jsonl")
    assert sum(p["topic"] == "心血管内科" for p in prov) == 7
    # the same topics under another name: every item is already in dataset t
    again = synthesize(Options(mode="topics", source=str(topics), name="t2", base_url=server.url), project)
    assert again["rows"]["after_gates"] == 0 and again["rejected"] == {"gate: duplicate of an existing dataset": 12}
    assert again["import"] == {"skipped": "no rows passed the gates"}


def test_topics_from_csv(project, server):
    f = project / "topics.csv"
    f.write_text("科室,数量\n心血管内科,2\n", encoding="utf-8")
    rep = synthesize(Options(mode="topics", source=str(f), name="c", base_url=server.url), project)
    assert rep["import"]["accepted"] == 2


@pytest.mark.parametrize("task", ["explain", "cot", "rewrite"])
def test_augment_an_imported_dataset(project, server, task):
    src = project / "exam.jsonl"
    src.write_text("\n".join(json.dumps({"instruction": f"第{i}题：气虚证首选何方？A.四君子汤 B.四物汤",
                                         "output": "A"}, ensure_ascii=False) for i in range(3)) + "\n")
    import_source(src, "exam", "alpaca", project=project)
    rep = synthesize(Options(mode="augment", source="exam", name=f"aug_{task}", task=task, base_url=server.url,
                             min_chars=1), project)
    assert rep["import"]["accepted"] == 3, rep
    rows = _read(project / "data" / f"aug_{task}.jsonl")
    if task == "explain":
        assert all(r["output"].startswith("A\n\n解析：") for r in rows)
    elif task == "cot":  # the CoT import's <think> format, the reasoning kept apart in generated.jsonl
        assert all(r["output"].startswith("<think>\n首先分析主症") and r["output"].endswith("</think>\n\nA")
                   for r in rows)
        gen = _read(project / "synth" / "aug_cot" / "generated.jsonl")
        assert all(set(g) == {"Question", "Complex_CoT", "Response"} for g in gen)
    else:
        assert all(r["instruction"].startswith("换一种问法") for r in rows)


def test_pii_redacted_before_sending_and_counted(project, server):
    corpus = project / "notes.txt"
    corpus.write_text("患者：张三，男，45岁，电话13812345678，主诉乏力自汗，予玉屏风散加减。\n", encoding="utf-8")
    seen: list[str] = []
    server.transform = lambda prompt, content: (seen.append(prompt), content)[1]
    rep = synthesize(Options(mode="docs", source=str(corpus), name="p", base_url=server.url), project)
    assert rep["redactions_sent"] == {"phone": 1, "name": 1} or rep["redactions_sent"]["phone"] >= 1
    assert seen and not any("13812345678" in p or "张三" in p for p in seen)
    seen.clear()
    synthesize(Options(mode="docs", source=str(corpus), name="p2", base_url=server.url, redact=False), project)
    assert any("13812345678" in p for p in seen)


def test_the_key_is_sent_but_never_written(project, server, monkeypatch):
    secret = "sk-FAKE-synth-key-0123456789"
    monkeypatch.setenv("MY_SYNTH_KEY", secret)
    ep = project / "ep.yaml"
    ep.write_text(f"base_url: {server.url}\nmodel: fake\napi_key_env: MY_SYNTH_KEY\nprice_input: 1\n"
                  "price_output: 2\n")
    corpus = project / "herbs.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    server.faults = [("429", 0.05), ("500",)]
    result = CliRunner().invoke(main, ["synth", "docs", str(corpus), "--name", "k", "--endpoint", str(ep),
                                       "--judge", "--judge-threshold", "1"])
    assert result.exit_code == 0, result.output
    assert any({k.lower(): v for k, v in h.items()}.get("authorization") == f"Bearer {secret}"
               for h in server.headers_seen)
    assert secret not in result.output
    written = [p for p in project.rglob("*") if p.is_file()]
    assert any(p.name == "journal.jsonl" for p in written) and len(written) > 8
    for p in written:
        assert secret.encode() not in p.read_bytes(), p


def test_budget_stops_before_it_would_be_exceeded(project, server):
    rep = _docs(project, server, budget_tokens=2000, max_tokens=1000)
    assert rep["budget"]["reached"] and rep["requests"]["not_sent_budget"] > 0
    assert rep["tokens"]["input"] + rep["tokens"]["output"] <= 2000
    assert rep["requests"]["sent"] == server.total()


def test_dry_run_sends_nothing_and_knows_the_cache(project, server):
    est = _docs(project, server, dry_run=True)
    assert server.total() == 0 and est["requests"] == 3 + 3 * 2 and est["cached"] == 0
    assert est["tokens_in"] > 0 and est["tokens_out"] <= est["tokens_out_max"]
    _docs(project, server)
    est = _docs(project, server, dry_run=True)
    assert est["stages"]["questions"]["cached"] == 3 and server.total() == 9


def test_dry_run_needs_no_key_and_prices_the_preset(project, monkeypatch):
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    corpus = project / "herbs.txt"
    corpus.write_text(CORPUS * 20, encoding="utf-8")
    result = CliRunner().invoke(main, ["synth", "docs", str(corpus), "--name", "d", "--endpoint", "deepseek",
                                       "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    est = json.loads(result.output)
    assert est["cost"] > 0 and est["currency"] == "USD" and est["cost_max"] >= est["cost"]


def test_judge_scores_are_stored_and_thresholded(project, server):
    rep = _docs(project, server, judge=True, judge_threshold=4.5)
    prov = _read(project / "synth" / "gen" / "provenance.jsonl")
    assert rep["rows"]["after_judge"] == 6 and all(p["judge"]["mean"] == 4.5 for p in prov)
    rep = _docs(project, server, name="gen2", judge=True, judge_threshold=4.6, dedup_existing=False)
    assert rep["rows"]["after_judge"] == 0 and rep["rejected"] == {"judge: mean score under 4.6": 6}


def test_two_runs_sharing_one_journal(project, server):
    server.latency = 0.05
    results = []

    errors = []

    def go(name):
        try:
            results.append(_docs(project, server, name=name, concurrency=4, dedup_existing=False))
        except BaseException as exc:  # noqa: BLE001  (shown by the assertion below)
            errors.append(f"{name}: {type(exc).__name__}: {exc}")

    (project / "herbs.txt").write_text(CORPUS, encoding="utf-8")
    threads = [threading.Thread(target=go, args=(n,)) for n in ("r1", "r2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    journal = _read(project / "synth" / "journal.jsonl")
    assert not errors, errors
    assert len(results) == 2 and all(r["import"]["accepted"] == 6 for r in results)
    assert len({e["key"] for e in journal}) == 9  # whole lines, every answer there
    assert _read(project / "data" / "r1.jsonl")[0]["instruction"] == _read(project / "data" / "r2.jsonl")[0][
        "instruction"]


def test_bad_inputs_are_one_line_errors(project, server):
    r = CliRunner().invoke(main, ["synth", "topics", "nope.yaml", "--name", "x"])
    assert r.exit_code != 0 and "nope.yaml: no such file" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["synth", "augment", "missing", "--name", "x", "--base-url", server.url])
    assert r.exit_code != 0 and "import it first" in r.output


def test_explain_skips_items_that_already_have_one(project, server):
    src = project / "exam.jsonl"
    src.write_text(json.dumps({"instruction": "气虚证首选何方？", "output": "A\n\n解析：四君子汤益气健脾。"},
                              ensure_ascii=False) + "\n" +
                   json.dumps({"instruction": "血虚证首选何方？", "output": "B"}, ensure_ascii=False) + "\n")
    rep = synthesize(Options(mode="augment", source=str(src), name="ex", task="explain", base_url=server.url,
                             min_chars=1), project)
    assert server.total() == 1 and rep["import"]["accepted"] == 1
    assert rep["rejected"] == {"input: already has an explanation": 1}


def test_judge_on_another_endpoint(project, server, monkeypatch):
    judge_srv = FaultServer().start()
    try:
        ep = project / "judge.yaml"
        ep.write_text(f"base_url: {judge_srv.url}\nmodel: judge\nprice_input: 1\nprice_output: 1\n")
        rep = _docs(project, server, judge=True, judge_endpoint=str(ep))
        assert server.total() == 9 and judge_srv.total() == 6  # generation here, the 6 scores there
        assert rep["rows"]["after_judge"] == 6 and rep["cost"] > 0  # the judge's prices, one account
    finally:
        judge_srv.shutdown()
