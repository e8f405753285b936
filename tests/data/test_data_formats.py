"""Each source format: detection, conversion, registry entry, and its row-level reasons."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from factory_kit.data.importer import import_source
from factory_kit.core.errors import FactoryKitError
from factory_kit.core.paths import SAMPLES_DIR


def jl(*rows) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def rows_of(project: Path, name: str) -> list[dict]:
    return [json.loads(x) for x in (project / "data" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]


def registry(project: Path) -> dict:
    return json.loads((project / "dataset_info" / "dataset_info.json").read_text(encoding="utf-8"))


def reasons(report) -> list[str]:
    if report.quarantine is None:
        return []
    return [json.loads(x)["reason"] for x in report.quarantine.read_text(encoding="utf-8").splitlines()]


def write(project: Path, name: str, text: str) -> Path:
    p = project / name
    p.write_text(text, encoding="utf-8")
    return p


# --- samples: every shipped sample imports cleanly, detected without --format -----------------

@pytest.mark.parametrize("sample,fmt,n,kind", [
    ("tcm_qa.jsonl", "alpaca", 80, "alpaca"),
    ("consultations.json", "sharegpt", 30, "sharegpt"),
    ("medical_o1_cot.jsonl", "cot", 30, "alpaca"),
    ("exam_mcq.jsonl", "mcq", 60, "alpaca"),
    ("preference_pairs.jsonl", "preference", 30, "alpaca+ranking"),
])
def test_samples_import_cleanly(project, sample, fmt, n, kind):
    r = import_source(SAMPLES_DIR / sample, "s")
    assert (r.format, r.accepted, r.quarantined, r.output_format) == (fmt, n, 0, kind)


def test_alpaca_entry_and_system(project):
    r = import_source(SAMPLES_DIR / "tcm_qa.jsonl", "tcm_qa")
    entry = registry(project)["tcm_qa"]
    assert entry == {"file_name": "../data/tcm_qa.jsonl", "formatting": "alpaca", "ranking": False,
                     "columns": {"prompt": "instruction", "query": "input", "response": "output", "system": "system"}}
    rows = rows_of(project, "tcm_qa")
    assert list(rows[0]) == ["instruction", "input", "output", "system", "source", "source_row"]
    assert sum(1 for x in rows if x["system"]) == 10 and sum(1 for x in rows if x["input"]) == 20
    assert r.registered == ["tcm_qa"]


def test_alpaca_aliases(project):
    f = write(project, "a.jsonl", jl({"query": "问", "response": "答"}, {"prompt": "问2", "response": "答2"},
                                     {"question": "问3", "answer": "答3", "context": "背景"}))
    import_source(f, "a")
    rows = rows_of(project, "a")
    assert [(x["instruction"], x["output"]) for x in rows] == [("问", "答"), ("问2", "答2"), ("问3", "答3")]
    assert rows[2]["input"] == "背景"


def test_alpaca_history_turns_the_import_into_sharegpt(project):
    f = write(project, "h.jsonl", jl({"instruction": "一", "output": "1"},
                                     {"instruction": "二", "input": "补充", "output": "2", "history": [["前问", "前答"]]},
                                     {"instruction": "三", "output": "3"}))
    r = import_source(f, "h")
    assert r.output_format == "sharegpt" and registry(project)["h"]["formatting"] == "sharegpt"
    rows = rows_of(project, "h")
    assert rows[0]["conversations"] == [{"from": "human", "value": "一"}, {"from": "gpt", "value": "1"}]
    assert [t["value"] for t in rows[1]["conversations"]] == ["前问", "前答", "二\n补充", "2"]
    assert rows[2]["source_row"] == 3


def test_sharegpt_validation(project):
    good = {"conversations": [{"from": "human", "value": "问"}, {"from": "gpt", "value": "答"}]}
    f = write(project, "c.jsonl", jl(
        good,
        {"conversations": [{"from": "system", "value": "你是医生"}, {"from": "user", "value": "问"},
                           {"from": "assistant", "value": "答"}]},
        {"conversations": [{"from": "gpt", "value": "你好"}, {"from": "human", "value": "问"}]},
        {"conversations": [{"from": "human", "value": "问"}, {"from": "human", "value": "再问"},
                           {"from": "gpt", "value": "答"}, {"from": "human", "value": "?"}]},
        {"conversations": [{"from": "human", "value": "问"}]},
        {"conversations": [{"from": "human", "value": "问"}, {"from": "gpt", "value": "  "}]},
        {"conversations": [{"from": "human", "value": "问"}, {"from": "robot", "value": "答"}]},
        {"conversations": []},
        {"conversations": "问答"},
    ))
    r = import_source(f, "c")
    assert (r.accepted, r.quarantined) == (2, 7)
    assert reasons(r) == [
        '"conversations" starts with an assistant turn; a conversation must start with the user',
        '"conversations" turns 1 and 2 are both user turns (turns must alternate user/assistant)',
        '"conversations" ends with a user turn (no answer to learn from)',
        '"conversations" turn 2 ("gpt") is empty',
        '"conversations" turn 2 has unknown role \'robot\' (use human/gpt or user/assistant)',
        'field "conversations" is empty',
        'field "conversations" must be a list, got text',
    ]
    rows = rows_of(project, "c")
    assert rows[1]["system"] == "你是医生" and rows[1]["conversations"][0] == {"from": "human", "value": "问"}
    entry = registry(project)["c"]
    assert entry["tags"] == {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                             "observation_tag": "observation", "function_tag": "function_call", "system_tag": "system"}
    assert entry["columns"] == {"messages": "conversations", "system": "system", "tools": "tools"}


def test_openai_messages(project):
    f = write(project, "o.jsonl", jl(
        {"messages": [{"role": "system", "content": "你是中医"}, {"role": "user", "content": [{"type": "text", "text": "问"}]},
                      {"role": "assistant", "content": "答"}]},
        {"messages": [{"role": "user", "content": "查天气"},
                      {"role": "assistant", "content": None, "tool_calls": [{"type": "function", "function": {"name": "w", "arguments": "{}"}}]},
                      {"role": "tool", "content": "晴"}, {"role": "assistant", "content": "晴天"}],
         "tools": [{"type": "function", "function": {"name": "w"}}]},
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
                      {"role": "assistant", "content": "答"}]},
    ))
    r = import_source(f, "o")
    assert (r.format, r.accepted, r.quarantined) == ("openai", 2, 1)
    assert reasons(r) == ['"messages" turn 1 ("user") has non-text content (image_url); only text is imported']
    rows = rows_of(project, "o")
    assert rows[0]["messages"][0] == {"role": "system", "content": "你是中医"}
    assert [m["role"] for m in rows[1]["messages"]] == ["user", "function_call", "tool", "assistant"]
    assert json.loads(rows[1]["tools"])[0]["function"]["name"] == "w"
    entry = registry(project)["o"]
    assert entry["formatting"] == "sharegpt" and entry["tags"]["role_tag"] == "role"
    assert entry["tags"]["observation_tag"] == "tool" and entry["columns"] == {"messages": "messages", "tools": "tools"}


def test_openai_tool_calls_arguments_are_objects_and_dropped_text_is_reported(project):
    from click.testing import CliRunner

    from factory_kit.cli.data import data

    def call(args, content=None) -> dict:
        return {"role": "assistant", "content": content,
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": args}}]}

    def row(i: int, args, content=None) -> dict:
        return {"messages": [{"role": "user", "content": f"布洛芬{i}的用量？"}, call(args, content),
                             {"role": "tool", "content": "每次200mg"}, {"role": "assistant", "content": f"每次200mg{i}。"}]}

    f = write(project, "t.jsonl", jl(
        row(1, '{"drug": "布洛芬"}'),
        row(2, '{"drug": "布洛芬"}', "我来查一下。"),  # text next to the call
        row(3, "not json", "  "),  # blank text is not text; arguments that are not JSON stay as given
        row(4, {"drug": "布洛芬"}, [{"type": "text", "text": "稍等。"}]),  # already an object; text parts
        # rejected (ends with a user turn): its text is not counted as dropped
        {"messages": [{"role": "user", "content": "问"}, call("{}", "丢掉？"), {"role": "user", "content": "再问"}]},
    ))
    r = import_source(f, "t")
    assert (r.accepted, r.quarantined, r.total) == (4, 1, 5)
    assert reasons(r) == ['"messages" ends with a user turn (no answer to learn from)']
    calls = [x["messages"][1] for x in rows_of(project, "t")]
    assert calls[0] == {"role": "function_call", "content": '[{"name": "lookup", "arguments": {"drug": "布洛芬"}}]'}
    assert calls[1] == calls[0] and calls[3] == calls[0]
    assert json.loads(calls[2]["content"]) == [{"name": "lookup", "arguments": "not json"}]
    note = ("2 assistant turns had text next to tool_calls; the text was dropped "
            "(LLaMA-Factory's function_call turn holds only the call)")
    assert (r.tool_call_text_dropped, r.notes) == (2, [note])
    meta = json.loads((project / "data/meta/t.json").read_text(encoding="utf-8"))
    assert meta["notes"] == [note] and meta["tool_call_text_dropped"] == 2
    out = CliRunner().invoke(data, ["import", str(f), "--name", "t"])
    assert out.exit_code == 0 and f"note: {note}" in " ".join(out.output.split())
    # a clean import says nothing
    assert import_source(SAMPLES_DIR / "tcm_qa.jsonl", "qa").notes == []


@pytest.mark.parametrize("style,start", [("think", "<think>\n"), ("plain", "先看主症"), ("drop", None)])
def test_cot_styles(project, style, start):
    r = import_source(SAMPLES_DIR / "medical_o1_cot.jsonl", "o1", cot_style=style)
    src = json.loads((SAMPLES_DIR / "medical_o1_cot.jsonl").read_text(encoding="utf-8").splitlines()[0])
    out = rows_of(project, "o1")[0]["output"]
    assert r.format == "cot"
    if style == "think":
        assert out.startswith("<think>\n") and "\n</think>\n\n" in out and out.endswith(src["Response"].strip())
    elif style == "plain":
        assert out.startswith(start) and "<think>" not in out
    else:
        assert out == src["Response"].strip()


def test_cot_bad_style_and_empty_cot(project):
    f = write(project, "c.jsonl", jl({"Question": "q", "Complex_CoT": "", "Response": "r"},
                                     {"Question": "q2", "Complex_CoT": "想", "Response": "r2"}))
    with pytest.raises(FactoryKitError, match="--cot-style 'x'"):
        import_source(f, "c", cot_style="x")
    r = import_source(f, "c")
    assert reasons(r) == ['field "Complex_CoT" is empty']
    assert import_source(f, "c2", cot_style="drop").accepted == 2


def test_mcq_sft_rows_and_benchmark(project):
    r = import_source(SAMPLES_DIR / "exam_mcq.jsonl", "exam")
    assert r.benchmark == project / "data" / "benchmarks" / "exam.jsonl"
    bench = [json.loads(x) for x in r.benchmark.read_text(encoding="utf-8").splitlines()]
    assert len(bench) == 60 and list(bench[0]) == ["id", "subject", "question", "options", "answer", "explanation"]
    assert bench[0]["id"] == "tcm-001" and bench[0]["options"] == {"A": "炎上", "B": "稼穑", "C": "曲直", "D": "从革"}
    assert bench[0]["answer"] == "C"
    row = rows_of(project, "exam")[0]
    assert row["instruction"].endswith("A. 炎上\nB. 稼穑\nC. 曲直\nD. 从革") and row["output"].startswith("答案：C\n\n解析：")
    assert row["subject"] == "tcm_basic_theory"


def test_mcq_shapes(project):
    f = write(project, "m.jsonl", jl(
        {"question": "Which herb tonifies qi?", "options": ["A. Huangqi", "B. Huanglian"], "answer": "A"},
        {"question": "下列属于补气药的是", "choices": ["黄芪", "黄连", "人参"], "answer": "黄芪"},
        {"question": "多选：补气药有", "options": {"a": "黄芪", "b": "人参", "c": "黄连"}, "answer": "A,B", "解析": "略"},
        {"question": "答案越界", "options": ["甲", "乙"], "answer": "D"},
        {"question": "只有一个选项", "options": ["甲"], "answer": "A"},
        {"question": "答案是数字", "options": ["甲", "乙"], "answer": 1},
        {"question": "无答案", "options": ["甲", "乙"]},
    ))
    r = import_source(f, "m")
    assert (r.format, r.accepted, r.quarantined) == ("mcq", 3, 4)
    assert reasons(r) == ["answer D names option D, but the options are A, B",
                          "only 1 option; a multiple-choice item needs at least 2",
                          'field "answer" must be option letter(s) like "B", got a number 1',
                          'missing field "answer"']
    bench = [json.loads(x) for x in r.benchmark.read_text(encoding="utf-8").splitlines()]
    assert bench[0]["options"] == {"A": "Huangqi", "B": "Huanglian"} and bench[0]["answer"] == "A"
    assert bench[1]["answer"] == "A" and bench[1]["id"].startswith("m-")
    assert len(bench) == 2 and r.multi_answer_dropped == 1  # "AB" is trained on, not scored
    rows = rows_of(project, "m")
    assert rows[0]["output"] == "Answer: A" and "multiple-choice question" in rows[0]["instruction"]
    assert "多项选择题" in rows[2]["instruction"] and rows[2]["output"] == "答案：AB\n\n解析：略"


def test_mcq_from_exam_bank_csv_columns(project):
    f = project / "bank.csv"
    f.write_bytes("题目,A,B,C,D,E,答案,解析\n气的生成来源不包括,先天之精,水谷之精,自然界清气,血液,,D,略\n".encode("gbk"))
    r = import_source(f, "bank")
    assert (r.format, r.accepted) == ("mcq", 1)
    bench = json.loads(r.benchmark.read_text(encoding="utf-8"))
    assert bench["options"] == {"A": "先天之精", "B": "水谷之精", "C": "自然界清气", "D": "血液"} and bench["answer"] == "D"


def test_mcq_split_keeps_only_held_out_items_in_the_benchmark(project):
    r = import_source(SAMPLES_DIR / "exam_mcq.jsonl", "exam", split="0.8,0.1,0.1", stratify="subject", seed=3)
    assert r.splits == {"train": 48, "val": 6, "test": 6}
    assert r.benchmark == project / "data/benchmarks/exam.jsonl"
    assert r.benchmark_dev == project / "data/benchmarks/exam.dev.jsonl"
    test = [json.loads(x) for x in r.benchmark.read_text(encoding="utf-8").splitlines()]
    dev = [json.loads(x) for x in r.benchmark_dev.read_text(encoding="utf-8").splitlines()]
    train_q = {x["instruction"] for x in rows_of(project, "exam_train")}
    assert len(test) == len(dev) == 6
    assert not any(b["question"] in q for b in test + dev for q in train_q)  # held out: not trained on
    assert {b["id"] for b in test}.isdisjoint(b["id"] for b in dev)
    from collections import Counter

    assert Counter(b["subject"] for b in test) == {"tcm_basic_theory": 2, "tcm_pharmacology": 2, "clinical_medicine": 2}
    # no test part: the val items are the benchmark, no dev file
    r = import_source(SAMPLES_DIR / "exam_mcq.jsonl", "exam", split="0.8,0.2")
    assert r.benchmark_dev is None and not (project / "data/benchmarks/exam.dev.jsonl").exists()
    assert len(r.benchmark.read_text(encoding="utf-8").splitlines()) == 12
    # no split: every item, and the earlier dev file is gone
    import_source(SAMPLES_DIR / "exam_mcq.jsonl", "exam", split="0.8,0.1,0.1")
    r = import_source(SAMPLES_DIR / "exam_mcq.jsonl", "exam")
    assert len(r.benchmark.read_text(encoding="utf-8").splitlines()) == 60
    assert not (project / "data/benchmarks/exam.dev.jsonl").exists()


def test_benchmark_files_load_in_the_evaluation(project):
    """The evaluation engineer's reader accepts our benchmark and dev files as they are."""
    from factory_kit.evaluate.benchmarks import resolve_benchmarks

    import_source(SAMPLES_DIR / "exam_mcq.jsonl", "exam", split="0.8,0.1,0.1", stratify="subject")
    (bench,) = resolve_benchmarks([])
    assert bench.name == "exam" and len(bench.items) == 6 and len(bench.dev) == 6


def test_text_chunking_on_paragraphs(project):
    r = import_source(SAMPLES_DIR / "herb_monographs.txt", "herbs", chunk_chars=700)
    assert r.format == "text" and r.output_format == "pt"
    rows = rows_of(project, "herbs")
    assert all(len(x["text"]) <= 700 for x in rows)
    assert all(x["text"].startswith("【") for x in rows)  # chunks start on a monograph boundary
    assert rows[0]["source_row"] == 1 and rows[1]["source_row"] > 1
    total = sum(x["text"].count("【") for x in rows)
    assert total == 45  # every monograph kept exactly once
    assert registry(project)["herbs"] == {"file_name": "../data/herbs.jsonl", "formatting": "alpaca",
                                          "ranking": False, "columns": {"prompt": "text"}}


def test_text_long_paragraph_splits_at_sentences(project):
    para = "".join(f"第{i}句话讲述一种草药的功效与禁忌。" for i in range(50))
    f = write(project, "t.txt", "短段落。\n\n" + para + "\n")
    import_source(f, "t", chunk_chars=100)
    rows = rows_of(project, "t")
    assert rows[0]["text"] == "短段落。"
    assert all(len(x["text"]) <= 100 for x in rows) and all(x["text"].endswith("。") for x in rows)
    assert "".join(x["text"] for x in rows[1:]) == para


def test_text_jsonl_and_token_chunks(project, tiny_model):
    f = write(project, "t.jsonl", jl({"text": "第一段。\n\n第二段。"}, {"text": ""}, {"content": "".join(f"另一篇第{i}句。" for i in range(200))}))
    r = import_source(f, "t", fmt="text", chunk_tokens=64, tokenizer=str(tiny_model))
    assert r.quarantined == 1 and reasons(r) == ['field "text" is empty']
    from factory_kit.data.tokens import load_tokenizer

    tok = load_tokenizer(tiny_model)
    rows = rows_of(project, "t")
    assert rows[0]["text"] == "第一段。\n\n第二段。"
    assert all(len(tok(x["text"], add_special_tokens=False)["input_ids"]) <= 64 for x in rows)
    assert len(rows) > 3


def test_preference_pairs_conversational_and_kto(project):
    f = write(project, "p.jsonl", jl(
        {"prompt": [{"role": "user", "content": "附子怎么煎？"}], "chosen": [{"role": "assistant", "content": "先煎久煎。"}],
         "rejected": [{"role": "assistant", "content": "随便煮。"}]},
        {"prompt": "问", "chosen": "一样", "rejected": "一样"},
    ))
    r = import_source(f, "p")
    assert (r.accepted, r.quarantined) == (1, 1) and reasons(r) == ['"chosen" and "rejected" are identical']
    assert rows_of(project, "p")[0]["instruction"] == "附子怎么煎？"
    assert registry(project)["p"]["ranking"] is True

    conv = write(project, "c.jsonl", jl({
        "conversations": [{"from": "human", "value": "问"}, {"from": "gpt", "value": "答"}, {"from": "human", "value": "再问"}],
        "chosen": {"from": "gpt", "value": "好"}, "rejected": {"from": "gpt", "value": "坏"}}))
    r = import_source(conv, "c")
    entry = registry(project)["c"]
    assert r.output_format == "sharegpt+ranking" and entry["columns"]["chosen"] == "chosen"
    assert len(rows_of(project, "c")[0]["conversations"]) == 3

    kto = write(project, "k.jsonl", jl({"prompt": "问", "completion": "答", "label": True},
                                       {"prompt": "问2", "completion": "答2", "label": "bad"},
                                       {"prompt": "问3", "completion": "答3", "label": "maybe"},
                                       {"prompt": "问4", "chosen": "好", "rejected": "坏"}))
    r = import_source(kto, "k", fmt="preference")
    assert (r.accepted, r.quarantined) == (2, 2)
    assert reasons(r) == ["field \"label\" must be true/false (desirable or not), got 'maybe'",
                          "row is one of the single-turn pairs but this import holds KTO rows; import them separately"]
    assert [x["kto_tag"] for x in rows_of(project, "k")] == [True, False]
    assert registry(project)["k"]["columns"]["kto_tag"] == "kto_tag" and registry(project)["k"]["ranking"] is False


def test_hf_save_to_disk_folder(project):
    import datasets

    ds = datasets.Dataset.from_list([{"instruction": "问", "output": "答"}, {"instruction": "问2", "output": ""}])
    ds.save_to_disk(str(project / "hf_ds"))
    r = import_source(project / "hf_ds", "hf")
    assert (r.format, r.accepted, r.quarantined) == ("alpaca", 1, 1)
    dd = datasets.DatasetDict({"train": ds, "validation": ds.select([0])})
    dd.save_to_disk(str(project / "hf_dd"))
    assert import_source(project / "hf_dd", "hf2", fmt="hf", hf_split="validation").accepted == 1
    with pytest.raises(FactoryKitError, match="no split 'test'"):
        import_source(project / "hf_dd", "hf3", hf_split="test")


def test_hub_id_without_network_fails_cleanly(project, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(FactoryKitError, match="someone/some-medical-set: cannot load from the Hugging Face Hub"):
        import_source("someone/some-medical-set", "x")


def test_folder_import_mixes_sources(project):
    d = project / "raw"
    d.mkdir()
    (d / "a.jsonl").write_text(jl({"instruction": "问1", "output": "答1"}), encoding="utf-8")
    (d / "b.csv").write_text("question,answer\n问2,答2\n问1,答1\n", encoding="utf-8")
    (d / "notes.txt").write_text("一段文字。", encoding="utf-8")
    # plain text and QA rows cannot be one dataset: refused before anything is written, naming the files
    with pytest.raises(FactoryKitError, match=r"cannot make one dataset \(alpaca: a\.jsonl, b\.csv; text: notes\.txt\); "
                                              r"import them separately"):
        import_source(d, "mix")
    assert not (project / "data" / "mix.jsonl").exists()
    (d / "notes.txt").unlink()
    r = import_source(d, "mix")
    assert (r.accepted, r.quarantined, r.duplicates) == (2, 1, 1)
    assert sorted(r.sources) == ["raw/a.jsonl", "raw/b.csv"]
    assert {x["source"] for x in rows_of(project, "mix")} == {"raw/a.jsonl", "raw/b.csv"}


def test_file_type_variants(project):
    """JSON object holding a list, JSON Lines named .json, TSV, gzip, a pretty-printed array."""
    import gzip

    rows = [{"instruction": f"问{i}", "output": f"答{i}"} for i in range(3)]
    (project / "obj.json").write_text(json.dumps({"version": 1, "data": rows}, ensure_ascii=False), encoding="utf-8")
    (project / "lines.json").write_text(jl(*rows), encoding="utf-8")
    (project / "t.tsv").write_text("instruction\toutput\n问\t答,有逗号\n", encoding="utf-8")
    with gzip.open(project / "g.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.write(jl(*rows))
    (project / "pretty.json").write_text(json.dumps(rows, ensure_ascii=False, indent=4), encoding="utf-8")
    for name, n in [("obj.json", 3), ("lines.json", 3), ("t.tsv", 1), ("g.jsonl.gz", 3), ("pretty.json", 3)]:
        r = import_source(project / name, "v")
        assert (r.accepted, r.quarantined) == (n, 0), name
    assert rows_of(project, "v")[1]["source_row"] == 6  # pretty.json: the line where row 2 starts
    assert json.loads((project / "data" / "v.jsonl").read_text(encoding="utf-8").splitlines()[0])["output"] == "答0"
    import_source(project / "t.tsv", "tsv")
    assert rows_of(project, "tsv")[0]["output"] == "答，有逗号"  # the comma survived the TSV (zh width policy)


def test_column_oriented_json(project):
    """{"question": [...], "answer": [...]} and pandas' default to_json() {"col": {"0": ...}} are rows."""
    (project / "cols.json").write_text(json.dumps({"question": ["问一", "问二"], "answer": ["答一", ""]},
                                                  ensure_ascii=False), encoding="utf-8")
    r = import_source(project / "cols.json", "cols")
    assert (r.accepted, r.quarantined) == (1, 1)
    assert rows_of(project, "cols")[0]["output"] == "答一"
    rejected = json.loads((project / "data" / "quarantine" / "cols.rejected.jsonl").read_text(encoding="utf-8"))
    assert rejected["message"] == 'cols.json:2: field "answer" is empty'
    (project / "pd.json").write_text(json.dumps({"instruction": {"0": "问一", "1": "问二"},
                                                 "output": {"0": "答一", "1": "答二"}}, ensure_ascii=False),
                                     encoding="utf-8")
    r = import_source(project / "pd.json", "pd")
    assert (r.accepted, r.quarantined) == (2, 0)
    assert [row["output"] for row in rows_of(project, "pd")] == ["答一", "答二"]


def test_multi_answer_items_train_but_stay_out_of_the_benchmark(project):
    """A multi-answer item must not block `factory-kit eval` (lm-eval scores one gold answer)."""
    import json

    from click.testing import CliRunner

    from factory_kit.cli.data import data
    from factory_kit.evaluate import benchmarks as bm

    rows = [{"question": "多选：属于五脏的是？", "options": ["心", "胆", "肝", "胃"], "answer": "AC"},
            {"question": "主血的脏是？", "options": ["心", "肺", "脾", "肾"], "answer": "A"},
            {"question": "主气司呼吸的脏是？", "options": ["心", "肺", "脾", "肾"], "answer": "B"}]
    src = project / "mcq.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    result = CliRunner().invoke(data, ["import", str(src), "--name", "mcq2"])
    assert result.exit_code == 0, result.output
    assert "1 multi-answer item(s) kept for SFT" in result.output
    assert len((project / "data" / "mcq2.jsonl").read_text(encoding="utf-8").splitlines()) == 3
    bench = project / "data" / "benchmarks" / "mcq2.jsonl"
    assert [json.loads(line)["answer"] for line in bench.read_text(encoding="utf-8").splitlines()] == ["A", "B"]
    assert [len(b.items) for b in bm.resolve_benchmarks(("mcq2",))] == [2]  # the evaluator accepts it


def test_mcq_answer_in_exam_bank_forms(project):
    """Exam banks write the answer as （C）, (C), C., 答案：C, 【答案】C: all mean C."""
    forms = ["（C）", "(C)", "C.", "答案：C", "【答案】C", "答案：（C）。", "c．", "（A、C）"]
    lines = ["题目,A,B,C,D,答案"] + [f"第{i}题：下列哪味药?,黄芪,黄连,甘草,人参,{a}" for i, a in enumerate(forms)]
    (project / "bank.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = import_source(project / "bank.csv", "bank", "mcq")
    assert (r.total, r.accepted, r.quarantined) == (len(forms), len(forms), 0), r.examples
    bench = [json.loads(x) for x in r.benchmark.read_text(encoding="utf-8").splitlines()]
    assert [b["answer"] for b in bench] == ["C"] * (len(forms) - 1)  # （A、C） trains, is not scored
    assert rows_of(project, "bank")[-1]["output"].startswith("答案：AC")
    # a bracketed word is still not an answer
    (project / "bad.csv").write_text("题目,A,B,答案\n哪味药?,黄芪,黄连,（无）\n哪味药?,黄芪,黄连,(A)\n", encoding="utf-8")
    r = import_source(project / "bad.csv", "bad", "mcq")
    assert (r.accepted, r.quarantined) == (1, 1) and "not option letter(s)" in r.examples[0]


def test_only_multi_answer_items_write_no_benchmark(project):
    from click.testing import CliRunner

    from factory_kit.cli.data import data

    rows = [{"question": f"多选{i}？", "options": ["心", "胆", "肝", "胃"], "answer": "A、C"} for i in range(2)]
    (project / "multi.jsonl").write_text(jl(*rows), encoding="utf-8")
    result = CliRunner().invoke(data, ["import", str(project / "multi.jsonl"), "--name", "multi"])
    assert result.exit_code == 0, result.output
    assert "2 multi-answer item(s) kept for SFT" in result.output and "no data/benchmarks/multi.jsonl written" in result.output
    assert len(rows_of(project, "multi")) == 2 and not (project / "data" / "benchmarks" / "multi.jsonl").exists()


# --- LLaMA-Factory's own newer format: content as typed parts -----------------------------------

def _part(kind: str, value: str) -> dict:
    return {"type": kind, "value": value}


def _msg(role: str, *parts: dict) -> dict:
    return {"role": role, "content": list(parts), "loss_weight": 1.0 if role == "assistant" else 0.0}


def test_llamafactory_content_parts(project):
    """Messages whose content is a list of {"type": text|reasoning|tool_call, "value"} parts (what
    LLaMA-Factory's v1 converters and templates produce), an empty system part, tools as a JSON string."""
    call = json.dumps({"name": "lookup", "arguments": {"drug": "布洛芬"}}, ensure_ascii=False)
    tools = json.dumps([{"name": "lookup", "description": "查说明书", "parameters": {"type": "object"}}],
                       ensure_ascii=False)
    f = write(project, "v1.jsonl", jl(
        {"messages": [_msg("system", _part("text", "")), _msg("user", _part("text", "黄芪的功效？")),
                      _msg("assistant", _part("reasoning", "先说归经。"), _part("text", "补气升阳。"))]},
        {"messages": [_msg("user", _part("text", "布洛芬"), _part("text", "怎么吃？")),
                      _msg("assistant", _part("reasoning", "要查说明书。"), _part("text", "我来查。"),
                           _part("tool_call", call)),
                      _msg("tool", _part("text", "每次200mg")), _msg("assistant", _part("text", "每次200mg。"))],
         "tools": tools},
        {"messages": [_msg("system", _part("text", "你是中医。")), _msg("user", _part("text", "看图")),
                      _msg("assistant", _part("image_url", "x.png"))]},
        {"messages": [_msg("user", _part("text", "问")), _msg("assistant", _part("tool_call", "not json"))]},
        {"messages": [_msg("user", _part("reasoning", "用户不该有推理")), _msg("assistant", _part("text", "答"))]},
    ))
    r = import_source(f, "v1")
    assert (r.format, r.accepted, r.quarantined) == ("openai", 2, 3), r.examples
    assert reasons(r) == [
        '"messages" turn 3 ("assistant") has non-text content (image_url); only text is imported',
        "\"messages\" turn 2 (\"assistant\") has a tool_call part that is not JSON ('not json')",
        '"messages" turn 1 ("user") has non-text content (reasoning); only text is imported',
    ]
    rows = rows_of(project, "v1")
    # the reasoning as the CoT import writes it: a <think> block before the answer
    assert rows[0]["messages"] == [{"role": "user", "content": "黄芪的功效？"},
                                   {"role": "assistant", "content": "<think>\n先说归经。\n</think>\n\n补气升阳。"}]
    assert [m["role"] for m in rows[1]["messages"]] == ["user", "function_call", "tool", "assistant"]
    assert rows[1]["messages"][0]["content"] == "布洛芬怎么吃？"  # parts joined as LLaMA-Factory joins them
    assert json.loads(rows[1]["messages"][1]["content"]) == [{"name": "lookup", "arguments": {"drug": "布洛芬"}}]
    assert json.loads(rows[1]["tools"])[0]["name"] == "lookup"
    assert r.tool_call_text_dropped == 1  # text and reasoning next to the call cannot go in a function_call turn
    assert registry(project)["v1"]["tags"]["role_tag"] == "role"
    # --cot-style applies to reasoning parts too
    import_source(f, "v1_plain", cot_style="plain")
    assert rows_of(project, "v1_plain")[0]["messages"][1]["content"] == "先说归经。\n\n补气升阳。"


def test_llamafactory_converter_output_imports(project):
    """Rows made by LLaMA-Factory's own v1 converters import as they are."""
    conv = pytest.importorskip("llamafactory.v1.plugins.data_plugins.converter")
    call = json.dumps({"name": "weather", "arguments": {"city": "北京"}})
    samples = [
        conv.alpaca_converter({"system": "", "instruction": "黄芪的功效？", "input": "", "output": "补气升阳。"}),
        conv.alpaca_converter({"system": "你是中医。", "instruction": "当归", "input": "的功效？", "output": "补血。"}),
        conv.sharegpt_converter({"conversations": [
            {"from": "human", "value": "北京天气？"}, {"from": "function_call", "value": call},
            {"from": "observation", "value": "晴"}, {"from": "gpt", "value": "晴天。"}],
            "tools": json.dumps([{"name": "weather", "parameters": {"type": "object"}}])}),
    ]
    r = import_source(write(project, "lf.jsonl", jl(*samples)), "lf")
    assert (r.format, r.accepted, r.quarantined) == ("openai", 3, 0), r.examples
    rows = rows_of(project, "lf")
    assert rows[0]["messages"] == [{"role": "user", "content": "黄芪的功效？"}, {"role": "assistant", "content": "补气升阳。"}]
    assert rows[1]["messages"][0] == {"role": "system", "content": "你是中医。"}
    assert [m["role"] for m in rows[2]["messages"]] == ["user", "function_call", "tool", "assistant"]
    assert json.loads(rows[2]["messages"][1]["content"]) == [{"name": "weather", "arguments": {"city": "北京"}}]


# --- a conversation ending with an unanswered user turn ------------------------------------------

def test_trailing_unanswered_turn_is_dropped(project):
    from click.testing import CliRunner

    from factory_kit.cli.data import data

    f = write(project, "c.jsonl", jl(
        {"conversations": [{"from": "human", "value": "头痛怎么办？"}, {"from": "gpt", "value": "先辨证。"},
                           {"from": "human", "value": "还有呢？"}]},
        {"conversations": [{"from": "human", "value": "问"}, {"from": "gpt", "value": "答"}]},
        {"conversations": [{"from": "human", "value": "没人回答"}]},  # nothing answered: still quarantined
    ))
    r = import_source(f, "c")
    assert (r.accepted, r.quarantined) == (2, 1)
    assert reasons(r) == ['"conversations" ends with a user turn (no answer to learn from)']
    assert [t["value"] for t in rows_of(project, "c")[0]["conversations"]] == ["头痛怎么办？", "先辨证。"]
    note = "1 conversation: trailing unanswered turn dropped"
    assert r.notes == [note]
    assert json.loads((project / "data/meta/c.json").read_text(encoding="utf-8"))["notes"] == [note]
    out = CliRunner().invoke(data, ["import", str(f), "--name", "c"])
    assert out.exit_code == 0 and f"note: {note}" in out.output

    # OpenAI messages, counted the same in worker processes
    rows = [{"messages": [{"role": "user", "content": f"问{i}"}, {"role": "assistant", "content": f"答{i}"},
                          *([{"role": "user", "content": "谢谢"}] if i % 3 == 0 else [])]} for i in range(300)]
    f = write(project, "o.jsonl", jl(*rows))
    seq = import_source(f, "seq", workers=1)
    par = import_source(f, "par", workers=2, parallel_min_bytes=0)
    assert seq.notes == par.notes == ["100 conversations: trailing unanswered turn dropped"]
    assert (project / "data/seq.jsonl").read_bytes() == (project / "data/par.jsonl").read_bytes()
    assert rows_of(project, "seq")[0]["messages"] == [{"role": "user", "content": "问0"},
                                                      {"role": "assistant", "content": "答0"}]
