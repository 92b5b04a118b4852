"""Masking of names, contact details and identifiers in text kept for statistics or training.

One interface, `Masker`: `spans(text)` says what would be masked (start, end, kind) and
`mask(text)` replaces those spans with a placeholder such as "[telefoon]". Two implementations:

- `RegexMasker` (used): hand-written rules, no dependencies, microseconds per message.
- `DeduceMasker`: the `deduce` Dutch clinical de-identification library, for comparison only
  (bench/masking). It is not a dependency: it needs ~1.1 GB of memory and seconds to load, and
  missed more of what parents write than the rules (see README, "Masking: measured").

`mask(text)` is what the app calls (pipeline, desk, learning loop, demo data).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

PLACEHOLDERS = {
    "email": "[email]",
    "url": "[url]",
    "phone": "[telefoon]",
    "postcode": "[postcode]",
    "bsn": "[nummer]",
    "id": "[nummer]",
    "name": "[naam]",
    "address": "[adres]",
    "age": "[leeftijd]",
    "date": "[datum]",
    "institution": "[school]",
}
NAME = PLACEHOLDERS["name"]


@dataclass(frozen=True, order=True)
class Span:
    start: int
    end: int
    kind: str


class Masker(Protocol):
    name: str

    def spans(self, text: str) -> list[Span]: ...

    def mask(self, text: str) -> str: ...


def apply_spans(text: str, spans: Iterable[Span]) -> str:
    """Replace each span by its kind's placeholder; overlapping spans are merged (first kind)."""
    merged: list[Span] = []
    for span in sorted(spans):
        if merged and span.start <= merged[-1].end:
            last = merged[-1]
            merged[-1] = Span(last.start, max(last.end, span.end), last.kind)
        else:
            merged.append(span)
    out, pos = [], 0
    for span in merged:
        out.append(text[pos:span.start])
        out.append(PLACEHOLDERS.get(span.kind, "[x]"))
        pos = span.end
    out.append(text[pos:])
    return "".join(out)


# --- rules ------------------------------------------------------------------------------------
# A rule finds spans in a working copy of the text in which earlier rules' spans are blanked
# with FILL (not a letter, digit or space), so later rules never see what is already masked and
# offsets stay those of the original text. A rule may also protect text (public service numbers)
# by blanking it without masking it.
FILL = "\ue000"
Finder = Callable[[str], Iterable[tuple[int, int, str]]]

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"\bhttps?://\S+|\bwww\.\S+", re.IGNORECASE)
# Free and information lines (0800, 0900, 0906, 0909) are services, never a parent's own number:
# Veilig Thuis 0800-2000, 113 Zelfmoordpreventie 0800-0113, police 0900-8844. Kept, so that the
# correction keeps its meaning. 112, 113, 144 are too short to be taken for anything else.
_SERVICE_NUMBER = re.compile(r"(?<![\d+])09(?:00|06|09)[\s.-]?\d{4}(?:\d{3})?(?!\d)"
                             r"|(?<![\d+])0800[\s.-]?\d{2}[\s.]?\d{2}(?:\d{3})?(?!\d)")
# A run of digits with separators: phone numbers in any notation and grouped BSN-like numbers.
_DIGIT_RUN = re.compile(r"(?<![\w+])(?:\+|00)?\d[\d\s().-]{6,}\d(?!\w)")
# Postcode: four digits (not starting with 0) and two letters (never SA, SD, SS).
_POSTCODE = re.compile(r"(?<![\w-])[1-9]\d{3}\s?(?!(?i:sa|sd|ss)\b)[A-Za-z]{2}(?!\w)"
                       r"(?P<number>\s+\d{1,4}(?:[a-zA-Z](?!\w))?)?")
# Two-letter words that follow a number in ordinary text ("sinds 2019 en", "1500 of meer"): not a
# postcode unless written in capitals or right after the word "postcode".
_SHORT_WORDS = frozenset(
    "en of in op al is ik je we ze na om te nu zo ja er af ex uw hè eh id at as an on to by we "
    "he it or if so do no up us me my ml mg kg cm".split())
_LONG_NUMBER = re.compile(r"(?<!\w)\d{8,}(?!\w)")

_MONTHS = (r"jan(?:uari)?|feb(?:ruari)?|maart|mrt|apr(?:il)?|mei|juni?|juli?|aug(?:ustus)?"
           r"|sep(?:t(?:ember)?)?|o[kc]t(?:ober)?|nov(?:ember)?|dec(?:ember)?|january|february"
           r"|march|april|may|june|july|august|september|october|november|december")
_DATE_WORDS = re.compile(rf"(?i)\b(?:[0-3]?\d)(?:e|ste|de)?\s+(?:{_MONTHS})\b\.?(?:\s+\d{{4}})?")
_DATE_NUMERIC = re.compile(r"(?<![\w.,/-])(?P<d>[0-3]?\d)(?P<sep>[-/.])(?P<m>[01]?\d)"
                           r"(?:(?P=sep)(?P<y>\d{4}|\d{2}))?(?![\w/-]|[.,]\d)")

# Ages. A number is an age after "ik ben", "is", "zijn", "i am", "van" after a child word, or in
# brackets after a word ("lisa (2)"); not when a unit follows that is not one of age ("3 dagen
# ziek", "28 weken zwanger", "4,2 kilo", "om 10 uur").
_NUMBER_WORDS = (r"een|één|twee|drie|vier|vijf|zes|zeven|acht|negen|tien|elf|twaalf|anderhalf"
                 r"|one|two|three|four|five|six|seven|eight|nine|ten")
_AGE_UNIT = r"jaar|jr|jaren|maanden|maand|mnd|weken|week|years?|months?|weeks?|dagen|days"
_CHILD = (r"dochter|dochtertje|zoon|zoontje|kind|kindje|kinderen|kids|baby|baby'?s|meisje|"
          r"meid|meiden|jongen|jongetje|jongens|jochie|peuter|tweeling|kleinzoon|kleindochter|"
          r"nichtje|neefje|zusje|broertje|daughter|son|girl|boy|child|kid")
_NOT_AGE_AFTER = (r"(?!\s*(?:[.,:/-]\d|x\b|%|(?:weken|week|weeks)\s+zwanger|uur|u\b|min|minuten|"
                  r"keer|euro|eur|graden|kilo|kg|gram|gr\b|ml|mg|cm|procent|personen|kamers?|"
                  r"kinderen|kids|voedingen|flessen|luiers|dagen\s+(?!oud)|days\s+(?!old)))")
_AGE_NUMBER = rf"(?:\d{{1,2}}(?!\d)|(?i:{_NUMBER_WORDS})(?=\s+(?:{_AGE_UNIT})\b))"
_AGE = re.compile(
    r"(?i:\b(?:ik\s+ben|ben|is|zijn|was|wordt|word|werd|i\s+am|i'm|im|am|"
    rf"(?:{_CHILD})(?:\s+[^\W\d_]+)?\s+van|(?:{_CHILD})\s+of|aged?))\s+"
    r"(?:(?:bijna|net|ruim|pas|al|nu|sinds|almost|nearly|just)\s+)?"
    rf"(?P<age>{_AGE_NUMBER}){_NOT_AGE_AFTER}"
    rf"(?P<more>(?:\s*(?:,|en|and|&)\s*\d{{1,2}}(?!\d){_NOT_AGE_AFTER})*)")
_AGE_BRACKETS = re.compile(r"(?<=\w)\s*\((?P<age>\d{1,2})\)")
_AGE_JARIGE = re.compile(r"(?i)\b(?P<age>\d{1,2})[\s-]?jarige?\b")

# Names.
_CAPITAL = "A-ZÀ-ÖØ-Þ"
_WORD = rf"[{_CAPITAL}][\w'’-]*"
_PARTICLES = r"van|de|der|den|el|al|ben|ter|ten|bin|abu|da|do|dos|du|le|la|op|in\s+'t|'t"
_INTRODUCTIONS = (
    r"ik\s+ben", r"ik\s+heet", r"heet", r"heten", r"mijn\s+naam\s+is", r"de\s+naam\s+is",
    r"my\s+name\s+is", r"i\s+am", r"i'm", r"im", r"call\s+me", r"noem\s+me", r"this\s+is",
)
# After these a name may be written without a capital ("ik heet fatima", "gr ilias").
_STRONG_INTRODUCTIONS = (
    r"ik\s+heet", r"heet", r"heten", r"mijn\s+naam\s+is", r"m'n\s+naam\s+is", r"mn\s+naam\s+is",
    r"de\s+naam\s+is", r"my\s+name\s+is", r"call\s+me", r"noem\s+me",
)
_SIGN_OFFS = r"groetjes|groeten|groet|gr|grt|liefs|doei|xx+|x|kind\s+regards|regards|love"
_RELATIVES = (
    "man", "vrouw", "vriend", "vriendin", "vriendje", "vriendinnetje", "partner", "ex",
    "echtgenoot",
    "echtgenote", "dochter", "zoon", "kind", "baby", "dochtertje", "zoontje", "moeder", "vader",
    "mama", "papa", "broer", "zus", "zusje", "broertje", "oma", "opa", "tante", "oom",
    "schoonmoeder", "schoonvader", "schoonzus", "zwager", "buurvrouw", "buurman", "stiefvader",
    "stiefmoeder", "stiefzoon", "stiefdochter", "neef", "nicht", "kleinzoon", "kleindochter",
    "husband", "wife", "boyfriend", "girlfriend", "son", "daughter", "mother", "father", "mum",
    "mom", "dad", "brother", "sister", "juf", "meester",
)
# Words that follow "mijn man", "mijn zoon" etc. when no name follows: Dutch and English
# function words and the most common verbs and adverbs. Any other lower-case word right after a
# family word is taken for a name ("mijn man bas slaat me").
_NOT_NAMES = frozenset("""
aan al alleen als altijd andere at af achter bij binnen boven buiten daar dan dat de deze die
dit door doet een en er ergens even geen gewoon haar heel hem hen het hier hij hoe hun ik in is
je jij kan kon krijgt laat maar me meer mee met mij mijn misschien moet mocht mag na naar niet
niks nog nooit nu of om ons onze ook op over pas per sinds soms steeds te tegen toch toen tot
uit van veel via voor vaak waar wanneer want was wat we weer wel welke werd wie wil wilde wij
word wordt zal ze zegt zei zelf zich zij zijn zo zonder zou zouden zoals zeker echt erg best
eigenlijk gisteren vandaag morgen vanavond vannacht nou dus ofzo enzo he hè eh uhm ja nee oke
ok okay jaren jaar maanden weken dagen and but or is was has had does did will would can could
may might must should the a an to of in on at for with from by not also always never just
still has have is was are were who which that this he she they it his her their my your
heeft had hebben hadden gaat ging gaan komt kwam komen blijft bleef staat stond ligt lag zit
zat loopt liep slaat sloeg schreeuwt schreeuwde drinkt dronk eet at slaapt sliep huilt huilde
werkt werkte woont woonde speelt speelde praat praatte luistert luisterde helpt hielp weet wist
vindt vond denkt dacht zoekt zocht belt belde appt appte leert leerde maakt maakte geeft gaf
neemt nam houdt hield past paste spuugt spuugde plast plaste bijt beet kijkt keek snapt
begrijpt gebruikt gebruikte rookt blowt gokt scheldt dreigt duwt trapt knijpt pest vecht
verdient betaalt betaalde mist miste wilt kunnen moeten mogen willen zullen worden
hoort hoorde ziet zag vraagt vroeg wacht wachtte voelt voelde lacht lachte haat haatte
schrikt rent kruipt valt viel groeit hoest niest jankt zeurt liegt loog steelt stal
verwaarloost controleert bedreigt bedreigde vernedert kleineert negeert slaapt snurkt
kookt wast poetst zorgt zorgde regelt belooft beloofde probeert probeerde begint begon
stopt stopte reageert reageerde accepteert verbiedt verbood dwingt dwong
ziek boos bang moe blij lief druk stil dood weg thuis binnen buiten zwanger jong oud klein
groot alleen verdrietig gestrest bezorgd jaloers agressief verslaafd dronken zwaar
heet heette noemen noemt heeft's is's says said hits hit drinks drank works lives left leaves
wants wanted
""".split())
_NAME_PATTERN = re.compile(
    r"(?i:\b(?P<lead>" + "|".join(_INTRODUCTIONS)
    + r"|(?:mijn|onze|m'n|mn|my|our|de|die|haar|zijn)\s+(?:" + "|".join(_RELATIVES)
    + r")(?:\s+heet)?))(?P<space>[\s,:]+)"
    + rf"(?P<name>{_WORD}(?:\s+(?:(?:{_PARTICLES})\s+)*{_WORD})*)"
)
_STRONG_PATTERN = re.compile(
    r"(?i)\b(?:" + "|".join(_STRONG_INTRODUCTIONS) + r")[\s,:]+"
    r"(?P<name>[^\W\d_][\w'’-]*(?:\s+(?:(?:" + _PARTICLES + r")\s+)+[^\W\d_][\w'’-]*)?)"
)
_SIGN_OFF_PATTERN = re.compile(
    rf"(?i)(?:^|[\n.!]\s*|,\s*)(?:{_SIGN_OFFS})[\s,:]+(?P<name>[^\W\d_][\w'’-]*)\s*[.!]*\s*$")
_RELATIVE_LOWER = re.compile(
    r"(?i)\b(?:mijn|onze|m'n|mn|my|our)\s+(?:" + "|".join(_RELATIVES) + r")\s*,?\s+"
    r"(?P<name>[a-zà-öø-ÿ][\w'’-]*)")
# A capitalised word inside a sentence is a proper noun: a person, unless it is one of the
# public services and languages a parent names.
_INNER_CAPITAL = re.compile(rf"(?<=[\w,;:)\"'’]\s)(?P<name>{_WORD}(?:\s+(?:(?:{_PARTICLES})\s+)*"
                            rf"{_WORD})*)")
_KEEP_CAPITALISED = frozenset("""
veilig thuis ggd cjg jeugdzorg belastingdienst toeslagen kindertelefoon uwv duo svb gemeente
sociaal loket huisartsenpost huisarts whatsapp telegram google instagram facebook tiktok
nederland nederlands nederlandse engels engelse english turks turkse arabisch arabische
marokkaans marokkaanse pools poolse somalisch tigrinya oekraïens oekraïense frans duits
surinaams surinaamse antilliaans islam moskee kerk ramadan kerst pasen suikerfeest offerfeest
albert heijn jumbo lidl aldi action hema kruidvat etos ikea amsterdam rotterdam utrecht
den haag almere zaandam amstelveen noord oost zuid west centrum nieuw-west zuidoost bijlmer
i i'm im i'll i've ok oke okay sorry hoi hallo help
maandag dinsdag woensdag donderdag vrijdag zaterdag zondag
turkije marokko syrië syrie suriname polen eritrea somalië somalie oekraïne oekraine belgië
belgie duitsland engeland frankrijk spanje ghana nigeria india afghanistan irak iran egypte
curaçao curacao aruba bonaire europa afrika azië
""".split())
_STREET_SUFFIX = (r"straat|laan|weg|plein|gracht|kade|dijk|singel|dreef|steeg|plantsoen"
                  r"|boulevard|baan|hof|pad|park|markt")
_HOUSE_NUMBER = (r"(?:\s+(?:nummer|nr\.?|no\.?))?\s+\d{1,4}"
                 r"(?:\s?[a-zA-Z](?!\w)|-\d{1,3}|\s?-?(?:hs|bis|huis))?(?!\w)")
_STREET = re.compile(
    rf"(?P<lead>(?:{_WORD}\s+(?:(?:van|de|der|den|het|ter|ten)\s+)*){{0,3}})"
    rf"(?P<street>\b[^\W\d_][\w'-]*?(?:{_STREET_SUFFIX}))\b(?P<number>{_HOUSE_NUMBER})?")
# Street words that are ordinary words ("onderweg", "uitkering" is not matched: "ring" is no
# suffix). Weak suffixes count only with a capital or a house number.
_NOT_STREETS = frozenset("""
onderweg snelweg halverwege uitweg zijweg rijweg wegweg middenweg achterweg kerkhof gerechtshof
binnenhof speelplein schoolplein fietspad voetpad zandpad bospad pretpark attractiepark
woningmarkt arbeidsmarkt supermarkt vrijmarkt loopbaan bijbaan ijsbaan rijbaan snelbaan
werkbaan spoorbaan tuinpad
""".split())
_WEAK_SUFFIX = re.compile(r"(?:baan|hof|pad|park|markt)$", re.IGNORECASE)
_HOUSE_NUMBER_WORD = re.compile(r"(?i)\b(?:huisnummer|huisnr|nr\.?)\s*(?P<number>\d{1,4}[a-z]?)\b")
_SCHOOL_WORDS = (r"basisschool|school|kinderopvang|opvang|kdv|bso|tso|peuterspeelzaal|psz|"
                 r"peutergroep|crèche|creche|kinderdagverblijf|daycare|nursery|voorschool|vve")
_INSTITUTION = re.compile(
    rf"(?i:\b(?:{_SCHOOL_WORDS}))\s+(?P<article>(?i:de|het|'t)\s+)?"
    rf"(?P<name>{_WORD}(?:\s+{_WORD})*|[a-zà-ÿ][\w'-]*)")
_NAMED_SCHOOL = re.compile(rf"(?P<name>{_WORD}(?:\s+{_WORD})*\s+(?:Lyceum|College|School|"
                           r"Academie|Gymnasium|Kindcentrum|Montessorischool))\b")
_NOT_INSTITUTION_NAMES = frozenset("""
in op aan van en is was zegt zei heeft belt belde bellen gaat ging wil kan moet met bij om voor
niet nog ook want maar dat die of te naar uit zit zitten wordt werd gebeld
""".split())


def _phone_or_number(text: str) -> Iterable[tuple[int, int, str]]:
    for m in _DIGIT_RUN.finditer(text):
        start, value = m.start(), m.group()
        digits = sum(c.isdigit() for c in value)
        # "bel 112 06-12345678": a leading emergency number is no part of the number after it.
        lead = re.match(r"(?:11[23]|144)[\s.-]+", value)
        if lead and digits - 3 >= 9:
            start, value, digits = start + lead.end(), value[lead.end():], digits - 3
        if value.count("(") != value.count(")") and value.endswith(")"):
            value = value[:-1]
        if digits < 9 or digits > 15:
            continue
        phone = value.startswith(("0", "+", "(0"))
        yield start, start + len(value), "phone" if phone else "id"


def _postcodes(text: str) -> Iterable[tuple[int, int, str]]:
    for m in _POSTCODE.finditer(text):
        code = m.group()[: m.start("number") - m.start()] if m.group("number") else m.group()
        letters = code[-2:]
        before = text[max(0, m.start() - 12):m.start()].lower()
        if (letters.lower() in _SHORT_WORDS and not letters.isupper()
                and "postcode" not in before):
            continue
        yield m.start(), m.start() + len(code), "postcode"
        if m.group("number"):
            yield m.start("number"), m.end("number"), "address"


def _dates(text: str) -> Iterable[tuple[int, int, str]]:
    for m in _DATE_WORDS.finditer(text):
        yield m.start(), m.end(), "date"
    for m in _DATE_NUMERIC.finditer(text):
        day, month = int(m.group("d")), int(m.group("m"))
        if not (1 <= day <= 31 and 1 <= month <= 12):
            continue
        if m.group("sep") == "." and not m.group("y"):
            continue  # "39.8" is a temperature, "1.5" an amount
        yield m.start(), m.end(), "date"


def _ages(text: str) -> Iterable[tuple[int, int, str]]:
    for m in _AGE.finditer(text):
        yield m.start("age"), m.end("age"), "age"
        if m.group("more"):
            for extra in re.finditer(r"\d{1,2}", m.group("more")):
                yield m.start("more") + extra.start(), m.start("more") + extra.end(), "age"
    for pattern in (_AGE_BRACKETS, _AGE_JARIGE):
        for m in pattern.finditer(text):
            yield m.start("age"), m.end("age"), "age"


def _sentence_start(text: str, index: int) -> bool:
    before = text[:index].rstrip()
    return not before or before[-1] in ".!?\n:;\"'(" or not any(c.isalpha() for c in before)


def _names(text: str) -> Iterable[tuple[int, int, str]]:
    for pattern in (_NAME_PATTERN, _STRONG_PATTERN, _SIGN_OFF_PATTERN):
        for m in pattern.finditer(text):
            if m.group("name").split()[0].lower() not in _NOT_NAMES:
                yield m.start("name"), m.end("name"), "name"
    for m in _RELATIVE_LOWER.finditer(text):
        word = m.group("name")
        if word.lower() not in _NOT_NAMES and len(word) > 1:
            yield m.start("name"), m.end("name"), "name"
    for m in _INNER_CAPITAL.finditer(text):
        words = m.group("name").split()
        if _sentence_start(text, m.start()):
            continue
        if " ".join(words).lower() in _KEEP_CAPITALISED or words[0].lower() in _KEEP_CAPITALISED:
            continue
        if all(w.isupper() for w in words):
            continue  # GGD, OLVG, UWV: organisations
        yield m.start("name"), m.end("name"), "name"


def _streets(text: str) -> Iterable[tuple[int, int, str]]:
    for m in _STREET.finditer(text):
        street = m.group("street")
        if street.lower() in _NOT_STREETS:
            continue
        if _WEAK_SUFFIX.search(street) and not (m.group("number") or street[0].isupper()):
            continue
        start = m.start("lead") if m.group("lead") and street[0].isupper() else m.start("street")
        yield start, m.end(), "address"
    for m in _HOUSE_NUMBER_WORD.finditer(text):
        yield m.start(), m.end(), "address"


def _institutions(text: str) -> Iterable[tuple[int, int, str]]:
    for m in _INSTITUTION.finditer(text):
        if m.group("name").lower() not in _NOT_INSTITUTION_NAMES:
            start = m.start("article") if m.group("article") else m.start("name")
            yield start, m.end("name"), "institution"
    for m in _NAMED_SCHOOL.finditer(text):
        yield m.start("name"), m.end("name"), "institution"


def _regex(kind: str, pattern: re.Pattern[str]) -> Finder:
    return lambda text: ((m.start(), m.end(), kind) for m in pattern.finditer(text))


def _protect(pattern: re.Pattern[str]) -> Finder:
    return lambda text: ((m.start(), m.end(), "") for m in pattern.finditer(text))


RULES: tuple[Finder, ...] = (
    _regex("email", _EMAIL),
    _regex("url", _URL),
    _protect(_SERVICE_NUMBER),
    _dates,  # before numbers: "12-03-2024" is a date, not a short phone number
    _phone_or_number,
    _postcodes,
    _regex("id", _LONG_NUMBER),
    _streets,
    _institutions,
    _ages,
    _names,
)


class RegexMasker:
    """Rules in order; each sees the text with earlier rules' spans blanked."""

    name = "regex"

    def __init__(self, rules: Iterable[Finder] = RULES, name: str = "regex") -> None:
        self.rules = tuple(rules)
        self.name = name

    def spans(self, text: str) -> list[Span]:
        work = text
        found: list[Span] = []
        for rule in self.rules:
            hits = sorted({(s, e, k) for s, e, k in rule(work) if e > s})
            for start, end, kind in hits:
                if FILL in work[start:end]:
                    # Overlaps something already masked or protected: mask only what is new.
                    pieces = [(m.start() + start, m.end() + start)
                              for m in re.finditer(f"[^{FILL}]+", work[start:end])]
                else:
                    pieces = [(start, end)]
                for s, e in pieces:
                    if kind and any(c.isalnum() for c in work[s:e]):
                        found.append(Span(s, e, kind))
            for start, end, _ in hits:
                work = work[:start] + FILL * (end - start) + work[end:]
        return sorted(found)

    def mask(self, text: str) -> str:
        return apply_spans(text, self.spans(text))


class DeduceMasker:
    """`deduce` (pip install deduce), loaded once on first use. It builds its lookup tables on
    first use (1-2 minutes, written to `cache_dir`) and loads them from there afterwards."""

    name = "deduce"
    KINDS: ClassVar[dict[str, str]] = {
        "persoon": "name", "patient": "name", "telefoonnummer": "phone", "emailadres": "email",
        "url": "url", "bsn": "bsn", "id": "id", "leeftijd": "age", "datum": "date",
        "locatie": "address", "instelling": "institution", "ziekenhuis": "institution",
        "postcode": "postcode"}

    def __init__(self, cache_dir: Path | None = None) -> None:
        self.cache_dir = cache_dir
        self._deduce: Any = None
        self._lock = threading.Lock()

    def load(self) -> Any:
        with self._lock:
            if self._deduce is None:
                import deduce

                kwargs = {"cache_path": self.cache_dir} if self.cache_dir else {}
                self._deduce = deduce.Deduce(**kwargs)
        return self._deduce

    def spans(self, text: str) -> list[Span]:
        doc = self.load().deidentify(text)
        return sorted(Span(a.start_char, a.end_char, self.KINDS.get(a.tag.split("-")[0], a.tag))
                      for a in doc.annotations)

    def mask(self, text: str) -> str:
        return apply_spans(text, self.spans(text))


_MASKER: Masker = RegexMasker()


def masker() -> Masker:
    """The masker the app uses (chosen by bench/masking)."""
    return _MASKER


def mask(text: str) -> str:
    """Replace names, e-mail addresses, links, phone numbers, postcodes, addresses, BSN-like and
    other long numbers, ages, dates and school names where they can be recognised. Emergency and
    service numbers (112, 113, 0800-0113, 0900-8844) and medical figures stay."""
    return _MASKER.mask(text)


def mask_names(text: str) -> str:
    """Only the names (kept for callers that mask names alone)."""
    return apply_spans(text, [s for s in _MASKER.spans(text) if s.kind == "name"])
