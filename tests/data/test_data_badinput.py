"""The bad-input corpus: every case states its expected message and counts.

Generated here (not shipped) so that encodings and sizes are exact. For every import,
accepted + quarantined == total, the output and quarantine files hold exactly those rows,
and every quarantined row carries its source, line, reason and original (or raw text).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from factory_kit.data.importer import import_source
from factory_kit.core.errors import FactoryKitError


def jl(*rows) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows)


def qa(i: int = 0, **kw) -> dict:
    return {"instruction": f"黄芪的功效{i}？", "input": "", "output": f"补气升阳{i}。", **kw}


def check(report, project: Path, accepted: int, quarantined: int, *messages: str, duplicates: int = 0) -> list[dict]:
    assert (report.accepted, report.quarantined, report.duplicates) == (accepted, quarantined, duplicates)
    assert report.accepted + report.quarantined == report.total
    out = (project / "data" / f"{report.name}.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(out) == accepted
    for line in out:
        row = json.loads(line)
        assert row["source"] and row["source_row"] >= 1
    rejects: list[dict] = []
    if quarantined:
        assert report.quarantine is not None
        rejects = [json.loads(x) for x in report.quarantine.read_text(encoding="utf-8").splitlines()]
        assert len(rejects) == quarantined
        for r in rejects:
            assert r["reason"] and r["source"] and r["line"] >= 1
            if "item" in r:  # an element of a minified JSON array: addressed by its number
                assert r["item"] >= 1 and r["message"] == f"{r['source']}: item {r['item']}: {r['reason']}"
            else:
                assert r["message"] == f"{r['source']}:{r['line']}: {r['reason']}"
            assert "original" in r or "raw" in r
    else:
        assert report.quarantine is None
    text = "\n".join(r["message"] for r in rejects)
    for m in messages:
        assert m in text, f"{m!r} not in:\n{text}"
    return rejects


@pytest.fixture
def raw(project) -> Path:
    d = project / "raw"
    d.mkdir()
    return d


def test_broken_jsonl_line(project, raw):
    f = raw / "x.jsonl"
    f.write_text(jl(qa(1), '{"instruction": "a", "output": "b"', qa(3)), encoding="utf-8")
    r = import_source(f, "t")
    rej = check(r, project, 2, 1, "raw/x.jsonl:2: truncated JSON")
    assert rej[0]["raw"] == '{"instruction": "a", "output": "b"'


def test_not_json_and_non_object_lines(project, raw):
    f = raw / "x.jsonl"
    f.write_text(jl(qa(1), "hello", "[1, 2]", '"text"', qa(5)), encoding="utf-8")
    check(import_source(f, "t"), project, 2, 3, "x.jsonl:2: not valid JSON",
          "x.jsonl:3: expected a JSON object per row, got a list", "x.jsonl:4: expected a JSON object per row, got a string")


def test_truncated_json_array(project, raw):
    f = raw / "x.json"
    f.write_text('[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c", "outp', encoding="utf-8")
    check(import_source(f, "t"), project, 1, 1, "x.json:3: truncated JSON in row 2")


def test_json_array_broken_element_resyncs(project, raw):
    f = raw / "x.json"
    rows = [json.dumps(qa(i), ensure_ascii=False, indent=2).replace("\n", "\n  ") for i in range(4)]
    rows[1] = rows[1].replace('"input": ""', '"input": "" "oops"')
    f.write_text("[\n  " + ",\n  ".join(rows) + "\n]\n", encoding="utf-8")
    rej = check(import_source(f, "t"), project, 3, 1, "not valid JSON in row 2")
    assert rej[0]["line"] == 7


def test_minified_json_array_rows_are_addressed_by_item(project, raw):
    def cot(i: int, c: str = "先辨证。") -> dict:
        return {"Question": f"头痛{i}怎么办？", "Complex_CoT": c, "Response": f"休息{i}。"}

    f = raw / "cot.json"
    f.write_text(json.dumps([cot(1), cot(2), cot(3, ""), cot(1), cot(5)], ensure_ascii=False), encoding="utf-8")
    r = import_source(f, "cot")
    rej = check(r, project, 3, 2, 'raw/cot.json: item 3: field "Complex_CoT" is empty',
                "raw/cot.json: item 4: exact duplicate of raw/cot.json item 1", duplicates=1)
    assert [(x["line"], x["item"]) for x in rej] == [(1, 3), (1, 4)]
    rows = [json.loads(x) for x in (project / "data/cot.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [x["source_row"] for x in rows] == [1, 2, 5]
    # the same rows on the second line of the file (after "[\n"): line 2, still items
    f.write_text("[\n" + json.dumps([cot(1), cot(2), cot(3, "")], ensure_ascii=False)[1:], encoding="utf-8")
    rej = check(import_source(f, "cot"), project, 2, 1, 'raw/cot.json: item 3: field "Complex_CoT" is empty')
    assert (rej[0]["line"], rej[0]["item"]) == (2, 3)
    # one element per line: real line numbers, as before
    f.write_text("[\n" + ",\n".join(json.dumps(x, ensure_ascii=False) for x in (cot(1), cot(2, ""))) + "\n]",
                 encoding="utf-8")
    rej = check(import_source(f, "cot"), project, 1, 1, 'raw/cot.json:3: field "Complex_CoT" is empty')
    assert "item" not in rej[0]


def test_gbk_csv(project, raw):
    f = raw / "his_export.csv"
    f.write_bytes("问题,答案\n黄芪的功效？,补气升阳。\n头痛怎么办？,需辨证。\n".encode("gbk"))
    r = import_source(f, "t")
    check(r, project, 2, 0)
    row = json.loads((project / "data" / "t.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert row["instruction"] == "黄芪的功效？" and row["output"] == "补气升阳。" and row["source_row"] == 2


def test_gb18030_line_in_utf8_jsonl_and_undecodable_bytes(project, raw):
    f = raw / "x.jsonl"
    f.write_bytes(jl(qa(1)).encode() + jl(qa(2)).encode("gb18030") + b'{"instruction": "\xff\xfe", "output": "b"}\n')
    rej = check(import_source(f, "t"), project, 2, 1, "x.jsonl:3: undecodable bytes")
    assert "re-save the file as UTF-8 or pass --encoding" in rej[0]["reason"]


def test_utf8_bom_jsonl_and_csv(project, raw):
    f = raw / "bom.jsonl"
    f.write_bytes(b"\xef\xbb\xbf" + jl(qa(1), qa(2)).encode())
    check(import_source(f, "t1"), project, 2, 0)
    c = raw / "bom.csv"
    c.write_bytes(b"\xef\xbb\xbf" + "instruction,output\n问,答\n".encode())
    check(import_source(c, "t2"), project, 1, 0)


def test_missing_column_with_did_you_mean(project, raw):
    f = raw / "x.jsonl"
    f.write_text(jl(qa(1), {"instruction": "a", "outptu": "b"}, {"instruction": "c"}), encoding="utf-8")
    check(import_source(f, "t"), project, 1, 2,
          'x.jsonl:2: missing field "output" (did you mean "outptu"? map it with --columns output=outptu)',
          'x.jsonl:3: missing field "output"')


def test_renamed_columns_need_mapping(project, raw):
    f = raw / "x.csv"
    f.write_text("q,a\n黄芪？,补气。\n", encoding="utf-8")
    with pytest.raises(FactoryKitError, match=r"cannot tell the format from columns \['a', 'q'\].*--columns"):
        import_source(f, "t")
    check(import_source(f, "t", columns="instruction=q,output=a"), project, 1, 0)


def test_columns_naming_a_missing_column(project, raw):
    f = raw / "cols.csv"
    f.write_text("id,主诉,医嘱\n1,头痛三天,多休息\n", encoding="utf-8")
    with pytest.raises(FactoryKitError) as exc:
        import_source(f, "t", columns="instruction=主诉,output=医院")
    assert str(exc.value) == "--columns output=医院: raw/cols.csv has no column '医院' (columns: id, 主诉, 医嘱)"
    with pytest.raises(FactoryKitError) as exc:  # also with --format named, and with a close match
        import_source(f, "t", "alpaca", columns="instruction=主诉,output=医瞩嘱")
    assert str(exc.value) == ("--columns output=医瞩嘱: raw/cols.csv has no column '医瞩嘱' (columns: id, 主诉, 医嘱); "
                              "did you mean --columns output=医嘱?")
    assert not (project / "data").exists()
    check(import_source(f, "t", columns="instruction=主诉,output=医嘱"), project, 1, 0)


def test_chinese_headers_are_aliases(project, raw):
    f = raw / "x.csv"
    f.write_text("问题,回答\n黄芪？,补气。\n", encoding="utf-8")
    r = import_source(f, "t")
    assert r.format == "alpaca"
    check(r, project, 1, 0)


def test_nulls(project, raw):
    f = raw / "x.jsonl"
    f.write_text(jl(qa(1, input=None, system=None), {"instruction": "a", "output": None},
                    {"instruction": None, "output": "b"}), encoding="utf-8")
    check(import_source(f, "t"), project, 1, 2, 'x.jsonl:2: field "output" is null', 'x.jsonl:3: field "instruction" is null')


def test_wrong_types(project, raw):
    f = raw / "x.jsonl"
    f.write_text(jl(qa(1), {"instruction": "a", "output": 42}, {"instruction": ["a"], "output": "b"},
                    {"instruction": "a", "output": "b", "history": "no"}), encoding="utf-8")
    check(import_source(f, "t"), project, 1, 3, 'x.jsonl:2: field "output" must be text, got a number',
          'x.jsonl:3: field "instruction" must be text, got a list',
          'x.jsonl:4: field "history" must be a list of [question, answer] pairs, got text')


def test_numbers_in_spreadsheets_are_text(project, raw):
    """A CSV cell is text exactly as written: no number parsing that drops zeros or digits."""
    cells = ["2", "007", "1.50", "1e3", "-0", "12345678901234567890", "3.0"]
    f = raw / "x.csv"
    f.write_text("instruction,output\n" + "".join(f"第{i}题 1+1=?,{c}\n" for i, c in enumerate(cells)),
                 encoding="utf-8")
    check(import_source(f, "t"), project, len(cells), 0)
    rows = [json.loads(line) for line in (project / "data" / "t.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["output"] for r in rows] == cells
    assert rows[0]["instruction"] == "第0题 1+1=?"


def test_empty_strings(project, raw):
    f = raw / "x.jsonl"
    f.write_text(jl(qa(1), {"instruction": "a", "output": ""}, {"instruction": " \u3000\t", "output": "b"},
                    {"instruction": "a", "output": "\u200b"}), encoding="utf-8")
    check(import_source(f, "t"), project, 1, 3, 'x.jsonl:2: field "output" is empty',
          'x.jsonl:3: field "instruction" is empty', 'x.jsonl:4: field "output" is empty')


def test_ten_megabyte_row(project, raw):
    f = raw / "x.jsonl"
    f.write_text(jl(qa(1), qa(2, output="很长" * (5 << 20)), qa(3)), encoding="utf-8")
    assert f.stat().st_size > 10 << 20
    rej = check(import_source(f, "t"), project, 2, 1, "x.jsonl:2: row is 10,485,7")
    assert "over --max-chars 50,000" in rej[0]["reason"]
    assert len(rej[0]["original"]["output"]) == 10 << 20  # nothing lost: the row is kept whole
    check(import_source(f, "t2", max_chars=0), project, 3, 0)  # 0 = no limit


def test_mixed_formats(project, raw):
    f = raw / "x.jsonl"
    conv = {"conversations": [{"from": "human", "value": "你好"}, {"from": "gpt", "value": "您好"}]}
    f.write_text(jl(qa(1), qa(2), conv, qa(4)), encoding="utf-8")
    r = import_source(f, "t")
    assert r.format == "alpaca"
    check(r, project, 3, 1, 'x.jsonl:3: row is sharegpt (conversations: [{from, value}]), not alpaca',
          "import it separately with --format sharegpt")


def test_duplicate_rows(project, raw):
    f = raw / "x.jsonl"
    a = {"instruction": "头痛，发热怎么办？", "input": "", "output": "多喝水。"}
    b = {"instruction": "头痛,发热怎么办?", "input": "", "output": "多喝水。 "}  # same after normalisation
    f.write_text(jl(a, qa(2), a, b), encoding="utf-8")
    check(import_source(f, "t"), project, 2, 2, "x.jsonl:3: exact duplicate of raw/x.jsonl:1",
          "x.jsonl:4: exact duplicate of raw/x.jsonl:1", duplicates=2)
    check(import_source(f, "t", dedup="none"), project, 4, 0)


def test_blank_lines_are_not_rows_and_lines_stay_right(project, raw):
    f = raw / "x.jsonl"
    f.write_text(jl(qa(1)) + "\n   \n" + jl({"instruction": "a", "output": ""}), encoding="utf-8")
    check(import_source(f, "t"), project, 1, 1, "x.jsonl:4: field \"output\" is empty")


def test_ragged_csv_row(project, raw):
    f = raw / "x.csv"
    f.write_text('instruction,input,output\n"a",,"b"\n"c",d,e,f\n"多行\n问题",,答\n', encoding="utf-8")
    rej = check(import_source(f, "t"), project, 2, 1, "x.csv:3: row has 4 cells, the header has 3")
    assert rej[0]["raw"] == "c,d,e,f"
    rows = (project / "data" / "t.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(rows[1])["source_row"] == 4 and json.loads(rows[1])["instruction"] == "多行\n问题"


def test_stray_quote_in_csv_does_not_swallow_the_rows_after_it(project, raw):
    """One unclosed quote must not fold the rest of the file into a single accepted row."""
    f = raw / "x.csv"
    body = 'instruction,output\n头痛,"川芎茶调散\n' + "".join(f"问题{i},答案{i}\n" for i in range(1000))
    body += '多行,"第一行\n第二行"\n再来,"未闭合\n末行,答\n'
    f.write_text(body, encoding="utf-8")
    stray = "a quoted cell opens on this line and is not closed properly (a stray or missing '\"')"
    check(import_source(f, "t"), project, 1002, 2, f"x.csv:2: {stray}", f"x.csv:1005: {stray}")
    rows = [json.loads(line) for line in (project / "data" / "t.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rows[0]["instruction"] == "问题0" and rows[0]["source_row"] == 3
    assert rows[1000]["output"] == "第一行\n第二行" and rows[1000]["source_row"] == 1003  # a real multi-line cell
    assert rows[-1]["instruction"] == "末行" and rows[-1]["source_row"] == 1006


@pytest.mark.parametrize("content,name,message", [
    (b"", "empty.jsonl", "empty.jsonl: file is empty"),
    (b"x", "notes.docx", "unsupported file type .docx"),
    (b"\n\n\n", "blank.jsonl", "no rows found"),
    (b"[]", "empty_array.json", "empty_array.json: no rows found"),
    (b"[\n", "open_array.json", "truncated JSON: the array is never closed"),
    (b"instruction,output\n", "header_only.csv", "no rows found"),
    (jl({"a": 1, "b": 2}).encode(), "unknown.jsonl", "cannot tell the format from columns ['a', 'b']"),
])
def test_unreadable_files_fail_with_reason(project, raw, content, name, message):
    f = raw / name
    f.write_bytes(content)
    with pytest.raises(FactoryKitError) as exc:
        import_source(f, "t")
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)
    assert not (project / "data" / "t.jsonl").exists()


def test_missing_file(project):
    with pytest.raises(FactoryKitError, match="nope.jsonl: no such file or folder"):
        import_source("nope.jsonl", "t")


def test_nothing_accepted_fails_but_keeps_quarantine(project, raw):
    f = raw / "x.jsonl"
    f.write_text(jl({"instruction": "a", "output": ""}, {"instruction": "b", "output": ""}), encoding="utf-8")
    with pytest.raises(FactoryKitError, match=r'x.jsonl:1: field "output" is empty; no row accepted \(2 quarantined'):
        import_source(f, "t")
    assert len((project / "data/quarantine/t.rejected.jsonl").read_text().splitlines()) == 2
    assert not (project / "data/t.jsonl").exists()
    assert not (project / "dataset_info/dataset_info.json").exists()


def test_failed_reimport_keeps_previous_dataset(project, raw):
    good = raw / "good.jsonl"
    good.write_text(jl(qa(1), qa(2)), encoding="utf-8")
    import_source(good, "t")
    bad = raw / "bad.jsonl"
    bad.write_text(jl({"instruction": "a", "output": ""}), encoding="utf-8")
    with pytest.raises(FactoryKitError):
        import_source(bad, "t")
    assert len((project / "data/t.jsonl").read_text().splitlines()) == 2
    assert "t" in json.loads((project / "dataset_info/dataset_info.json").read_text())


def test_excel_and_parquet(project, raw):
    import openpyxl
    import pyarrow as pa
    import pyarrow.parquet as pq

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["问题", "答案", None])
    ws.append(["黄芪？", "补气。", None])
    ws.append(["剂量？", 30, None])
    ws.append([None, None, None])
    ws.append(["空答案", None, None])
    wb.save(raw / "x.xlsx")
    check(import_source(raw / "x.xlsx", "xl"), project, 2, 1, 'x.xlsx:5: field "答案" is null')
    pq.write_table(pa.table({"instruction": ["a", "b", None], "output": ["x", "y", "z"]}), raw / "x.parquet")
    check(import_source(raw / "x.parquet", "pq"), project, 2, 1, 'x.parquet:3: field "instruction" is null')


def test_excel_dates_times_and_booleans_are_text(project, raw):
    """Cells as Excel shows them: a date (midnight) as 2024-03-07, a datetime and a time in ISO
    form, TRUE/FALSE; in JSON, true/false is still not text."""
    import datetime

    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["问题", "答案"])
    ws.append(["复诊日期？", datetime.date(2024, 3, 7)])
    ws.append(["采血时间？", datetime.datetime(2024, 3, 7, 8, 30)])
    ws.append(["服药时间？", datetime.time(21, 15)])
    ws.append(["是否空腹？", True])
    ws.append(["是否过敏？", False])
    wb.save(raw / "d.xlsx")
    r = import_source(raw / "d.xlsx", "d")
    check(r, project, 5, 0)
    rows = [json.loads(x) for x in (project / "data/d.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [x["output"] for x in rows] == ["2024-03-07", "2024-03-07 08:30:00", "21:15:00", "TRUE", "FALSE"]
    assert [x["source_row"] for x in rows] == [2, 3, 4, 5, 6]
    # JSON true is not a spreadsheet cell: still rejected there
    f = raw / "b.jsonl"
    f.write_text(jl(qa(1), {"instruction": "是否空腹？", "output": True}), encoding="utf-8")
    check(import_source(f, "b"), project, 1, 1, 'raw/b.jsonl:2: field "output" must be text, got true/false')


def test_blank_tabular_rows_are_not_rows_but_are_reported(project):
    """5 data rows with 1 fully blank (CSV `,,` or an empty Excel row): total 4, "1 blank row skipped"."""
    import openpyxl
    from click.testing import CliRunner

    from factory_kit.cli.data import data
    from factory_kit.data.importer import import_source

    rows = [["问题", "答案"], ["头痛怎么办", "休息"], ["发热怎么办", "补液"], ["", ""], ["咳嗽怎么办", "润肺"],
            ["失眠怎么办", "安神"]]
    (project / "b.csv").write_text("\n".join(",".join(r) for r in rows) + "\n", encoding="utf-8")
    r = import_source(project / "b.csv", "b")
    assert (r.total, r.accepted, r.quarantined, r.blank_rows) == (4, 4, 0, 1)
    assert r.summary().endswith("; 1 blank row skipped")
    wb = openpyxl.Workbook()
    for row in rows:
        wb.active.append([c or None for c in row])
    wb.active.append([None, None])  # trailing empty rows count too when the sheet holds them
    wb.save(project / "b.xlsx")
    result = CliRunner().invoke(data, ["import", str(project / "b.xlsx"), "--name", "bx"])
    assert result.exit_code == 0, result.output
    assert "4 accepted, 0 quarantined" in result.output and "2 blank rows skipped" in result.output
    # a row with one empty cell is a row: quarantined with its reason, not skipped
    (project / "c.csv").write_text("问题,答案\n头痛怎么办,休息\n发热怎么办,\n", encoding="utf-8")
    r = import_source(project / "c.csv", "c")
    assert (r.total, r.accepted, r.quarantined, r.blank_rows) == (2, 1, 1, 0)
    assert "blank" not in r.summary()
