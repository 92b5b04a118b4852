"""Facts a triage nurse listens for, read from one message: a child's age, a pregnancy week, a
temperature, how long something has lasted, and who is there.

Pure functions over the normalised text (bot/triage/text.py). Dutch, English and texting style
("5 wkn", "38,6", "39+2", "sinds gister"); the red-flag rules in data/risk/red_flags.yml combine
these facts with the signs they name. Numbers that cannot be tied to a child or a pregnancy are
left out rather than guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Units, as people text them. Order matters in the alternations: longest first.
_DAY = r"(?:dagen|dag|dgn|days|day|d)"
_WEEK = r"(?:weken|week|wkn|wk|weeks|week|wks|w)"
_MONTH = r"(?:maanden|maand|mnden|mnd|mndn|mths|mth|months|month|mo|m)"
_YEAR = r"(?:jaar|jr|years|year|yrs|yr|y)"
_NUMBER = r"(\d{1,2}(?:[.,]5)?|een|one|twee|two|drie|three|vier|four|vijf|five|zes|six|zeven|seven|acht|eight|negen|nine|tien|ten|half|halve)"
_WORDS = {
    "een": 1, "one": 1, "twee": 2, "two": 2, "drie": 3, "three": 3, "vier": 4, "four": 4,
    "vijf": 5, "five": 5, "zes": 6, "six": 6, "zeven": 7, "seven": 7, "acht": 8, "eight": 8,
    "negen": 9, "nine": 9, "tien": 10, "ten": 10, "half": 0.5, "halve": 0.5,
}
_UNIT_DAYS = {"d": 1.0, "w": 7.0, "m": 30.4, "y": 365.0}

# Who the age belongs to: a child word right before "van", or "oud/old" right after.
_CHILD = (
    r"(?:baby|babytje|bebe|bebek|bebegim|niemowle|kindje|kind|kindeke|zoontje|zoon|dochtertje|"
    r"dochter|meisje|jongetje|kleintje|kleine|kereltje|mannetje|meid|ventje|ukkie|hummel|"
    r"tweeling|peuter|peutertje|kleuter|toddler|pasgeborene|son|daughter|boy|girl|child|kid|newborn|infant|little one|lo|"
    r"hij|zij|ze|hem|haar)"
)
_AGE_OF_CHILD = re.compile(
    rf"{_CHILD}(?:\s+is)?(?:\s+nu)?\s+(?:van|of|is|pas|net|bijna|amper|nog geen|ruim)?\s*"
    rf"(?:pas |net |bijna |amper |nog geen |ruim )?{_NUMBER}\s*-?\s*"
    rf"(?P<unit>{_DAY}|{_WEEK}|{_MONTH}|{_YEAR})\b"
)
_AGE_OLD = re.compile(
    rf"{_NUMBER}\s*-?\s*(?P<unit>{_DAY}|{_WEEK}|{_MONTH}|{_YEAR})\s*-?\s*(?:oud|old|oude|jarig)\b"
)
_NEWBORN = re.compile(
    r"\b(?:pasgeboren\w*|pas geboren|net geboren|newborn|new born|kraamweek|kraamtijd|"
    r"vorige week geboren|gisteren geboren|eergisteren geboren|last week born|born (?:last week|yesterday))\b"
)
# "5 wkn" on its own, next to baby words and without pregnancy words: the baby's age.
_BARE_AGE = re.compile(
    rf"(?<![\d+.,]){_NUMBER}\s*(?P<unit>{_DAY}|{_WEEK}|{_MONTH})\b(?!\s*(?:zwanger|pregnant|zw\b|\+))"
)
# "peuter van 2", "zoon van 15": a child noun with a bare number of years (no unit after it).
_AGE_YEARS_BARE = re.compile(
    r"\b(?:kind|kindje|zoon|zoontje|dochter|dochtertje|peuter|peutertje|kleuter|meisje|jongen|"
    r"jongetje|son|daughter|boy|girl|kid|child)\s+(?:van|is|of)\s+(\d{1,2})\b"
    r"(?!\s*(?:[.,]\d|%|euro|eur|\u20ac|kilo|kg|gram|cm|uur|min|keer|x\b|graden|weken|weeks|wk|"
    r"maand|mnd|months|dag|days|jaar|years|yrs))"
)
# Words that name a child's life phase without a number: a teenager is no baby.
_TEEN_WORDS = re.compile(r"\b(?:puber\w*|tiener\w*|teenager\w*|adolescent\w*|pubertijd)\b")
_TEEN_DAYS = 14 * 365.0
_BABY_WORDS = re.compile(
    r"\b(?:baby\w*|kindje|zoontje|dochtertje|kleintje|luier\w*|nappy|nappies|diaper\w*|fles\w*|"
    r"borstvoeding|voeding|drinkt|drinken|newborn|infant|bebe\w*|niemowl\w*)\b"
)
_PREGNANCY_WORDS = re.compile(
    r"\b(?:zwanger\w*|zwnager|zw|pregnant|pregnancy|in verwachting|verloskundige|vk|midwife|"
    r"buik|bump|weeen|wee|weeën|vliezen|vruchtwater|schopjes|schoppen|trappen|bewegingen|"
    r"beweegt|movements|kicks|hamile\w*|embarazada|ciaz\w*|enceinte|gravida|harde buiken|"
    r"uitgerekend|termijn|contracties|contractions|bevalling|bevallen)\b"
)
_PREGNANCY_WEEK = re.compile(
    rf"(?<![\d.,])(\d{{1,2}})\s*(?:\+\s*\d\s*)?(?:{_WEEK})?\s*(?:\+\s*\d\s*)?"
    rf"(?:weken |week |wk |wkn |w )?(?:zwanger|pregnant|zw\b|in verwachting)"
)
_PREGNANCY_WEEK_PLUS = re.compile(r"(?<![\d.,])(\d{2})\s*\+\s*[0-6]\b|(?<![\d.,])([1-4]\d)\s*(?:w|wk|wks)\b(?! ?oud| ?old)")
# "ik ben 12 weken", "ben nu 30w", "i'm 28 weeks": a parent giving their own weeks is pregnant.
_FIRST_PERSON_WEEKS = re.compile(
    rf"\b(?:ik ben|ben ik|ben|i'?m|i am) (?:nu |pas |al |bijna |ruim |net |now |almost |nearly )?"
    rf"(\d{{1,2}})\s*(?:{_WEEK}|weeks)\b(?!\s*(?:oud|old|geleden|ago|bevallen|thuis|home|getrouwd|samen|weg|ziek|bezig|aan het))"
)
_WEEK_IN_PREGNANCY = re.compile(rf"(?<![\d.,])(\d{{1,2}})\s*(?:{_WEEK})\b")
_PREGNANCY_WEEK_EN = re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)? (?:week|wk)\b")

_TEMPERATURE = re.compile(
    r"(?<![\d.,])(3[5-9]|4[0-2])(?:[.,](\d))?\s*(?:graden|gr|°\s*c?|c\b|celsius|degrees|koorts|fever|"
    r"temp\w*|ates\w*|fiebre|goraczk\w*|fievre|febre)"
)
_TEMPERATURE_AFTER = re.compile(
    r"(?:koorts|verhoging|temperatuur|temp|fever|temperature|ates\w*|fiebre|goraczk\w*|fievre|febre|"
    r"thermometer|gemeten|meet|measured|reads)\D{0,20}?(?<![\d.,])(3[5-9]|4[0-2])(?:[.,](\d))?(?![\d])"
)
# A bare 38,6 or 39.1: one decimal in the range of a body temperature.
_TEMPERATURE_BARE = re.compile(r"(?<![\d.,€$])(3[6-9]|4[01])[.,](\d)(?![\d.,%]|\s*(?:euro|eur|kg|kilo|cm|uur|weken|jaar))")
_FAHRENHEIT = re.compile(r"(?<![\d.,])(9[5-9]|10[0-7])(?:[.,](\d))?\s*(?:°\s*f|f\b|fahrenheit|degrees f)")
_FEVER_WORD = re.compile(r"\b(?:voelt (?:heel |erg |zo |super |echt |gloei)?(?:warm|heet)|(?:is|wordt|word) (?:heel |erg |zo |super |echt |gloei)heet|feels (?:very |so |really )?hot|koorts\w*|verhoging|fever\w*|feverish|ates\w*|fiebre|goraczk\w*|fievre|febre|gloeit|gloeiend heet|burning up)\b")

_NO_FEVER = re.compile(r"\b(?:geen|zonder|no|not|without|nie|niet)\s+(?:\w+\s+)?$")

_HOURS = re.compile(
    r"(?:al |sinds |for |since |more than |over |meer dan |ruim |bijna |already )?"
    r"(\d{1,3}(?:[.,]5)?|een|twee|drie|vier|vijf|zes|zeven|acht|negen|tien|twaalf|one|two|three|"
    r"four|five|six|seven|eight|nine|ten|twelve|half|halve)\s*(uur|uren|u|hours|hour|hrs|hr|h|"
    r"dagen|dag|days|day|nachten|nacht|nights|night)\b"
)
_HOUR_WORDS = dict(_WORDS, twaalf=12, twelve=12)
_SINCE = (
    (re.compile(r"\b(?:sinds|since|vanaf|al sinds) (?:gister(?:en)?|yesterday)\b|\bsinds eergister\w*|\bvanaf gisteravond\b"), 18.0),
    (re.compile(r"\b(?:sinds|since|vanaf|al sinds) (?:vanochtend|vanmorgen|this morning|het ontbijt)\b"), 8.0),
    (re.compile(r"\b(?:sinds|since|vanaf|al) (?:vannacht|last night)\b|\bde hele nacht\b|\ball night\b|\bhele dag\b|\ball day\b"), 10.0),
    (re.compile(r"\b(?:al )?(?:dagen|days)\b"), 48.0),
)

_ALONE_WITH_CHILD = re.compile(
    r"\b(?:alleen|allen|helemaal alleen|in m'?n eentje|in mn eentje|in mijn eentje|alone)\b"
    r"(?: thuis| hier| at home)? (?:met|with) (?:de|mijn|mn|m'n|het|onze|ons|my|the|our|2|twee|3|drie)? ?"
    r"(?:baby|kind|kinderen|kids|kleine|kleintje|kindje|children|child|tweeling|zoon|dochter|zoontje|dochtertje|meisje|jongetje)"
)


@dataclass(frozen=True)
class Facts:
    """What one message says, as numbers. None where the message does not say it."""

    child_age_days: float | None = None
    pregnancy_week: int | None = None
    temperature_c: float | None = None
    duration_hours: float | None = None
    alone_with_child: bool = False
    fever_word: bool = False

    def as_dict(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, False)}


def _number(token: str) -> float:
    token = token.replace(",", ".")
    if token in _HOUR_WORDS:
        return float(_HOUR_WORDS[token])
    return float(token)


def _unit_days(unit: str) -> float:
    if unit.startswith(("dag", "dgn", "day")) or unit == "d":
        return _UNIT_DAYS["d"]
    if unit.startswith(("we", "wk", "w")):
        return _UNIT_DAYS["w"]
    if unit.startswith(("maand", "mnd", "mth", "mo", "month")) or unit == "m":
        return _UNIT_DAYS["m"]
    return _UNIT_DAYS["y"]


def child_age_days(text: str) -> float | None:
    """The youngest child age the message gives, in days."""
    ages: list[float] = []
    for pattern in (_AGE_OF_CHILD, _AGE_OLD):
        for m in pattern.finditer(text):
            ages.append(_number(m.group(1)) * _unit_days(m.group("unit")))
    for m in _AGE_YEARS_BARE.finditer(text):
        if 1 <= int(m.group(1)) <= 18:
            ages.append(int(m.group(1)) * _UNIT_DAYS["y"])
    if _NEWBORN.search(text):
        ages.append(7.0)
    if not ages and _TEEN_WORDS.search(text):
        ages.append(_TEEN_DAYS)
    if not ages and _BABY_WORDS.search(text) and not _PREGNANCY_WORDS.search(text):
        for m in _BARE_AGE.finditer(text):
            ages.append(_number(m.group(1)) * _unit_days(m.group("unit")))
    return min(ages) if ages else None


def pregnancy_week(text: str) -> int | None:
    """The week of pregnancy: "30 weken zwanger", "39+2", "ik ben 12 weken", or weeks beside
    pregnancy words."""
    for pattern in (_PREGNANCY_WEEK, _PREGNANCY_WEEK_PLUS, _FIRST_PERSON_WEEKS):
        m = pattern.search(text)
        week = int(next(g for g in m.groups() if g)) if m else 0
        if 4 <= week <= 43:
            return week
    if _PREGNANCY_WORDS.search(text) and not _AGE_OLD.search(text) and not _AGE_OF_CHILD.search(text):
        for pattern in (_WEEK_IN_PREGNANCY, _PREGNANCY_WEEK_EN):
            for m in pattern.finditer(text):
                if 4 <= int(m.group(1)) <= 43:
                    return int(m.group(1))
    if not _AGE_OLD.search(text) and not _AGE_OF_CHILD.search(text):
        # "31 weken en ..." with no child in sight: nobody gives a baby's age as 31 weeks.
        for m in _WEEK_IN_PREGNANCY.finditer(text):
            if 13 <= int(m.group(1)) <= 43:
                return int(m.group(1))
    return None


def temperature_c(text: str) -> float | None:
    """The highest body temperature named, in degrees Celsius."""
    found: list[float] = []
    for pattern in (_TEMPERATURE, _TEMPERATURE_AFTER, _TEMPERATURE_BARE):
        for m in pattern.finditer(text):
            found.append(float(m.group(1)) + (float(m.group(2)) / 10 if m.group(2) else 0.0))
    for m in _FAHRENHEIT.finditer(text):
        value = float(m.group(1)) + (float(m.group(2)) / 10 if m.group(2) else 0.0)
        found.append(round((value - 32) * 5 / 9, 1))
    return max(found) if found else None


def duration_hours(text: str) -> float | None:
    """How long something has lasted, in hours (the longest duration named)."""
    found: list[float] = []
    for m in _HOURS.finditer(text):
        unit = m.group(2)
        value = _number(m.group(1))
        if unit.startswith(("dag", "day", "nacht", "night")):
            value *= 24
        found.append(value)
    for pattern, hours in _SINCE:
        if pattern.search(text):
            found.append(hours)
    return max(found) if found else None


def extract(text: str) -> Facts:
    """All facts of one normalised message."""
    return Facts(
        child_age_days=child_age_days(text),
        pregnancy_week=pregnancy_week(text),
        temperature_c=temperature_c(text),
        duration_hours=duration_hours(text),
        alone_with_child=bool(_ALONE_WITH_CHILD.search(text)),
        fever_word=any(not _NO_FEVER.search(text[max(0, m.start() - 12) : m.start()]) for m in _FEVER_WORD.finditer(text)),
    )
