"""Normalisation, PII redaction, dedup, splits, registry behaviour, and the parallel path."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import pytest

from factory_kit.data import registry
from factory_kit.data.importer import import_source
from factory_kit.core.errors import FactoryKitError
from factory_kit.core.paths import SAMPLES_DIR
from factory_kit.data.pii import Redactor, parse_kinds, redact
from factory_kit.data.quality import Normalizer
from factory_kit.data.split import assign, parse_ratios, sizes


def jl(*rows) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def rows_of(project: Path, name: str) -> list[dict]:
    return [json.loads(x) for x in (project / "data" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]


# --- normalisation ---------------------------------------------------------------------

@pytest.mark.parametrize("width,text,expected", [
    ("zh", "头痛,发热.  伴咳嗽\r\n\r\n\r\n\r\n剂量:３ｇ，ＡＢＣ", "头痛，发热。伴咳嗽\n\n剂量：3g，ABC"),
    ("zh", "Temp 37.5, BP 120/80; ok?", "Temp 37.5, BP 120/80; ok?"),  # ASCII context untouched
    ("zh", "五行中“木”的特性是（\u3000）", "五行中“木”的特性是（\u3000）"),  # blanks in exam items kept
    ("half", "头痛，发热！ＡＢＣ\u3000１", "头痛,发热!ABC 1"),
    ("keep", "头痛,发热ＡＢＣ", "头痛,发热ＡＢＣ"),
    ("zh", "e\u0301\u200b\ufeffx\x07", "\u00e9x"),  # NFC, zero-width and control characters
    ("zh", "  a \t b  \n  c  ", "a b\n c"),
])
def test_normalizer(width, text, expected):
    assert Normalizer(width=width)(text) == expected


def test_t2s_and_bad_width_policy(project):
    assert Normalizer(t2s=True)("頭痛發熱，氣血兩虛") == "头痛发热，气血两虚"
    with pytest.raises(FactoryKitError, match="--width-policy 'wide'"):
        Normalizer(width="wide")
    f = project / "t.jsonl"
    f.write_text(jl({"instruction": "頭痛怎麼辦", "output": "請就醫"}), encoding="utf-8")
    import_source(f, "t", t2s=True)
    assert rows_of(project, "t")[0]["instruction"] == "头痛怎么办"


# --- PII ---------------------------------------------------------------------------------

def test_redaction_kinds_and_counts():
    text = ("患者张三，男，45岁，身份证号110101199003071234，电话13812345678，邮箱 zhang@example.com，"
            "住院号：ZY2023001。联系人：李四（010-12345678）。")
    out, counts = redact(text)
    assert out == ("患者[姓名]，男，45岁，身份证号[身份证号]，电话[电话]，邮箱 [邮箱]，住院号：[病历号]。"
                   "联系人：[姓名]（[电话]）。")
    assert counts == {"name": 2, "id_card": 1, "phone": 2, "email": 1, "mrn": 1}


@pytest.mark.parametrize("text", [
    "患者出现高热，伴咳嗽。", "患者高热3天，体温39.5℃。", "患者为中年，男性。", "患者：刘某某，男。",
    "订单号123456789012345678", "服用黄芪30g，每日2次，共14天。", "血压120/80mmHg，心率76次/分。",
])
def test_redaction_leaves_clinical_text_alone(text):
    assert redact(text) == (text, {})


@pytest.mark.parametrize("text, expected, counts", [
    ("身份证 110101 19700307 1234 已核对", "身份证 [身份证号] 已核对", {"id_card": 1}),
    ("证件号110101-19700307-123X。", "证件号[身份证号]。", {"id_card": 1}),
    ("证件号 110101-1970-0307-123x", "证件号 [身份证号]", {"id_card": 1}),
    ("家属张伟（女儿）陪同，家属王五签字", "家属[姓名]（女儿）陪同，家属[姓名]签字", {"name": 2}),
    ("联系人李四，电话13800000000", "联系人[姓名]，电话[电话]", {"name": 1, "phone": 1}),
    ("联系人 李四", "联系人 [姓名]", {"name": 1}),
    ("病人张三，45岁，病人家属李四签字", "病人[姓名]，45岁，病人家属[姓名]签字", {"name": 2}),
    ("病人王芳签字", "病人[姓名]签字", {"name": 1}),
])
def test_redaction_of_grouped_id_numbers_and_names_after_family_markers(text, expected, counts):
    assert redact(text) == (expected, counts)


@pytest.mark.parametrize("text", [
    "黄芪10-15g，每日3次，共7天。", "日期2023-01-05，复诊2023 01 12。", "家属同意手术", "家属陪同下就诊",
    "家属代诉：头痛3天。", "联系人电话未留", "家属要求出院", "家属商议后，同意手术。", "家属和患者，均知情。",
    "家属明确表示理解。", "病人高热，3天", "编号110101-19700307-1234-5", "患者出现高热，伴咳嗽。",
])
def test_redaction_extensions_leave_ordinary_text_alone(text):
    assert redact(text) == (text, {})


def test_redact_option_in_import_counts_never_values(project):
    f = project / "r.jsonl"
    f.write_text(jl({"instruction": "姓名：王五，电话13900001111，怎么办？", "output": "请联系 a@b.cn"},
                    {"instruction": "病历号 A123456 的复查", "output": "正常"}), encoding="utf-8")
    r = import_source(f, "r", redact="all")
    assert r.redactions == {"name": 1, "phone": 1, "email": 1, "mrn": 1}
    body = (project / "data" / "r.jsonl").read_text(encoding="utf-8")
    assert "13900001111" not in body and "王五" not in body and "A123456" not in body
    meta = (project / "data" / "meta" / "r.json").read_text(encoding="utf-8")
    assert "13900001111" not in meta and '"phone": 1' in meta
    r2 = import_source(f, "r2", redact="phone")
    assert r2.redactions == {"phone": 1} and "王五" in (project / "data" / "r2.jsonl").read_text(encoding="utf-8")
    with pytest.raises(FactoryKitError, match="--redact ssn: unknown kind"):
        parse_kinds("ssn")


def test_redactor_counts_accumulate():
    r = Redactor(("phone",))
    r("13800000000"), r("电话：13900000000 或 13700000000")
    assert r.counts == Counter(phone=3)


# --- dedup --------------------------------------------------------------------------------

def test_near_dedup_chinese_character_ngrams(project):
    base = "患者女，32岁，近2个月食欲不振，食后腹胀，大便溏薄，神疲乏力，舌淡胖有齿痕，苔白，脉缓弱。应如何辨证？"
    near = base.replace("近2个月", "近两个月")
    other = "患者男，60岁，反复咳嗽咳痰10年，加重伴气喘1周，痰白量多，舌淡苔白腻，脉滑。应如何辨证？"
    f = project / "n.jsonl"
    ans = "辨为脾气虚证，治以益气健脾，方用参苓白术散加减。"
    f.write_text(jl({"instruction": base, "output": ans}, {"instruction": near, "output": ans},
                    {"instruction": other, "output": ans}), encoding="utf-8")
    assert import_source(f, "exact").accepted == 3
    r = import_source(f, "near", dedup="near", near_threshold=0.7)
    assert (r.accepted, r.duplicates) == (2, 1)
    q = json.loads(r.quarantine.read_text(encoding="utf-8"))
    assert q["reason"].startswith("near-duplicate (similarity 0.") and q["reason"].endswith("of n.jsonl:1")
    with pytest.raises(FactoryKitError, match="--near-threshold 1.5"):
        import_source(f, "x", dedup="near", near_threshold=1.5)
    with pytest.raises(FactoryKitError, match="--dedup 'fuzzy'"):
        import_source(f, "x", dedup="fuzzy")


_CASES = [  # distinct rows on close topics (same template): none may be merged
    "患者女，32岁，近2个月食欲不振，食后腹胀，大便溏薄，神疲乏力，舌淡胖有齿痕，苔白，脉缓弱。应如何辨证论治？",
    "患者男，45岁，近3个月胸闷心悸，夜寐不安，多梦易醒，头晕目眩，面色无华，舌淡苔薄白，脉细弱。应如何辨证论治？",
    "患者女，58岁，反复咳嗽咳痰10年，加重伴气喘1周，痰白量多，胸脘痞闷，舌淡苔白腻，脉滑。应如何辨证论治？",
    "患者男，67岁，腰膝酸软，畏寒肢冷，夜尿频多，小便清长，精神萎靡，舌淡胖苔白，脉沉细无力。应如何辨证论治？",
    "患者女，29岁，经前乳房胀痛，情志抑郁，善太息，胸胁胀满，月经先后不定期，舌淡红苔薄白，脉弦。应如何辨证论治？",
    "患者男，36岁，胃脘灼热疼痛，口干口苦，嘈杂泛酸，大便干结，小便短黄，舌红苔黄，脉弦数。应如何辨证论治？",
]
_ANSWERS = ["辨为脾气虚证，治以益气健脾，方用参苓白术散加减。", "辨为心脾两虚证，治以补益心脾，方用归脾汤加减。",
            "辨为痰湿蕴肺证，治以燥湿化痰，方用二陈汤合三子养亲汤加减。", "辨为肾阳虚证，治以温补肾阳，方用右归丸加减。",
            "辨为肝郁气滞证，治以疏肝解郁，方用逍遥散加减。", "辨为肝胃郁热证，治以疏肝泄热，方用化肝煎加减。"]


def _jaccard3(a: str, b: str) -> float:
    sa, sb = ({t[i:i + 3] for i in range(len(t) - 2)} for t in (a, b))
    return len(sa & sb) / len(sa | sb)


def test_near_dedup_planted_chinese_near_duplicates(project):
    """Near copies (a character or two changed, punctuation changed, traditional characters
    with --t2s) are caught at the default threshold and name their original; rows of the same
    template on other conditions are all kept."""
    rows = [{"instruction": q, "output": a} for q, a in zip(_CASES, _ANSWERS)]
    near = [
        (0, _CASES[0].replace("近2个月", "近两个月")),                      # digit -> Chinese numeral
        (1, _CASES[1].replace("，多梦易醒", "；多梦易醒")),                  # punctuation
        (2, _CASES[2].replace("10年", "十年")),
        (3, "患者男，67歲，腰膝痠軟，畏寒肢冷，夜尿頻多，小便清長，精神萎靡，舌淡胖苔白，脈沉細無力。應如何辨證論治？"),
    ]
    for i, q in near:
        if i != 3:  # the traditional copy only matches once converted
            assert _jaccard3(q + _ANSWERS[i], _CASES[i] + _ANSWERS[i]) >= 0.85, q  # what is compared
    for i in range(len(_CASES)):
        for j in range(i):
            assert _jaccard3(_CASES[i], _CASES[j]) < 0.5
    f = project / "planted.jsonl"
    f.write_text(jl(*rows, *({"instruction": q, "output": _ANSWERS[i]} for i, q in near)), encoding="utf-8")
    r = import_source(f, "planted", dedup="near", t2s=True)
    assert (r.accepted, r.duplicates) == (len(_CASES), len(near))
    reasons = [json.loads(line)["reason"] for line in r.quarantine.read_text(encoding="utf-8").splitlines()]
    for (i, _), reason in zip(near, reasons):
        assert reason.endswith(f"of planted.jsonl:{i + 1}"), reason
        assert "duplicate" in reason
    kept = [json.loads(line)["instruction"] for line in r.output.read_text(encoding="utf-8").splitlines()]
    assert kept == _CASES


def test_near_deduper_blocks_match_row_by_row():
    """Sketching rows a block at a time gives the same answers as one row at a time: copies
    inside one block and across blocks are found, in order."""
    import random

    from factory_kit.data.dedup import NearDeduper

    rng = random.Random(5)
    texts = []
    for k in range(3000):
        if texts and rng.random() < 0.1:
            t = list(rng.choice(texts))
            t[rng.randrange(len(t))] = "的"
            texts.append("".join(t))
        else:
            texts.append(_CASES[k % len(_CASES)] + f"病例{k}" + "".join(rng.choices("头痛发热恶寒咳嗽失眠心悸胸闷腹胀眩晕乏力", k=30)))
    one, blocks = NearDeduper(), NearDeduper()
    row_by_row = [one.check(t, k) for k, t in enumerate(texts)]
    blocked = []
    for lo in range(0, len(texts), 700):
        blocks.prepare(texts[lo:lo + 700])
        blocked += [blocks.check(t, lo + k) for k, t in enumerate(texts[lo:lo + 700])]
    assert blocked == row_by_row
    assert sum(hit is not None for hit in blocked) > 200


def test_band_table_matches_a_dict():
    import numpy as np

    from factory_kit.data.dedup import _BandTable

    rng = np.random.default_rng(3)
    table, ref, row = _BandTable(bits=4), {}, 0
    for it in range(20):
        keys = rng.integers(0, 500 if it % 2 else 2**32, int(rng.integers(1, 2000)), dtype=np.uint64)
        table.add_many(keys, np.arange(row, row + len(keys)))
        for k, r in zip(keys.tolist(), range(row, row + len(keys))):
            ref.setdefault(k, set()).add(r)
        row += len(keys)
        queries = np.concatenate([rng.integers(0, 500, 300, dtype=np.uint64), keys[:100]])
        q, r = table.get_many(queries)
        got: dict = {}
        for a, b in zip(q.tolist(), r.tolist()):
            got.setdefault(a, set()).add(b)
        assert all(got.get(i, set()) == ref.get(k, set()) for i, k in enumerate(queries.tolist()))


def test_duplicates_across_files_name_the_first(project):
    d = project / "raw"
    d.mkdir()
    (d / "a.jsonl").write_text(jl({"instruction": "问", "output": "答"}), encoding="utf-8")
    (d / "b.jsonl").write_text(jl({"instruction": "问 ", "output": "答"}), encoding="utf-8")
    r = import_source(d, "ab")
    assert r.examples == ["raw/b.jsonl:1: exact duplicate of raw/a.jsonl:1"]


# --- splits -------------------------------------------------------------------------------

def test_split_ratios_and_sizes():
    assert parse_ratios("80,10,10") == (0.8, 0.1, 0.1)
    assert parse_ratios("0.9,0.1") == (0.9, 0.1, 0.0)
    assert sizes(7, (0.8, 0.1, 0.1)) == [5, 1, 1] and sum(sizes(101, (0.8, 0.1, 0.1))) == 101
    for bad in ("0.8", "a,b", "0,1", "-1,2"):
        with pytest.raises(FactoryKitError, match="--split"):
            parse_ratios(bad)
    # parts that do not add up are refused, not rescaled
    with pytest.raises(FactoryKitError) as exc:
        parse_ratios("0.5,0.6")
    assert str(exc.value) == ("--split 0.5,0.6: the fractions add up to 1.1; they must add up to 1 "
                              "(e.g. 0.9,0.1 or 0.8,0.1,0.1)")
    with pytest.raises(FactoryKitError, match=r"^--split 80,10,20: the percentages add up to 110; they must add up to 100"):
        parse_ratios("80,10,20")
    assert parse_ratios("0.7,0.2,0.1") == pytest.approx((0.7, 0.2, 0.1))  # float sums within 1e-6 pass
    a = assign({"": 10}, (0.8, 0.1, 0.1), 1)[""]
    assert list(a) == list(assign({"": 10}, (0.8, 0.1, 0.1), 1)[""]) and sorted(a.tolist()) == [0] * 8 + [1, 2]


def test_split_is_deterministic_and_registered(project):
    r1 = import_source(SAMPLES_DIR / "tcm_qa.jsonl", "qa", split="0.8,0.1,0.1", seed=7)
    first = {s: (project / "data" / f"qa_{s}.jsonl").read_bytes() for s in ("train", "val", "test")}
    r2 = import_source(SAMPLES_DIR / "tcm_qa.jsonl", "qa", split="0.8,0.1,0.1", seed=7)
    assert first == {s: (project / "data" / f"qa_{s}.jsonl").read_bytes() for s in ("train", "val", "test")}
    assert r1.splits == r2.splits == {"train": 64, "val": 8, "test": 8}
    import_source(SAMPLES_DIR / "tcm_qa.jsonl", "qa", split="0.8,0.1,0.1", seed=8)
    assert (project / "data" / "qa_val.jsonl").read_bytes() != first["val"]
    info = registry.load(project / "dataset_info")
    assert {"qa", "qa_train", "qa_val", "qa_test"} <= set(info)
    assert info["qa_val"]["file_name"] == "../data/qa_val.jsonl" and info["qa_val"]["columns"] == info["qa"]["columns"]
    union = sorted(x["instruction"] for s in ("train", "val", "test") for x in rows_of(project, f"qa_{s}"))
    assert union == sorted(x["instruction"] for x in rows_of(project, "qa"))
    # re-import without --split: the stale split entries and files go away
    r3 = import_source(SAMPLES_DIR / "tcm_qa.jsonl", "qa")
    info = registry.load(project / "dataset_info")
    assert r3.registered == ["qa"] and "qa_train" not in info and not (project / "data" / "qa_train.jsonl").exists()


def test_split_that_does_not_add_up_fails_before_writing(project):
    with pytest.raises(FactoryKitError, match=r"^--split 0\.5,0\.6: the fractions add up to 1\.1"):
        import_source(SAMPLES_DIR / "tcm_qa.jsonl", "qa", split="0.5,0.6")
    assert not (project / "data").exists() or not list((project / "data").rglob("*.jsonl"))


def test_split_without_test_part(project):
    r = import_source(SAMPLES_DIR / "tcm_qa.jsonl", "qa", split="0.9,0.1")
    assert r.splits == {"train": 72, "val": 8} and r.registered == ["qa", "qa_train", "qa_val"]


def test_stratify_on_a_field_no_row_has_is_an_error_and_writes_nothing(project):
    r = import_source(SAMPLES_DIR / "exam_mcq.jsonl", "exam", split="0.8,0.2")
    before = {p: p.read_bytes() for p in sorted((project / "data").rglob("*")) if p.is_file()}
    with pytest.raises(FactoryKitError) as exc:
        import_source(SAMPLES_DIR / "exam_mcq.jsonl", "exam", split="0.8,0.2", stratify="subjet")
    assert str(exc.value) == ("--stratify subjet: no row has that field (fields: subject, source, instruction, "
                              "input, output, system); did you mean --stratify subject?")
    # the earlier import is untouched: same files, same meta, no temp files left behind
    assert {p: p.read_bytes() for p in sorted((project / "data").rglob("*")) if p.is_file()} == before
    assert json.loads((project / "data/meta/exam.json").read_text(encoding="utf-8"))["splits"] == r.splits
    # a field that exists but is empty in every row is not a typo: one stratum, as before
    f = project / "x.jsonl"
    f.write_text(jl(*({"instruction": f"问{i}", "output": f"答{i}", "system": ""} for i in range(10))), encoding="utf-8")
    r = import_source(f, "x", split="0.8,0.2", stratify="system")
    assert r.splits == {"train": 8, "val": 2} and r.accepted == 10
    # and --stratify source (the default value) is always valid
    r = import_source(f, "x", split="0.8,0.2", stratify="source")
    assert r.splits == {"train": 8, "val": 2}


# --- registry -----------------------------------------------------------------------------

def test_reimport_is_idempotent_and_merges(project):
    reg = project / "dataset_info"
    registry.register(reg, {"someone_elses": {"file_name": "x.json"}})
    import_source(SAMPLES_DIR / "tcm_qa.jsonl", "qa")
    before = (reg / "dataset_info.json").read_bytes()
    data_before = (project / "data" / "qa.jsonl").read_bytes()
    import_source(SAMPLES_DIR / "tcm_qa.jsonl", "qa")
    assert (reg / "dataset_info.json").read_bytes() == before
    assert (project / "data" / "qa.jsonl").read_bytes() == data_before
    assert "someone_elses" in registry.load(reg)
    assert not list((project / "data").glob(".*.tmp"))  # no temp files left behind


def test_concurrent_imports_lose_no_entry(project):
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            import_source(SAMPLES_DIR / "tcm_qa.jsonl", f"qa{i}", limit=10 + i)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    info = registry.load(project / "dataset_info")
    assert {f"qa{i}" for i in range(6)} <= set(info)
    assert [len(rows_of(project, f"qa{i}")) for i in range(6)] == [10 + i for i in range(6)]


def test_meta_records_provenance_and_options(project):
    import_source(SAMPLES_DIR / "tcm_qa.jsonl", "qa", split="0.5,0.5", dedup="none")
    meta = json.loads((project / "data" / "meta" / "qa.json").read_text(encoding="utf-8"))
    assert meta["accepted"] == 80 and meta["options"] == {"split": "0.5,0.5", "dedup": "none"}
    assert meta["output"] == "data/qa.jsonl" and meta["sources"][0].endswith("tcm_qa.jsonl")


def test_unknown_option_and_bad_name(project):
    with pytest.raises(FactoryKitError, match="unknown import option"):
        import_source(SAMPLES_DIR / "tcm_qa.jsonl", "qa", colour="red")
    with pytest.raises(FactoryKitError, match="--name '../x'"):
        import_source(SAMPLES_DIR / "tcm_qa.jsonl", "../x")
    with pytest.raises(FactoryKitError, match="--format yaml"):
        import_source(SAMPLES_DIR / "tcm_qa.jsonl", "qa", fmt="yaml")


# --- the parallel path gives byte-identical results ----------------------------------------------

def test_parallel_path_matches_sequential(project):
    rows = []
    for i in range(3000):
        kind = i % 13
        if kind == 0:
            rows.append('{"instruction": "broken"')
        elif kind == 1:
            rows.append(json.dumps({"instruction": f"问{i // 26}", "output": "答"}, ensure_ascii=False))  # dups
        elif kind == 2:
            rows.append(json.dumps({"instruction": f"问{i}", "output": ""}, ensure_ascii=False))
        elif kind == 3:
            rows.append(json.dumps({"question": f"头痛,发热{i}?", "answer": "ＡＢＣ 多喝水.", "system": "医"},
                                   ensure_ascii=False))
        elif kind == 4:
            rows.append(json.dumps({"instruction": f"q{i}", "input": None, "output": 5}))
        elif kind == 5:
            rows.append(json.dumps({"instruction": f"长{i}", "output": "很" * 300}, ensure_ascii=False))
        else:
            rows.append(json.dumps({"instruction": f"黄芪{i}的功效？", "input": "", "output": f"补气{i}。"},
                                   ensure_ascii=False))
    f = project / "big.jsonl"
    f.write_text("\n".join(rows) + "\n", encoding="utf-8")
    seq = import_source(f, "seq", workers=1, max_chars=200)
    par = import_source(f, "par", workers=2, parallel_min_bytes=0, max_chars=200)
    for attr in ("accepted", "quarantined", "duplicates", "reasons", "examples"):
        assert getattr(seq, attr) == getattr(par, attr), attr
    d = project / "data"
    assert (d / "seq.jsonl").read_bytes() == (d / "par.jsonl").read_bytes()
    assert (d / "quarantine/seq.rejected.jsonl").read_bytes() == (d / "quarantine/par.rejected.jsonl").read_bytes()
    assert seq.accepted + seq.quarantined == seq.total and seq.duplicates > 100


def test_parallel_multi_turn_switch_matches(project):
    rows = [json.dumps({"instruction": f"问{i}", "output": f"答{i}"}, ensure_ascii=False) for i in range(500)]
    rows[300] = json.dumps({"instruction": "问", "output": "答", "history": [["前", "后"]]}, ensure_ascii=False)
    f = project / "h.jsonl"
    f.write_text("\n".join(rows) + "\n", encoding="utf-8")
    a = import_source(f, "a", workers=1)
    b = import_source(f, "b", workers=2, parallel_min_bytes=0)
    assert a.output_format == b.output_format == "sharegpt"
    assert (project / "data/a.jsonl").read_bytes() == (project / "data/b.jsonl").read_bytes()


def test_streaming_memory_is_bounded(project):
    """200k rows (~80 MB) import with well under 300 MB of extra peak memory in a child."""
    import subprocess
    import sys

    f = project / "big.jsonl"
    with f.open("w", encoding="utf-8") as fh:
        for i in range(200_000):
            fh.write(json.dumps({"instruction": f"患者{i}，头痛发热怎么办？" * 3, "input": "",
                                 "output": f"辨证论治，方药加减{i}。" * 8}, ensure_ascii=False) + "\n")
    # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child would report its
    # (large) pytest parent's peak.
    code = ("import re, sys; from factory_kit.data.importer import import_source;"
            "r = import_source(sys.argv[1], 'big', workers=1);"
            "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1);"
            "print(r.accepted, int(hwm) // 1024)")
    out = subprocess.run([sys.executable, "-c", code, str(f)], capture_output=True, text=True, cwd=project,
                         timeout=300, check=True).stdout.split()
    assert int(out[0]) == 200_000
    assert int(out[1]) < 300, f"peak RSS {out[1]} MB"


def test_import_defaults_documented():
    """docs/data.md names every `data import` option, and its Options table gives the defaults
    the command really has."""
    import re

    from factory_kit.cli.data import import_cmd
    from factory_kit.core.paths import KIT_DIR

    text = (KIT_DIR / "docs" / "data.md").read_text(encoding="utf-8")  # missing doc: the test fails
    table = {cells[0]: cells[1] for line in text.split("## Options", 1)[1].splitlines()
             if line.startswith("| `--") for cells in [[c.strip() for c in line.strip("|").split(" | ")]]}
    checked = 0
    for param in import_cmd.params:
        flag = max(param.opts, key=len) if param.opts else None
        if flag is None:
            continue  # the PATH argument
        assert flag in text, f"docs/data.md does not mention {flag}"
        row = next((default for option, default in table.items()
                    if re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", option)), None)
        if row is not None and isinstance(param.default, (str, int, float)) and not isinstance(param.default, bool):
            assert str(param.default) in row, f"docs/data.md: {flag} default is {param.default}, the table says {row!r}"
            checked += 1
    assert checked >= 8  # format, dedup, near-*, seed, max-chars, cot-style, width-policy


def test_reimport_without_split_spares_a_dataset_imported_under_a_split_like_name(project):
    f = project / "other.jsonl"
    f.write_text(jl({"instruction": "别的", "output": "数据"}), encoding="utf-8")
    import_source(f, "qa_train")  # the user's own dataset, not a split of qa
    import_source(SAMPLES_DIR / "tcm_qa.jsonl", "qa")
    info = registry.load(project / "dataset_info")
    assert "qa_train" in info and rows_of(project, "qa_train")[0]["instruction"] == "别的"
    # a split import of qa refuses to replace it unless forced, and un-splitting removes it
    with pytest.raises(FactoryKitError, match="--split would replace `qa_train`"):
        import_source(SAMPLES_DIR / "tcm_qa.jsonl", "qa", split="0.5,0.5")
    assert rows_of(project, "qa_train")[0]["instruction"] == "别的"
    import_source(SAMPLES_DIR / "tcm_qa.jsonl", "qa", split="0.5,0.5", force=True)
    assert len(rows_of(project, "qa_train")) == 40
    import_source(SAMPLES_DIR / "tcm_qa.jsonl", "qa")
    assert "qa_train" not in registry.load(project / "dataset_info")
    assert not (project / "data" / "qa_train.jsonl").exists()
