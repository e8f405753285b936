"""Near dedup with worker processes: workers sketch the rows, the main process decides in file
order, so the output is byte-identical to converting and sketching in one process."""

from __future__ import annotations

import json
import random
from pathlib import Path

from factory_kit.data import parallel, store
from factory_kit.data.dedup import NearDeduper
from factory_kit.data.importer import import_source

_SYMPTOMS = "头痛 发热 恶寒 咳嗽 失眠 心悸 胸闷 腹胀 腹泻 眩晕 乏力 口干 盗汗 耳鸣 水肿".split()
_DX = "脾气虚证 肝郁气滞证 阴虚火旺证 痰湿蕴肺证 肾阳虚证 气滞血瘀证".split()


def _generate(path: Path, rows: int, seed: int = 3) -> None:
    """Rows with planted exact copies, near copies (1-2 characters changed), copies differing in
    case/punctuation only, and a few invalid rows (quarantined by the converter, not dedup)."""
    rng = random.Random(seed)
    seen: list[dict] = []
    with path.open("w", encoding="utf-8") as fh:
        for i in range(rows):
            roll = rng.random()
            if seen and roll < 0.03:
                row = dict(rng.choice(seen))
            elif seen and roll < 0.10:
                row = dict(rng.choice(seen))
                text = list(row["instruction"])
                for _ in range(rng.randint(1, 2)):
                    text[rng.randrange(len(text))] = rng.choice("的了是在有和")
                row["instruction"] = "".join(text)
            elif seen and roll < 0.12:
                row = dict(rng.choice(seen))
                row["output"] = row["output"].upper().replace("。", ".") + " "
            elif roll < 0.14:
                row = {"instruction": f"空{i}", "output": ""}  # quarantined: empty output
            else:
                sym = "，".join(rng.sample(_SYMPTOMS, rng.randint(2, 4)))
                row = {"instruction": f"患者{rng.randint(18, 85)}岁，{sym}{rng.randint(2, 30)}天。应如何辨证？",
                       "output": f"辨为{rng.choice(_DX)}，Rx{rng.randint(1, 99)}加减。"}
                seen.append(row)
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def test_near_dedup_with_workers_matches_one_process(project, monkeypatch):
    f = project / "gen.jsonl"
    _generate(f, 6000)
    monkeypatch.setattr(parallel.blocks, "__defaults__", (48 << 10,))  # many blocks, not one
    sketched = []
    real = NearDeduper.prepare_sketched
    monkeypatch.setattr(NearDeduper, "prepare_sketched",
                        lambda self, sig16, keys: (sketched.append(len(sig16)), real(self, sig16, keys))[1])
    seq = import_source(f, "seq", dedup="near", workers=1)
    assert not sketched
    par = import_source(f, "par", dedup="near", workers=2, parallel_min_bytes=0)
    assert len(sketched) > 5 and sum(sketched) == par.accepted + par.duplicates  # workers sketched it all
    for attr in ("total", "accepted", "quarantined", "duplicates", "reasons", "examples"):
        assert getattr(seq, attr) == getattr(par, attr), attr
    d = project / "data"
    assert (d / "seq.jsonl").read_bytes() == (d / "par.jsonl").read_bytes()
    q_seq = (d / "quarantine/seq.rejected.jsonl").read_bytes()
    assert q_seq == (d / "quarantine/par.rejected.jsonl").read_bytes()
    reasons = [json.loads(x)["reason"] for x in q_seq.decode("utf-8").splitlines()]
    assert sum(r.startswith("near-duplicate") for r in reasons) > 100
    assert sum(r.startswith("exact duplicate") for r in reasons) > 100
    seq_meta, par_meta = store.read_meta(project, "seq"), store.read_meta(project, "par")
    for key in ("total", "accepted", "quarantined", "duplicates", "reasons", "examples", "output_format"):
        assert seq_meta[key] == par_meta[key], key

def test_sketch_rows_then_check_sketched_matches_check():
    """The worker-side sketch (:meth:`NearDeduper.sketch_rows`) and main-side lookup give the
    same answers as sketching in the deduper itself, across blocks and within one."""
    rng = random.Random(9)
    texts: list[bytes] = []
    for k in range(2500):
        if texts and rng.random() < 0.15:
            t = list(rng.choice(texts).decode())
            if rng.random() < 0.7:
                t[rng.randrange(len(t))] = "的"
            texts.append("".join(t).encode())
        else:
            texts.append(("".join(rng.choices("头痛发热恶寒咳嗽失眠心悸胸闷腹胀眩晕乏力", k=25)) + f"例{k}").encode())
    plain, split = NearDeduper(), NearDeduper()
    expected = []
    for lo in range(0, len(texts), 600):
        plain.prepare(texts[lo:lo + 600])
        expected += [plain.check(t, lo + k) for k, t in enumerate(texts[lo:lo + 600])]
    worker = NearDeduper()  # another instance, as a worker process builds its own
    got = []
    for lo in range(0, len(texts), 600):
        sig16, keys, exact = worker.sketch_rows(texts[lo:lo + 600])
        split.prepare_sketched(sig16, keys)
        got += [split.check_sketched(h, lo + k) for k, h in enumerate(exact.tolist())]
    assert got == expected
    many, got_many = NearDeduper(), []  # the whole block in one call, as the import does
    for lo in range(0, len(texts), 600):
        sig16, keys, exact = worker.sketch_rows(texts[lo:lo + 600])
        many.prepare_sketched(sig16, keys)
        hits = {i: (loc, sim) for i, loc, sim in many.check_many(exact.tolist(), 0, list(range(lo, lo + 600)))}
        got_many += [hits.get(k) for k in range(len(sig16))]
    assert got_many == expected
    assert sum(h is not None and h[1] == 1.0 for h in got) > 50
    assert sum(h is not None and h[1] < 1.0 for h in got) > 30
