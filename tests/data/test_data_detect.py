"""What an import reads and how it says where things are, on inputs shaped like real peers' files:
a dataset folder with a README (hub snapshots), MedicalGPT's ``medical_corpus.txt`` (JSON Lines
named .txt), a JSON file cut inside a UTF-8 character, CMExam-style exam items (``A 固摄作用``),
and text chunks that repeat."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from factory_kit.core.errors import FactoryKitError
from factory_kit.data.importer import import_source


def jl(*rows) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def rows_of(project: Path, name: str) -> list[dict]:
    return [json.loads(x) for x in (project / "data" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]


def rejects_of(report) -> list[dict]:
    if report.quarantine is None:
        return []
    return [json.loads(x) for x in report.quarantine.read_text(encoding="utf-8").splitlines()]


def registry(project: Path) -> dict:
    return json.loads((project / "dataset_info" / "dataset_info.json").read_text(encoding="utf-8"))


def qa(i: int) -> dict:
    return {"instruction": f"黄芪的功效{i}？", "input": "", "output": f"补气升阳{i}。"}


@pytest.fixture
def raw(project) -> Path:
    d = project / "raw"
    d.mkdir()
    return d


# --- a folder: each data file by its own shape, the rest skipped and named ----------------------

def hub_snapshot(folder: Path) -> None:
    """A folder as `huggingface-cli download` leaves a QA dataset: a card, a licence, git
    attributes, an image, and the rows in two JSON Lines files (57 in all)."""
    folder.mkdir()
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# TCM QA\n\n中医问答数据集。\n", encoding="utf-8")
    (folder / "LICENSE").write_text("MIT License\n", encoding="utf-8")
    (folder / ".gitattributes").write_text("*.jsonl filter=lfs\n", encoding="utf-8")
    (folder / "cover.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (folder / "train.jsonl").write_text(jl(*(qa(i) for i in range(50))), encoding="utf-8")
    (folder / "test.jsonl").write_text(jl(*(qa(i) for i in range(50, 57))), encoding="utf-8")


def test_folder_with_a_readme_imports_every_qa_row(project, raw):
    hub_snapshot(raw / "tcm_qa")
    r = import_source(raw / "tcm_qa", "tcm_qa")
    assert (r.format, r.accepted, r.quarantined, r.output_format) == ("alpaca", 57, 0, "alpaca")
    assert r.sources == ["raw/tcm_qa/test.jsonl", "raw/tcm_qa/train.jsonl"]
    assert r.notes == ["skipped 4 files that are not data: .gitattributes, LICENSE, README.md, cover.png"]
    assert registry(project)["tcm_qa"]["columns"]["response"] == "output"  # not pre-training text
    assert {x["source"] for x in rows_of(project, "tcm_qa")} == {"raw/tcm_qa/test.jsonl", "raw/tcm_qa/train.jsonl"}


def test_folder_files_of_compatible_shapes_are_each_read_by_their_own(project, raw):
    """QA rows and medical-o1 CoT rows both write alpaca rows: one dataset, each file converted
    as what it is (the CoT file keeps its reasoning), recorded as cot (so `check` knows it thinks)."""
    d = raw / "mixed"
    d.mkdir()
    (d / "a_qa.jsonl").write_text(jl(qa(1), qa(2)), encoding="utf-8")
    (d / "b_o1.json").write_text(json.dumps([{"Question": "头痛如何辨证？", "Complex_CoT": "先辨外感内伤。",
                                              "Response": "分外感与内伤。"}], ensure_ascii=False), encoding="utf-8")
    r = import_source(d, "mixed")
    assert (r.format, r.accepted, r.quarantined, r.output_format) == ("cot", 3, 0, "alpaca")
    rows = rows_of(project, "mixed")
    assert rows[0]["output"] == "补气升阳1。"
    assert rows[2]["output"] == "<think>\n先辨外感内伤。\n</think>\n\n分外感与内伤。"


def test_folder_whose_shapes_cannot_be_one_dataset_is_refused(project, raw):
    d = raw / "mixed"
    d.mkdir()
    (d / "qa.jsonl").write_text(jl(qa(1), qa(2)), encoding="utf-8")
    (d / "qa2.jsonl").write_text(jl(qa(3)), encoding="utf-8")
    (d / "pairs.jsonl").write_text(jl({"prompt": "头痛？", "chosen": "辨证论治。", "rejected": "吃止痛药。"}),
                                   encoding="utf-8")
    with pytest.raises(FactoryKitError) as exc:
        import_source(d, "mixed")
    msg = str(exc.value)
    assert "\n" not in msg
    assert "cannot make one dataset (preference: pairs.jsonl; alpaca: qa.jsonl, qa2.jsonl)" in msg
    assert "import them separately" in msg
    assert not (project / "data" / "mixed.jsonl").exists() and not (project / "dataset_info").exists()


def test_folder_with_format_given_still_skips_non_data(project, raw):
    hub_snapshot(raw / "tcm_qa")
    r = import_source(raw / "tcm_qa", "t", "alpaca")
    assert (r.accepted, r.quarantined) == (57, 0)
    assert r.notes and r.notes[0].startswith("skipped 4 files that are not data: ")


def test_folder_of_only_markdown_imports_it(project, raw):
    """README-like names are data when the folder holds nothing else (a corpus of notes)."""
    d = raw / "notes"
    d.mkdir()
    (d / "README.md").write_text("脾主运化，主升清。\n\n肾主水，主纳气。\n", encoding="utf-8")
    r = import_source(d, "notes")
    assert (r.format, r.accepted) == ("text", 1) and not r.notes


# --- JSON Lines named .txt ------------------------------------------------------------------------

def medical_corpus(path: Path, n: int = 6) -> Path:
    """MedicalGPT's pre-training corpus layout: ``medical_corpus.txt``, one {"text": ...} per line."""
    docs = [f"第{i}篇：中医学以整体观念和辨证论治为基本特点。阴阳五行学说贯穿始终。" for i in range(n)]
    path.write_text(jl(*({"text": d} for d in docs)), encoding="utf-8")
    return path


def test_txt_holding_json_lines_is_read_as_json_lines(project, raw):
    f = medical_corpus(raw / "medical_corpus.txt")
    r = import_source(f, "corpus")
    assert (r.format, r.accepted, r.quarantined, r.output_format) == ("text", 6, 0, "pt")
    rows = rows_of(project, "corpus")
    assert rows[0]["text"].startswith("第0篇：中医学") and "{" not in rows[0]["text"]  # the text, not raw JSON
    assert [x["source_row"] for x in rows] == [1, 2, 3, 4, 5, 6]
    assert r.notes == [("raw/medical_corpus.txt holds JSON Lines (one JSON object per line): read as JSON Lines, "
                        "not as plain text")]


def test_format_given_on_a_txt_of_json_lines(project, raw):
    f = raw / "finetune.txt"
    f.write_text(jl(*(qa(i) for i in range(4))), encoding="utf-8")
    r = import_source(f, "ft", "alpaca")
    assert (r.format, r.accepted, r.quarantined) == ("alpaca", 4, 0)
    assert rows_of(project, "ft")[0]["instruction"] == "黄芪的功效0？"
    assert import_source(f, "ft2").format == "alpaca"  # detected too


def test_prose_txt_stays_text_even_when_a_line_looks_like_json(project, raw):
    f = raw / "notes.txt"
    f.write_text('{"note": "a JSON-looking first line"}\n黄芪补气升阳。\n\n人参大补元气。\n', encoding="utf-8")
    r = import_source(f, "notes")
    assert (r.format, r.accepted, r.notes) == ("text", 1, [])
    assert rows_of(project, "notes")[0]["text"].startswith('{"note"')


# --- files cut inside a multi-byte character -------------------------------------------------------

def rows5() -> list[dict]:
    return [{"instruction": f"问题{i}", "output": "中医答案很长" * 3} for i in range(5)]


def test_json_array_cut_inside_a_character_keeps_the_valid_rows(project, raw):
    data = json.dumps(rows5(), ensure_ascii=False, indent=1).encode("utf-8")
    cut = data.rindex("答".encode()) + 1  # inside the last 答 (3 bytes in UTF-8)
    f = raw / "cut.json"
    f.write_bytes(data[:cut])
    r = import_source(f, "cut")
    assert (r.accepted, r.quarantined) == (4, 1)
    (rej,) = rejects_of(r)
    last_line = data[:cut].count(b"\n") + 1
    assert rej["line"] == last_line - 2  # where row 5 starts
    assert rej["reason"].startswith("truncated JSON in row 5 ")
    assert f"the file ends inside a multi-byte character (line {last_line}, byte {cut - 1}): it was cut off" \
        in rej["reason"]
    assert rej["raw"].endswith("\\xe7")  # the lone lead byte shown, not a decoding error for the whole file


def test_minified_json_array_cut_inside_a_character(project, raw):
    data = json.dumps(rows5(), ensure_ascii=False).encode("utf-8")
    f = raw / "cut.json"
    f.write_bytes(data[:len(data) - 4])  # '长"}]' minus 4 bytes: 2 of the 3 bytes of 长 left
    r = import_source(f, "cut")
    assert (r.accepted, r.quarantined) == (4, 1)
    (rej,) = rejects_of(r)
    assert rej["item"] == 5 and rej["message"].startswith("raw/cut.json: item 5: truncated JSON in row 5")
    assert f"(line 1, byte {len(data) - 6})" in rej["reason"]


def test_json_array_with_undecodable_bytes_in_one_row(project, raw):
    good = [json.dumps(qa(i), ensure_ascii=False).encode() for i in range(3)]
    gbk = json.dumps({"instruction": "头痛怎么办", "output": "注意休息"}, ensure_ascii=False).encode("gb18030")
    bad = b'{"instruction": "x\xff\xfey", "output": "z"}'
    data = b"[\n" + b",\n".join([good[0], gbk, good[1], bad, good[2]]) + b"\n]\n"
    f = raw / "mixed.json"
    f.write_bytes(data)
    r = import_source(f, "m")
    assert (r.accepted, r.quarantined) == (4, 1)
    assert rows_of(project, "m")[1]["instruction"] == "头痛怎么办"  # a GB18030 row, as in JSON Lines
    (rej,) = rejects_of(r)
    assert rej["kind"] == "decode" and rej["line"] == 5
    at = data.index(b"\xff")
    assert rej["reason"].endswith(f"(row 4: line 5, byte {at})")


def test_json_lines_cut_inside_a_character(project, raw):
    data = jl(*rows5()).encode("utf-8")
    f = raw / "cut.jsonl"
    f.write_bytes(data[:len(data) - 5])  # '长"}\n' minus 5 bytes: 1 of the 3 bytes of the last 长 left
    r = import_source(f, "cut")
    assert (r.accepted, r.quarantined) == (4, 1)
    (rej,) = rejects_of(r)
    last = data.splitlines()[4]
    assert rej["message"] == (f"raw/cut.jsonl:5: truncated JSON: the file ends inside a multi-byte character "
                              f"(byte {len(last) - 5} of line 5): it was cut off")


def test_json_object_cut_inside_a_character_is_one_line(project, raw):
    data = json.dumps({"data": rows5()}, ensure_ascii=False).encode("utf-8")
    f = raw / "obj.json"
    f.write_bytes(data[:len(data) - 5])
    with pytest.raises(FactoryKitError, match=r"^raw/obj\.json:1: truncated JSON: the file ends inside a "
                                              rf"multi-byte character \(byte {len(data) - 7}\); "):
        import_source(f, "obj")


# --- CMExam-style exam items: "A 固摄作用" ------------------------------------------------------------

def test_cmexam_option_letters_are_not_doubled(project, raw):
    f = raw / "cmexam.jsonl"
    f.write_text(jl(
        # CMExam's export: options in one cell, "letter space text" per line
        {"Question": "肾主纳气，体现了肾的何种作用", "Options": "A 固摄作用\nB 推动作用\nC 温煦作用\nD 滋润作用\nE 气化作用",
         "Answer": "A", "Explanation": "肾主纳气是肾的封藏作用在呼吸运动中的体现。"},
        {"question": "脾的主要生理功能是", "options": ["A 主运化", "B 主藏血", "C 主疏泄", "D 主纳气"], "answer": "A"},
        {"question": "心主", "options": {"A": "A 血脉", "B": "B 疏泄", "C": "C 纳气"}, "answer": "A"},
        {"question": "下列属于补气药的是", "options": ["(A) 黄芪", "（B）黄连", "C、大黄", "D．芒硝", "E: 甘草"], "answer": "A"},
        # English words are not letters: stripped only when every option starts with its own letter
        {"question": "Which is a sign of infection?", "options": ["A patient with fever", "Bed rest", "C-reactive protein"],
         "answer": "C"},
        {"question": "Which organ stores blood?", "A": "A Liver", "B": "B Heart", "C": "C Lung", "answer": "A"},
        {"question": "Which pathogen is gram-negative?", "options": ["Staphylococcus", "Streptococcus", "Candida",
                                                                    "Listeria", "E. coli"], "answer": "E"},
    ), encoding="utf-8")
    r = import_source(f, "exam")
    assert (r.format, r.accepted, r.quarantined) == ("mcq", 7, 0)
    bench = [json.loads(x) for x in r.benchmark.read_text(encoding="utf-8").splitlines()]
    assert bench[0]["options"] == {"A": "固摄作用", "B": "推动作用", "C": "温煦作用", "D": "滋润作用", "E": "气化作用"}
    assert bench[1]["options"] == {"A": "主运化", "B": "主藏血", "C": "主疏泄", "D": "主纳气"}
    assert bench[2]["options"] == {"A": "血脉", "B": "疏泄", "C": "纳气"}
    assert bench[3]["options"] == {"A": "黄芪", "B": "黄连", "C": "大黄", "D": "芒硝", "E": "甘草"}
    assert bench[4]["options"] == {"A": "A patient with fever", "B": "Bed rest", "C": "C-reactive protein"}
    assert bench[5]["options"] == {"A": "Liver", "B": "Heart", "C": "Lung"}
    assert bench[6]["options"]["E"] == "E. coli"
    prompt = rows_of(project, "exam")[0]["instruction"]
    assert "A. 固摄作用\nB. 推动作用" in prompt and "A. A " not in prompt


# --- repeated text chunks name both chunks --------------------------------------------------------

def test_duplicate_chunk_names_both_chunks(project, raw):
    kidney = "肾主水，主纳气，主骨生髓，其华在发。" * 3
    f = raw / "x.txt"
    spleen = "脾主运化，主升清，主统血，其华在唇。" * 3
    # 54-character lines, 60-character chunks: one chunk per line; line 5 makes two
    f.write_text(f"{kidney}\n{spleen}\n{kidney}\n\n{kidney}{kidney}\n", encoding="utf-8")
    r = import_source(f, "x", chunk_chars=60)
    rows = rows_of(project, "x")
    assert [x["source_row"] for x in rows] == [1, 2]  # each chunk's own first line
    msgs = [x["message"] for x in rejects_of(r)]
    assert msgs == ["raw/x.txt:3 (chunk 3): exact duplicate of raw/x.txt:1 (chunk 1)",
                    "raw/x.txt:5 (chunk 4): exact duplicate of raw/x.txt:1 (chunk 1)",
                    "raw/x.txt:5 (chunk 5): exact duplicate of raw/x.txt:1 (chunk 1)"]
    rej = rejects_of(r)[0]
    assert (rej["line"], rej["last_line"], rej["chunk"]) == (3, 3, 3)


def test_duplicate_multi_line_chunk_names_its_line_range(project, raw):
    para = "黄芪补气升阳。\n人参大补元气。\n"
    f = raw / "y.txt"
    f.write_text(f"{para}\n党参补中益气。\n\n{para}", encoding="utf-8")
    r = import_source(f, "y", chunk_chars=16)
    assert [x["message"] for x in rejects_of(r)] == [
        "raw/y.txt:6-7 (chunk 3): exact duplicate of raw/y.txt:1-2 (chunk 1)"]
