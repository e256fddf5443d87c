"""Generate the small NER sample shipped in hf_bert_tasks/sample_data (English CoNLL and Chinese char-per-line).

Every sentence comes from templates and name lists written for this project (invented or generic names; no text
from any data set). The output is deterministic: fixed seeds, no set iteration, "\\n" line endings.

    python scripts/make_sample_data.py                  # rewrite hf_bert_tasks/sample_data/*
    python scripts/make_sample_data.py --output-dir DIR

Sizes: en_train.conll 400 sentences, en_dev.conll 100 (documents of 3 to 8 sentences, each opened by a
"-DOCSTART- O" line); zh_train.txt 300 sentences, zh_dev.txt 80 (one sentence per blank-line-separated block).
"""

from __future__ import annotations

import argparse
import random
import re
from pathlib import Path

EN_SIZES = {"en_train.conll": (400, 1), "en_dev.conll": (100, 2)}  # file -> (sentences, seed)
ZH_SIZES = {"zh_train.txt": (300, 3), "zh_dev.txt": (80, 4)}

# ---------------------------------------------------------------------------------------------------------------
# English

FIRST_NAMES = [
    "Anna", "Marco", "Elena", "David", "Sofia", "Lukas", "Priya", "Kenji", "Omar", "Claire", "Jonas", "Nadia",
    "Pavel", "Ingrid", "Tomas", "Laura", "Rafael", "Mei", "Samuel", "Hannah", "Victor", "Irene", "Felix", "Amira",
    "Oscar", "Greta", "Daniel", "Yusuf", "Carla", "Henrik", "Ruth", "Mateo",
]
SURNAMES = [
    "Keller", "Moreau", "Varga", "Lindqvist", "Okafor", "Brennan", "Castell", "Novak", "Halvorsen", "Tanaka",
    "Rossi", "Haddad", "Sorensen", "Ferreira", "Kowalski", "Adeyemi", "Whitfield", "Marchetti", "Duval", "Brandt",
    "Petrov", "Ashworth", "Quintero", "Nakamura", "Ellison", "Falk", "Reyes", "Hartmann", "Lowe", "Baptiste",
]
CITIES = [
    "Lisbon", "Oslo", "Nairobi", "Toronto", "Melbourne", "Krakow", "Seoul", "Lima", "Cairo", "Hamburg", "Dublin",
    "Manila", "Porto", "Geneva", "Bogota", "Osaka", "Vancouver", "Marseille", "Helsinki", "Valencia",
    "New Delhi", "Buenos Aires", "Cape Town", "Hong Kong", "San Diego", "Kuala Lumpur", "Rio de Janeiro",
]
COUNTRIES = [
    "Portugal", "Norway", "Kenya", "Canada", "Australia", "Poland", "Japan", "Peru", "Egypt", "Germany", "Ireland",
    "Brazil", "Chile", "Vietnam", "Morocco", "Sweden", "Spain", "Ghana", "New Zealand", "South Africa",
    "South Korea",
]
ORGS = [
    "Northwind Capital", "Harbor Steel", "Baltic Shipping Group", "Redline Motors", "Greenfield Foods",
    "Atlas Mining Corp", "Silverline Airways", "Meridian Bank", "Blue Ridge Energy", "Orion Telecom",
    "Corvane Pharmaceuticals", "Halden Insurance", "Kestrel Software", "Summit Media", "Larkspur Textiles",
    "Vantor Chemicals", "Coastal Rail", "Pinecrest University", "Federal Trade Agency", "Westmark Holdings",
]
CLUBS = ["Riverside United", "Eastbrook Rovers", "Northgate City", "Ashford Athletic", "Harborview FC", "Kingsmoor"]
NATIONALITIES = [
    "German", "Brazilian", "Japanese", "Kenyan", "Canadian", "Polish", "Norwegian", "French", "Italian", "Mexican",
    "Korean", "Egyptian", "Irish", "Australian", "Swedish", "Chilean", "Portuguese",
]
EVENTS = [
    "World Cup", "Olympic Games", "Winter Olympics", "Asian Games", "Harbour Marathon", "Baltic Music Festival",
    "Northern Film Festival", "Coastal Regatta", "Spring Trade Fair",
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
ACTIONS = [
    "cut 200 jobs", "expand into new markets", "raise prices", "sell its shipping unit", "open two new plants",
    "delay the merger", "pay a special dividend",
]
CURRENCIES = ["dollars", "euros", "crowns", "pounds"]

# Slots: {PER} {PER2} full names, {SUR} a surname alone, {CITY} {CITY2} {COUNTRY} {COUNTRY2} LOC, {ORG} {ORG2}
# {CLUB} {CLUB2} ORG, {NAT} {EVENT} MISC; the rest are untagged fillers. Tokens are space separated.
EN_TEMPLATES = [
    "{PER} visited {CITY} on {DAY} .",
    "{PER} , chief executive of {ORG} , said the company would {ACTION} .",
    "{ORG} said on {DAY} it had agreed to buy {ORG2} for {NUM} million {CURRENCY} .",
    "The {NAT} government said talks with {COUNTRY} would resume next week .",
    "{PER} won the {EVENT} title in {CITY} .",
    "Shares in {ORG} rose {NUM} percent in {CITY} trading .",
    "{PER} of {COUNTRY} beat {PER2} of {COUNTRY2} {SCORE} .",
    "{NAT} striker {PER} scored twice as {CLUB} beat {CLUB2} {SCORE} .",
    "Police in {CITY} said {NUM} people were injured in the accident .",
    "{PER} told reporters in {CITY} that {ORG} expected higher profits .",
    "The {EVENT} will be held in {CITY} next year , organisers said .",
    "{ORG} opened a new office in {CITY} , {COUNTRY} .",
    "{NAT} Prime Minister {PER} arrived in {CITY} for a {NUM}-day visit .",
    "Foreign Minister {PER} met his {NAT} counterpart in {CITY} on {DAY} .",
    "{ORG} , based in {CITY} , employs about {NUM} people .",
    '" We are very happy with the result , " {SUR} said .',
    "{SUR} , who joined {ORG} in {YEAR} , will replace {PER} .",
    "Trade between {COUNTRY} and {COUNTRY2} grew by {NUM} percent last year .",
    "{RANK} . {PER} ( {COUNTRY} ) {TIME}",
    "The {NAT} team arrived in {CITY} ahead of the {EVENT} .",
    "{ORG} shares closed at {PRICE} on {DAY} .",
    "Analysts at {ORG} said the {NAT} economy was slowing .",
    "{PER} was born in {CITY} in {YEAR} .",
    "Heavy rain hit {CITY} and parts of {COUNTRY} on {DAY} .",
    "{CLUB} manager {PER} said his side deserved to win .",
    "{PER} , a spokesman for {ORG} , declined to comment .",
    "Delegates from {NUM} countries gathered in {CITY} for the {EVENT} .",
    "The {ORG} board approved the plan on {DAY} .",
    "{PER} and {PER2} will lead the {NAT} delegation to {CITY} .",
    "{ORG} reported a net profit of {NUM} million {CURRENCY} for the quarter .",
    "Flights between {CITY} and {CITY2} were cancelled because of fog .",
    "{SUR} said {ORG} had no plans to leave {COUNTRY} .",
]
EN_DATELINE = "{CITYCAPS} {DATE}"  # opens every document, as news wires do

EN_ENTITY_SLOTS = {
    "PER": "PER", "PER2": "PER", "SUR": "PER", "CITY": "LOC", "CITY2": "LOC", "CITYCAPS": "LOC", "COUNTRY": "LOC",
    "COUNTRY2": "LOC", "ORG": "ORG", "ORG2": "ORG", "CLUB": "ORG", "CLUB2": "ORG", "NAT": "MISC", "EVENT": "MISC",
}


def _en_fill(rng: random.Random, slot: str, chosen: dict[str, str]) -> str:
    """Value of one slot; numbered slots (PER2, CITY2, ...) differ from their first one."""
    if slot in ("PER", "PER2"):
        while True:
            name = f"{rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)}"
            if name != chosen.get("PER"):
                return name
    pools = {
        "SUR": SURNAMES, "CITY": CITIES, "CITY2": CITIES, "COUNTRY": COUNTRIES, "COUNTRY2": COUNTRIES, "ORG": ORGS,
        "ORG2": ORGS, "CLUB": CLUBS, "CLUB2": CLUBS, "NAT": NATIONALITIES, "EVENT": EVENTS, "DAY": DAYS,
        "ACTION": ACTIONS, "CURRENCY": CURRENCIES,
    }
    if slot in pools:
        first = chosen.get(slot[:-1]) if slot.endswith("2") else None
        return rng.choice([v for v in pools[slot] if v != first])
    if slot == "CITYCAPS":
        return rng.choice(CITIES).upper()
    if slot == "NUM":
        return str(rng.choice([2, 3, 4, 5, 6, 7, 8, 12, 15, 20, 35, 40, 120, 250, 600, 1500]))
    if slot == "YEAR":
        return str(rng.randint(1961, 2019))
    if slot == "DATE":
        return f"{rng.randint(2015, 2023)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if slot == "SCORE":
        return rng.choice(["6-3 6-4", "7-5 6-2", "2-1", "3-0", "1-0", "4-2", "6-4 3-6 7-6"])
    if slot == "RANK":
        return str(rng.randint(1, 10))
    if slot == "TIME":
        return f"{rng.randint(2, 3)}:{rng.randint(0, 59):02d}.{rng.randint(0, 99):02d}"
    if slot == "PRICE":
        return f"{rng.randint(3, 250)}.{rng.randint(0, 99):02d}"
    raise KeyError(slot)


def _en_sentence(rng: random.Random, template: str) -> list[tuple[str, str]]:
    chosen: dict[str, str] = {}
    pairs = []
    for piece in template.split(" "):
        match = re.fullmatch(r"\{(\w+)\}(.*)", piece)
        if match is None:
            pairs.append((piece, "O"))
            continue
        slot, rest = match.groups()
        value = chosen[slot] = _en_fill(rng, slot, chosen)
        entity = EN_ENTITY_SLOTS.get(slot)
        if rest:  # a slot glued to text ("{NUM}-day") is one untagged token
            pairs.append((value + rest, "O"))
            continue
        for i, token in enumerate(value.split(" ")):
            pairs.append((token, "O" if entity is None else f"{'B' if i == 0 else 'I'}-{entity}"))
    return pairs


def make_english(n_sentences: int, seed: int, seen: set[tuple]) -> str:
    rng = random.Random(seed)
    lines = []
    written = 0
    while written < n_sentences:
        left = n_sentences - written
        # Never leave a remainder too short to be a document of its own.
        size = left if left <= 8 else min(rng.randint(3, 8), left - 3)
        document = [_en_sentence(rng, EN_DATELINE)]
        while len(document) < size:
            sentence = _en_sentence(rng, rng.choice(EN_TEMPLATES))
            key = tuple(sentence)
            if key not in seen:  # no sentence twice, in or across files
                seen.add(key)
                document.append(sentence)
        lines += ["-DOCSTART- O", ""]
        for sentence in document:
            lines += [f"{token} {tag}" for token, tag in sentence] + [""]
        written += size
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# Chinese

ZH_SURNAMES = list("王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗")
ZH_GIVEN = [
    "伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超",
    "秀兰", "霞", "平", "刚", "建华", "晓东", "海燕", "志强", "文博", "雨桐", "子涵", "思远",
]
ZH_LOCS = [
    "北京", "上海", "广州", "深圳", "杭州", "南京", "成都", "武汉", "西安", "重庆", "天津", "苏州", "青岛", "厦门",
    "长沙", "昆明", "哈尔滨", "大连", "浙江", "广东", "四川", "云南", "山东", "美国", "日本", "法国", "德国",
    "英国", "巴西", "澳大利亚", "新加坡",
]
ZH_ORGS = [
    "星河科技公司", "远航物流集团", "华光电子有限公司", "东岳银行", "青松食品公司", "蓝海传媒集团", "新纪元软件公司",
    "鼎盛地产集团", "天宇航空公司", "锦程汽车公司", "北辰医药公司", "云帆网络公司", "晨曦出版社", "恒远能源集团",
]
ZH_SCHOOLS = ["北方科技大学", "滨海大学", "南湖师范学院", "西山医学院", "东江理工学院"]

ZH_TEMPLATES = [
    "{PER}昨天在{LOC}参加了{ORG}举办的新闻发布会。",
    "{ORG}的总部位于{LOC}。",
    "{PER}是{ORG}的董事长。",
    "据{ORG}消息，{PER}将于下月访问{LOC}。",
    "{LOC}和{LOC2}的贸易额去年增长了{NUM}%。",
    "{PER}毕业于{SCHOOL}，现任{ORG}总经理。",
    "{PER}出生在{LOC}，{NUM}岁时随家人搬到{LOC2}。",
    "{ORG}宣布将在{LOC}新建一座工厂。",
    "来自{LOC}的{PER}获得了本届比赛的冠军。",
    "{PER}表示，{ORG}今年的销售额有望突破{NUM}亿元。",
    "{LOC}今天迎来了今年的第一场雪。",
    "{PER}和{PER2}共同创办了{ORG}。",
    "记者从{ORG}获悉，新产品将于年底上市。",
    "{ORG}与{ORG2}在{LOC}签署了战略合作协议。",
    "{PER}教授在{SCHOOL}做了一场关于人工智能的报告。",
    "{PER}告诉记者，他下周要去{LOC}出差。",
    "今年夏天，{LOC}的游客人数创下新高。",
    "{ORG}发布公告称，{PER}因个人原因辞去职务。",
    "{PER}的新书在{LOC}首发。",
    "{NUM}名来自{LOC}的学生到{SCHOOL}参观学习。",
]
# Fixed sentences about dynasties. A dynasty is a period of rule, not a person, place or organisation, so it is
# tagged O (the founders are PER); see sample_data/README.md.
ZH_FIXED = {
    "zh_train.txt": [("明朝建立于1368年，开国皇帝是朱元璋。", {"朱元璋": "PER"}),
                     ("唐朝建立于618年，开国皇帝是李渊。", {"李渊": "PER"})],
    "zh_dev.txt": [("宋朝建立于960年，开国皇帝是赵匡胤。", {"赵匡胤": "PER"})],
}
ZH_ENTITY_SLOTS = {
    "PER": "PER", "PER2": "PER", "LOC": "LOC", "LOC2": "LOC", "ORG": "ORG", "ORG2": "ORG", "SCHOOL": "ORG",
}


def _zh_fill(rng: random.Random, slot: str, chosen: dict[str, str]) -> str:
    if slot in ("PER", "PER2"):
        while True:
            name = rng.choice(ZH_SURNAMES) + rng.choice(ZH_GIVEN)
            if name != chosen.get("PER"):
                return name
    if slot == "NUM":
        return str(rng.choice([3, 5, 8, 12, 20, 30, 45, 60, 100]))
    pool = {"LOC": ZH_LOCS, "LOC2": ZH_LOCS, "ORG": ZH_ORGS, "ORG2": ZH_ORGS, "SCHOOL": ZH_SCHOOLS}[slot]
    first = chosen.get(slot[:-1]) if slot.endswith("2") else None
    return rng.choice([v for v in pool if v != first])


def _zh_tags(text: str, entities: list[tuple[int, int, str]]) -> list[tuple[str, str]]:
    tags = ["O"] * len(text)
    for start, end, entity in entities:
        tags[start:end] = [f"B-{entity}"] + [f"I-{entity}"] * (end - start - 1)
    return list(zip(text, tags))


def _zh_sentence(rng: random.Random, template: str) -> list[tuple[str, str]]:
    chosen: dict[str, str] = {}
    text = ""
    entities = []
    for literal, slot in re.findall(r"([^{]*)(?:\{(\w+)\})?", template):
        text += literal
        if slot:
            value = chosen[slot] = _zh_fill(rng, slot, chosen)
            if slot in ZH_ENTITY_SLOTS:
                entities.append((len(text), len(text) + len(value), ZH_ENTITY_SLOTS[slot]))
            text += value
    return _zh_tags(text, entities)


def make_chinese(name: str, n_sentences: int, seed: int, seen: set[tuple]) -> str:
    rng = random.Random(seed)
    sentences = []
    for text, entities in ZH_FIXED[name]:
        spans = [(text.index(mention), text.index(mention) + len(mention), tag) for mention, tag in entities.items()]
        sentences.append(_zh_tags(text, spans))
    while len(sentences) < n_sentences:
        sentence = _zh_sentence(rng, rng.choice(ZH_TEMPLATES))
        key = tuple(sentence)
        if key not in seen:
            seen.add(key)
            sentences.append(sentence)
    # The fixed sentences go at seeded places rather than all at the start.
    fixed = sentences[: len(ZH_FIXED[name])]
    rest = sentences[len(fixed) :]
    for sentence in fixed:
        rest.insert(rng.randrange(len(rest) + 1), sentence)
    return "\n".join("\n".join(f"{char}\t{tag}" for char, tag in sentence) + "\n" for sentence in rest)


def write_samples(output_dir: Path) -> list[Path]:
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    seen: set[tuple] = set()
    for name, (size, seed) in EN_SIZES.items():
        written.append(output_dir / name)
        written[-1].write_text(make_english(size, seed, seen) + "\n", encoding="utf-8", newline="\n")
    seen = set()
    for name, (size, seed) in ZH_SIZES.items():
        written.append(output_dir / name)
        written[-1].write_text(make_chinese(name, size, seed, seen), encoding="utf-8", newline="\n")
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "hf_bert_tasks" / "sample_data",
        help="folder to write en_train.conll, en_dev.conll, zh_train.txt and zh_dev.txt into",
    )
    args = parser.parse_args()
    for path in write_samples(args.output_dir):
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
