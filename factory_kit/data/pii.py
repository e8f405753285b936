"""Redact personal data that Chinese medical records carry, counting (never logging) hits.

Kinds (``--redact`` takes all, or a comma list of these):
  id_card  mainland resident ID numbers (18 digits with a valid birth date, last may be X),
           also grouped with spaces or hyphens (110101 19900307 1234, 110101-19900307-123X)
  phone    mainland mobile numbers (+86 optional) and landlines written with an area code
  email    e-mail addresses
  mrn      medical-record / admission / outpatient numbers after their markers (病历号...)
  name     names after 姓名/联系人/监护人/家属 markers with a colon; after 家属/联系人/监护人
           without one when the name starts with a common surname and ends at punctuation or a
           contact word (家属张三签字, 联系人李四，电话...); and after 患者/病人/患儿 when the name
           starts with a common surname and is followed by a colon before it or a sex/age marker
           or a signature/phone word after it (患者：张三 / 病人张三，男 / 病人张三签字), so that
           患者出现高热 is left alone.

Replacements are fixed tags ([身份证号], [电话], [邮箱], [病历号], [姓名]) so that a model
trained on redacted data learns the tag, not a fake value.
"""

from __future__ import annotations

import re
from collections import Counter

from factory_kit.core.errors import FactoryKitError

KINDS = ("id_card", "phone", "email", "mrn", "name")
TAGS = {"id_card": "[身份证号]", "phone": "[电话]", "email": "[邮箱]", "mrn": "[病历号]", "name": "[姓名]"}

_CJK = "\u3400-\u4dbf\u4e00-\u9fff"
# The most common Chinese surnames (single and compound) cover the vast majority of people.
_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁"
    "任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武"
    "戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮"
    "柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古"
    "吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫"
    "寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝"
)
_COMPOUND = "欧阳|司马|上官|诸葛|东方|皇甫|令狐|慕容|尉迟|公孙|长孙|宇文|司徒|夏侯|轩辕|端木|独孤|南宫"
_SURNAME_NAME = rf"(?:(?:{_COMPOUND})|[{_SURNAMES}])(?!某)[{_CJK}]{{1,2}}"
# Without a colon after the marker (家属张三签字) the name must not run into ordinary words: a given
# name holds none of these characters (患者/的/后/同意...), so 家属和患者 or 家属商议后 stay as they are.
_STOP = "患者病人属的了和及与在是为向对把被等均也都已未尚要应请诉述称签陪同意代表示拒绝出入院手术治疗后前时说问答其"
_SURNAME_NAME_STRICT = rf"(?:(?:{_COMPOUND})|[{_SURNAMES}])(?!某)(?:(?![{_STOP}])[{_CJK}]){{1,2}}?"
# what follows a name written straight after 家属/联系人/监护人/病人 (no colon)
_AFTER_NAME = rf"(?=$|[^{_CJK}]|签字|签名|陪同|电话|手机|代诉|同意|拒绝|要求)"

_PATTERNS: list[tuple[str, re.Pattern[str], int]] = [
    # (kind, pattern, group to replace: 0 = whole match)
    ("email", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), 0),
    # 18 characters, or grouped 6-8-4 / 6-4-4-4 with one kind of separator (a space or a hyphen):
    # 110101199003071234, 110101 19900307 1234, 110101-1990-0307-123X
    ("id_card", re.compile(
        r"(?<![0-9A-Za-z-])[1-9]\d{5}([ -]?)(?:18|19|20)\d{2}(?:\1)?(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
        r"\1\d{3}[\dXx](?![0-9A-Za-z]|-\d)"), 0),
    ("mrn", re.compile(
        r"(?:病历号|病历编号|住院号|门诊号|病案号|就诊号|就诊卡号|医保卡号|登记号|档案号|ID号|MRN|Patient ID)"
        r"\s*[:：#]?\s*([A-Za-z0-9][A-Za-z0-9-]{3,})", re.IGNORECASE), 1),
    ("phone", re.compile(r"(?<![\d])(?:\+?86[- ]?)?1[3-9]\d(?:[- ]?\d{4}){2}(?!\d)"), 0),
    ("phone", re.compile(r"(?<![\d])(?:\(0\d{2,3}\)|0\d{2,3}-)\s?\d{7,8}(?!\d)"), 0),
    ("name", re.compile(
        rf"(?:姓名|联系人|监护人|家属|签名|医师|医生)\s*[:：]\s*([{_CJK}]{{2,4}}?|[A-Z][a-z]+(?: [A-Z][a-z]+){{0,2}})"
        rf"(?=$|[^{_CJK}]|[男女])"), 1),
    ("name", re.compile(rf"(?:患者|病人|患儿|病患)\s*[:：]\s*({_SURNAME_NAME})(?=$|[^{_CJK}]|[男女])"), 1),
    ("name", re.compile(rf"(?:患者|病人|患儿|病患)({_SURNAME_NAME})(?=[，,、\s（(]\s*(?:[男女]|\d{{1,3}}岁))"), 1),
    # 家属张三签字 / 联系人 李四，电话... / 病人王五签字 (a common surname, then a boundary or a contact word)
    ("name", re.compile(rf"(?:家属|联系人|监护人)\s*({_SURNAME_NAME_STRICT}){_AFTER_NAME}"), 1),
    ("name", re.compile(rf"(?:病人|患者|患儿)({_SURNAME_NAME_STRICT})(?=签字|签名|电话|手机|[（(](?:住院号|病历号|门诊号))"), 1),
]


def parse_kinds(spec: str | bool | None) -> tuple[str, ...]:
    """``True``/"all" -> every kind; "phone,email" -> those; None/False/"" -> none."""
    if spec in (None, False, "", "none"):
        return ()
    if spec is True or spec == "all":
        return KINDS
    kinds = tuple(k.strip() for k in str(spec).split(",") if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise FactoryKitError(f"--redact {','.join(unknown)}: unknown kind; choose from all, {', '.join(KINDS)} "
                              "(a bare --redact takes the next word as its value: put PATH first or write --redact all)")
    return kinds


class Redactor:
    """Callable text -> redacted text; ``counts`` holds how many of each kind were replaced."""

    def __init__(self, kinds: tuple[str, ...] = KINDS):
        self.kinds = kinds
        self.patterns = [(k, p, g) for k, p, g in _PATTERNS if k in kinds]
        self.counts: Counter[str] = Counter()

    def __call__(self, text: str) -> str:
        for kind, pattern, group in self.patterns:
            if group == 0:
                text, n = pattern.subn(TAGS[kind], text)
            else:
                n = 0

                def _sub(m: re.Match[str], kind: str = kind, group: int = group) -> str:
                    nonlocal n
                    n += 1
                    start, end = m.span(group)
                    base = m.start(0)
                    whole = m.group(0)
                    return whole[: start - base] + TAGS[kind] + whole[end - base:]

                text = pattern.sub(_sub, text)
            if n:
                self.counts[kind] += n
        return text


def redact(text: str, kinds: tuple[str, ...] = KINDS) -> tuple[str, dict[str, int]]:
    r = Redactor(kinds)
    out = r(text)
    return out, dict(r.counts)
