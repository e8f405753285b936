"""Shared by tests/test_select_*.py: a project with the shipped samples imported, and a pool made
of the shipped QA rows, off-topic rows, and planted copies of exam items (the leaks that
selection and decontamination must catch)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from factory_kit.core.paths import SAMPLES_DIR

PLANTED_ITEMS = ["tcm-001", "tcm-002", "tcm-004", "tcm-022", "tcm-029", "tcm-031", "tcm-041", "tcm-042",
                 "tcm-050", "tcm-058"]
OFF_TOPIC = [
    ("红烧肉怎么做才好吃？", "五花肉切块焯水，炒糖色后加生抽、老抽、料酒和清水，小火炖一个小时收汁即可。"),
    ("Python 的列表推导式怎么写？", "写成 [x * 2 for x in items if x > 0]，先写表达式，再写循环和条件。"),
    ("周末去杭州玩，有哪些景点推荐？", "西湖、灵隐寺、西溪湿地和河坊街都值得一去，春秋两季最舒服。"),
    ("足球比赛中的越位规则是什么？", "进攻方球员在队友传球瞬间比倒数第二名防守队员更接近对方球门线即为越位。"),
    ("如何给手机省电？", "降低屏幕亮度，关闭后台刷新和定位，开启省电模式。"),
    ("怎样写好一封求职信？", "开头说明应聘岗位，中间用具体事例说明能力，结尾表达面试意愿。"),
    ("股票和基金有什么区别？", "股票是直接持有公司股份，基金是把钱交给基金经理统一投资，风险通常更分散。"),
    ("猫为什么喜欢踩奶？", "这是幼猫吃奶时留下的习惯，成年后在放松和满足时也会这样做。"),
    ("汽车轮胎多久需要更换？", "一般行驶五到八万公里或使用五六年就应检查更换，胎纹过浅要及时换。"),
    ("怎么学好英语口语？", "多听多模仿，每天坚持跟读，找机会和人对话，不要怕犯错。"),
    ("家里的绿萝叶子发黄怎么办？", "多半是浇水过多或光照不足，控制浇水，放到明亮散射光处。"),
    ("Excel 怎么做数据透视表？", "选中数据区域，点插入-数据透视表，把字段拖到行、列和值区域。"),
    ("篮球三分线距离是多少？", "国际篮联比赛的三分线距离为6.75米，NBA 弧顶为7.24米。"),
    ("如何煮出好吃的米饭？", "米洗两遍，米和水的比例约一比一点二，浸泡半小时再煮，煮好焖十分钟。"),
    ("租房时要注意什么？", "看清合同条款、押金退还方式，检查水电燃气，拍照记录屋内原有状况。"),
    ("吉他初学者先练什么？", "先练基本和弦C、G、Am、F的转换，再练简单扫弦节奏。"),
    ("怎么挑选西瓜？", "瓜皮纹路清晰、瓜蒂新鲜、拍起来声音清脆的西瓜通常比较熟。"),
    ("冬天洗车要注意什么？", "避免在零下温度洗车，洗后擦干门缝和锁孔，防止结冰。"),
    ("如何提高打字速度？", "练习盲打，手指放在基准键位，每天用练习软件坚持二十分钟。"),
    ("旅行箱怎么收纳更省空间？", "衣服卷起来放，鞋子里塞袜子，用收纳袋分类，重物放在靠近轮子的一侧。"),
]


def exam_items() -> dict[str, dict]:
    lines = (SAMPLES_DIR / "exam_mcq.jsonl").read_text(encoding="utf-8").splitlines()
    return {item["id"]: item for item in (json.loads(line) for line in lines if line.strip())}


def _mcq(question: str, options: list[tuple[str, str]], style: str = "{k}. {v}") -> str:
    return "以下是一道单项选择题，请选出正确答案。\n\n" + question + "\n\n" + "\n".join(
        style.format(k=k, v=v) for k, v in options)


def _repunctuate(text: str) -> str:
    for a, b in (("（　）", "(  )"), ("（", "("), ("）", ")"), ("“", '"'), ("”", '"'), ("，", ","), ("、", "/"),
                 ("。", "."), ("：", ":"), ("；", ";")):
        text = text.replace(a, b)
    return text


def planted_rows(seed: int = 0) -> list[dict]:
    """Four leaked copies of each planted exam item, each row tagged with what it is."""
    rng = random.Random(seed)
    items = exam_items()
    rows = []
    for item_id in PLANTED_ITEMS:
        item = items[item_id]
        opts = list(item["options"].items())
        answer = f"答案：{item['answer']}"
        shuffled = [v for _, v in opts]
        while shuffled == [v for _, v in opts]:
            rng.shuffle(shuffled)
        new_answer = "ABCD"[shuffled.index(item["options"][item["answer"]])]
        rows += [
            {"instruction": _mcq(item["question"], opts), "output": answer, "_leak": "verbatim"},
            {"instruction": _mcq(_repunctuate(item["question"]), [(k, _repunctuate(v)) for k, v in opts], "({k}) {v}"),
             "output": answer, "_leak": "punctuation"},
            {"instruction": _mcq(item["question"], list(zip("ABCD", shuffled)), "{k}、{v}"),
             "output": f"答案：{new_answer}", "_leak": "relettered"},
            {"instruction": item["question"], "output": item.get("explanation") or answer, "_leak": "question"},
        ]
        for row in rows[-4:]:
            row["_item"] = item_id
    return rows


def pool_rows() -> list[dict]:
    """Shipped QA rows (on topic), off-topic rows and the planted leaks, in one alpaca list."""
    lines = (SAMPLES_DIR / "tcm_qa.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [{**json.loads(line), "_kind": "on_topic"} for line in lines if line.strip()]
    rows += [{"instruction": q, "input": "", "output": a, "_kind": "off_topic"} for q, a in OFF_TOPIC]
    rows += [{**r, "_kind": "leak"} for r in planted_rows()]
    return rows


def make_project(root: Path) -> Path:
    """Samples imported (tcm_exam is the benchmark) and the pool imported as `pool`.
    Which row is which is kept beside it in kinds.json, by source row (the importer drops
    unknown keys and normalises punctuation)."""
    from factory_kit.data.importer import import_source
    from factory_kit.data.samples import import_samples

    root.mkdir(parents=True, exist_ok=True)
    import_samples(root)
    rows = pool_rows()
    source = root / "pool_source.jsonl"
    source.write_text("".join(json.dumps({k: v for k, v in r.items() if not k.startswith("_")}, ensure_ascii=False)
                              + "\n" for r in rows), encoding="utf-8")
    report = import_source(source, "pool", "alpaca", project=root)
    assert report.accepted == len(rows), report.summary()
    kinds = [{k: v for k, v in r.items() if k.startswith("_")} for r in rows]
    (root / "kinds.json").write_text(json.dumps(kinds, ensure_ascii=False), encoding="utf-8")
    return root


def kind_of(root: Path):
    """row of data/pool.jsonl (or of a selection from it) -> {"_kind", "_leak", "_item"}."""
    kinds = json.loads((root / "kinds.json").read_text(encoding="utf-8"))
    return lambda row: kinds[row["source_row"] - 1]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
