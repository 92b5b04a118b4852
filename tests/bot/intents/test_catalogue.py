"""Tests for bot.intents.catalogue against the real data/aanbod/ and data/messages/ files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.errors import CatalogueError, DataError
from bot.intents.catalogue import (
    DEFAULT_CATALOGUE_DIR,
    Access,
    Catalogue,
    CatalogueEntry,
    load_catalogue,
    load_messages,
    render_answer,
)
from bot.triage.types import THEMES, Language, Theme

REAL_THEMES = [Theme(t) for t in THEMES]
OTHER_REGIONS = [
    "rotterdam",
    "delft",
    "almelo",
    "kennemerland",
    "groningen",
    "nijmegen",
    "amstelveen_aalsmeer",
    "utrecht_gooi",
]
ALL_REGIONS = ["amsterdam", "national", *OTHER_REGIONS]

# The 51 service rows of the fact sheet (section 2) and the section-7 gap facts.
SHEET_IDS = {
    # 2A Amsterdam
    "okt_amsterdam", "buurtteam_amsterdam", "gemeente_amsterdam", "stadspas_amsterdam",
    "amsterdam_regelingen_laag_inkomen", "schuldhulp_amsterdam", "spelinloop_amsterdam",
    "opvoedondersteuning_okt", "centering_pregnancy", "centering_parenting", "huis_van_de_wijk",
    "zwangerschapskalender_amsterdam",
    # 2B health care
    "verloskundige", "kraamzorg", "huisarts", "huisartsenpost", "ziekenhuis_gynaecoloog_kinderarts",
    "ggz", "verslavingszorg", "pop_poli", "jgz_consultatiebureau", "prenataal_huisbezoek_jgz",
    "voorzorg", "stevig_ouderschap", "nu_niet_zwanger",
    # 2C social
    "sociaal_wijkteam", "jeugdhulp", "clientondersteuning_mee", "gemeentepolis_minima",
    "begeleid_wonen", "kinderopvang_voorschool",
    # 2D peer
    "home_start", "moeders_informeren_moeders", "steunouders", "taalmaatje",
    # 2E lines
    "noodnummer_112", "zelfmoordpreventie_113", "veilig_thuis", "centrum_seksueel_geweld",
    "de_luisterlijn", "geldfit", "juridisch_loket", "fiom", "kindertelefoon", "ouderwijzertelefoon",
    # 2F other regions
    "moeders_van_rotterdam", "kasto_delft", "jonge_moederwerk_almelo",
    "jonge_moedergroep_kennemerland", "eigenwijs_kraamzorg", "participe_amstelland",
}  # fmt: skip
GAP_IDS = {
    "voedselbank_amsterdam", "toeslagen_belastingdienst", "informatiepunt_digitale_overheid",
    "jellinek", "dokters_van_de_wereld", "rokeninfo",
}  # fmt: skip

# Every phone number and website the sheet gives (sections 3 and 7), by entry. Nothing else may
# appear in the data.
SHEET_CONTACTS: dict[str, tuple[set[str], set[str]]] = {
    "noodnummer_112": ({"112"}, set()),
    "zelfmoordpreventie_113": ({"113", "0800-0113"}, {"113.nl"}),
    "veilig_thuis": ({"0800-2000"}, set()),
    "kindertelefoon": ({"0800-0432"}, set()),
    "juridisch_loket": ({"0800-8020"}, set()),
    "geldfit": ({"0800-8115"}, {"geldfit.nl"}),
    "centrum_seksueel_geweld": ({"0800-0188"}, set()),
    "de_luisterlijn": ({"088-0767000"}, set()),
    "gemeente_amsterdam": ({"14 020"}, set()),
    "stadspas_amsterdam": ({"14 020"}, set()),
    "amsterdam_regelingen_laag_inkomen": ({"14 020"}, set()),
    "schuldhulp_amsterdam": ({"14 020"}, set()),
    "okt_amsterdam": (set(), {"oktamsterdam.nl"}),
    "buurtteam_amsterdam": (set(), {"buurtteamamsterdam.nl"}),
    "fiom": (set(), {"fiom.nl"}),
    "voedselbank_amsterdam": (set(), {"voedselbankamsterdam.nl"}),
    "toeslagen_belastingdienst": ({"0800-0543"}, {"toeslagen.nl"}),
    "informatiepunt_digitale_overheid": (set(), {"oba.nl"}),
    "jellinek": (set(), {"jellinek.nl"}),
    "dokters_van_de_wereld": (set(), {"doktersvandewereld.nl"}),
    "rokeninfo": (set(), {"rokeninfo.nl"}),
}

# Anything in a text that looks like a Dutch phone number or a website.
PHONE_IN_TEXT = re.compile(r"(?<![\d-])(?:0\d{2,3}-\d{4,7}|14 ?0\d{2}|0\d{9}|1\d{2})(?![\d-])")
WEBSITE_IN_TEXT = re.compile(r"\b(?:[a-z0-9-]+\.)+(?:nl|com|org|net|eu|info|be)\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue(DEFAULT_CATALOGUE_DIR)


def _phones(entry: CatalogueEntry) -> set[str]:
    c = entry.contact
    return {p for p in (c.phone, c.free_phone) if p} if c else set()


def _websites(entry: CatalogueEntry) -> set[str]:
    return {entry.contact.website} if entry.contact and entry.contact.website else set()


def _ids(entries: list[CatalogueEntry]) -> list[str]:
    return [entry.id for entry in entries]


def _texts(entry: CatalogueEntry) -> list[str]:
    texts = [entry.summary.nl, entry.summary.en]
    if entry.referral:
        texts += [entry.referral.nl, entry.referral.en]
    if entry.contact and entry.contact.how:
        texts += [entry.contact.how.nl, entry.contact.how.en]
    return texts


def _assert_only_known_contacts(text: str, entries: list[CatalogueEntry]) -> None:
    phones = set().union(*(_phones(e) for e in entries)) if entries else set()
    websites = set().union(*(_websites(e) for e in entries)) if entries else set()
    for found in PHONE_IN_TEXT.findall(text):
        assert found in phones, f"phone {found!r} shown but not in the picked entries' contact"
    for found in WEBSITE_IN_TEXT.findall(text):
        assert found.lower() in websites, f"website {found!r} shown but not in the entries' contact"


# --------------------------------------------------------------------------- the real data


def test_real_catalogue_loads_every_sheet_row_and_gap_fact(catalogue: Catalogue) -> None:
    ids = set(catalogue.entries)
    assert ids == SHEET_IDS | GAP_IDS
    assert len(SHEET_IDS) == 51
    assert len(catalogue) == 57


def test_oudertelefoon_2020_initiative_is_not_listed(catalogue: Catalogue) -> None:
    for entry in catalogue:
        assert "oudertelefoon" not in entry.id
        assert "oudertelefoon" not in entry.name.lower()


def test_contact_facts_are_only_those_of_the_sheet(catalogue: Catalogue) -> None:
    for entry in catalogue:
        phones, websites = SHEET_CONTACTS.get(entry.id, (set(), set()))
        assert _phones(entry) == phones, entry.id
        assert _websites(entry) == websites, entry.id
        for text in _texts(entry):
            # Texts may only repeat the entry's own contact facts.
            assert set(PHONE_IN_TEXT.findall(text)) <= phones, (entry.id, text)
            assert {w.lower() for w in WEBSITE_IN_TEXT.findall(text)} <= websites, (entry.id, text)


def test_everything_is_unverified_until_a_coordinator_checks_it(catalogue: Catalogue) -> None:
    for entry in catalogue:
        assert entry.verified is False
        assert entry.last_checked is None
        assert entry.source


def test_parent_texts_are_short_and_never_label(catalogue: Catalogue) -> None:
    for entry in catalogue:
        assert len(entry.summary.nl.split()) <= 30, entry.id
        assert len(entry.summary.en.split()) <= 30, entry.id
        for text in _texts(entry):
            assert "kwetsba" not in text.lower()
            assert "vulnerab" not in text.lower()


def test_every_entry_says_how_to_reach_it(catalogue: Catalogue) -> None:
    for entry in catalogue:
        if entry.access.needs_referral:
            assert entry.referral is not None, entry.id
        if entry.contact is None:
            assert entry.referral is not None, entry.id


def test_only_kindertelefoon_is_for_children(catalogue: Catalogue) -> None:
    assert [e.id for e in catalogue if e.for_children_only] == ["kindertelefoon"]


# --------------------------------------------------------------------------- pick


@pytest.mark.parametrize("theme", REAL_THEMES, ids=lambda t: t.value)
def test_every_theme_gets_an_entry_for_amsterdam(catalogue: Catalogue, theme: Theme) -> None:
    picked = catalogue.pick(theme)
    assert 1 <= len(picked) <= 3
    assert all(e.region in ("amsterdam", "national") for e in picked)


def test_best_order_of_the_sheet_comes_first(catalogue: Catalogue) -> None:
    money = ["buurtteam_amsterdam", "geldfit", "gemeente_amsterdam"]
    assert _ids(catalogue.pick(Theme.money)) == money
    pregnancy = ["verloskundige", "kraamzorg", "centering_pregnancy"]
    assert _ids(catalogue.pick(Theme.pregnancy)) == pregnancy
    assert [e.id for e in catalogue.pick(Theme.money, limit=1)] == ["buurtteam_amsterdam"]
    assert len(catalogue.pick(Theme.money, limit=10)) > 3


def test_amsterdam_entries_replace_national_ones(catalogue: Catalogue) -> None:
    shown = {e.id for theme in REAL_THEMES for e in catalogue.pick(theme, limit=100)}
    assert "jgz_consultatiebureau" not in shown
    assert "sociaal_wijkteam" not in shown
    assert "okt_amsterdam" in [e.id for e in catalogue.pick(Theme.baby_care)]
    assert "buurtteam_amsterdam" in [e.id for e in catalogue.pick(Theme.money)]
    # Elsewhere the national entries are shown, and the Amsterdam ones are not.
    rotterdam = {e.id for e in catalogue.pick(Theme.baby_care, region="rotterdam", limit=100)}
    assert "jgz_consultatiebureau" in rotterdam
    assert "okt_amsterdam" not in rotterdam
    assert "sociaal_wijkteam" in _ids(catalogue.pick(Theme.money, region="rotterdam", limit=100))


@pytest.mark.parametrize("region", ALL_REGIONS)
def test_children_line_and_emergency_number_are_never_picked(
    catalogue: Catalogue, region: str
) -> None:
    for theme in REAL_THEMES:
        ids = {e.id for e in catalogue.pick(theme, region=region, limit=100)}
        assert "kindertelefoon" not in ids
        assert "noodnummer_112" not in ids


def test_other_region_entry_only_for_its_own_region(catalogue: Catalogue) -> None:
    for region in ALL_REGIONS:
        shown = {
            e.id for theme in REAL_THEMES for e in catalogue.pick(theme, region=region, limit=100)
        }
        assert "kasto_delft" in shown if region == "delft" else "kasto_delft" not in shown
        # Entries whose region the sources do not give are never shown.
        assert not shown & {"steunouders", "taalmaatje"}
        for entry_id in shown:
            assert catalogue.get(entry_id).region in (region, "national")
    # A parent in Delft asking about pregnancy gets the local programme within the usual 3.
    assert "kasto_delft" in [e.id for e in catalogue.pick(Theme.pregnancy, region="delft")]
    assert "kasto_delft" in [e.id for e in catalogue.pick(Theme.pregnancy, region=" Delft ")]


def test_include_unverified_false_hides_unverified(catalogue: Catalogue, tmp_path: Path) -> None:
    for theme in REAL_THEMES:
        assert catalogue.pick(theme, include_unverified=False) == []
    _write(
        tmp_path / "a.yml",
        [
            _entry(id="checked", verified=True, last_checked="2025-01-15"),
            _entry(id="unchecked"),
        ],
    )
    small = load_catalogue(tmp_path)
    assert [e.id for e in small.pick(Theme.money)] == ["checked", "unchecked"]
    assert [e.id for e in small.pick(Theme.money, include_unverified=False)] == ["checked"]


def test_pick_edge_cases(catalogue: Catalogue) -> None:
    assert catalogue.pick(Theme.none) == []
    with pytest.raises(ValueError):
        catalogue.pick(Theme.money, limit=0)


# --------------------------------------------------------------------------- render


def test_rendered_answers_show_only_contacts_of_the_picked_entries(catalogue: Catalogue) -> None:
    for region in ALL_REGIONS:
        for theme in REAL_THEMES:
            picked = catalogue.pick(theme, region=region)
            for language in Language:
                _assert_only_known_contacts(render_answer(picked, language), picked)
    for entry in catalogue:  # including the children's line and 112
        for language in Language:
            _assert_only_known_contacts(render_answer([entry], language), [entry])


def test_rendered_answer_gives_the_contact(catalogue: Catalogue) -> None:
    text = render_answer([catalogue.get("veilig_thuis"), catalogue.get("geldfit")], Language.nl)
    assert "Veilig Thuis" in text
    assert "0800-2000" in text
    assert "gratis" in text
    assert "0800-8115" in text
    assert "geldfit.nl" in text
    assert len(text.splitlines()) < 20  # a phone screen, not a brochure
    huisartsenpost = render_answer([catalogue.get("huisartsenpost")], Language.nl)
    assert "eigen huisarts" in huisartsenpost


def test_referral_entries_render_who_can_refer(catalogue: Catalogue) -> None:
    referral_entries = [e for e in catalogue if e.access.needs_referral]
    expected = {"voorzorg", "nu_niet_zwanger", "centering_pregnancy", "kasto_delft"}
    assert expected <= set(_ids(referral_entries))
    for entry in referral_entries:
        assert entry.referral is not None
        assert entry.referral.nl in render_answer([entry], Language.nl)
        assert entry.referral.en in render_answer([entry], Language.en)
    nu_niet_zwanger = render_answer([catalogue.get("nu_niet_zwanger")], Language.nl)
    assert "hulpverlener" in nu_niet_zwanger
    assert "Bel:" not in nu_niet_zwanger


def test_english_render_is_english(catalogue: Catalogue) -> None:
    picked = catalogue.pick(Theme.money)
    english = render_answer(picked, Language.en)
    en, nl = load_messages(Language.en), load_messages(Language.nl)
    assert english.startswith(en["intro"])
    assert en["outro"] in english
    assert nl["intro"] not in english
    assert "Bel:" not in english
    assert "Call: 0800-8115" in english
    for entry in picked:
        assert entry.summary.en in english
        assert entry.summary.nl not in english


def test_other_languages_get_dutch(catalogue: Catalogue) -> None:
    picked = catalogue.pick(Theme.money)
    assert render_answer(picked, Language.other) == render_answer(picked, Language.nl)
    assert render_answer(picked, Language.nl).startswith(load_messages(Language.nl)["intro"])


def test_empty_answer_offers_a_person() -> None:
    assert render_answer([], Language.nl) == load_messages(Language.nl)["none_found"]
    assert "mens" in render_answer([], Language.en)


def test_bad_messages_file_names_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "nl.yml").write_text('catalogue:\n  intro: "Hoi {naam}"\n', encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_messages(Language.nl, tmp_path)
    message = str(info.value)
    assert "nl.yml" in message
    assert "catalogue." in message


# --------------------------------------------------------------------------- validation errors


def _entry(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": "test_line",
        "name": "Testlijn",
        "kind": "helpline",
        "themes": ["money"],
        "phases": ["all"],
        "access": "self_referral",
        "region": "national",
        "summary": {"nl": "Hulp bij geld.", "en": "Help with money."},
        "contact": {"phone": "0800-8115"},
        "source": "test",
        "verified": False,
    }
    entry.update(overrides)
    return {k: v for k, v in entry.items() if v is not None}


def _write(path: Path, entries: list[dict[str, Any]], **extra: Any) -> Path:
    text = yaml.safe_dump({"entries": entries, **extra}, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    return path


def _error(directory: Path) -> str:
    with pytest.raises(CatalogueError) as info:
        load_catalogue(directory)
    return str(info.value)


def test_unknown_theme_names_file_entry_and_field(tmp_path: Path) -> None:
    _write(tmp_path / "lines.yml", [_entry(), _entry(id="geldfit", themes=["money", "mony"])])
    message = _error(tmp_path)
    assert "lines.yml" in message
    assert "entry 'geldfit' (index 1)" in message
    assert "field 'themes.1'" in message
    assert "'mony' is not a taxonomy theme" in message


def test_missing_referral_names_the_field(tmp_path: Path) -> None:
    _write(tmp_path / "health.yml", [_entry(id="voorzorg", access="via_professional")])
    message = _error(tmp_path)
    assert "health.yml" in message
    assert "entry 'voorzorg' (index 0)" in message
    assert "field 'referral'" in message


def test_no_contact_and_no_referral_is_refused(tmp_path: Path) -> None:
    raw = _entry(id="nothing")
    del raw["contact"]
    _write(tmp_path / "a.yml", [raw])
    assert "field 'referral'" in _error(tmp_path)


def test_duplicate_id_across_files(tmp_path: Path) -> None:
    _write(tmp_path / "a.yml", [_entry(id="same")])
    _write(tmp_path / "b.yml", [_entry(), _entry(id="same")])
    message = _error(tmp_path)
    assert "b.yml" in message
    assert "entry 'same' (index 1)" in message
    assert "field 'id'" in message
    assert "duplicate" in message
    assert "a.yml" in message


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"colour": "blue"}, "colour"),
        ({"kind": "hotline"}, "kind"),
        ({"access": "walk_in"}, "access"),
        ({"phases": ["0-4"]}, "phases.0"),
        ({"region": "Amsterdam Noord"}, "region"),
        ({"contact": {"phone": "bel ons"}}, "contact.phone"),
        ({"contact": {"website": "https://geldfit.nl"}}, "contact.website"),
        ({"contact": {"email": "a@b.nl"}}, "contact.email"),
        ({"summary": {"nl": "Hulp bij geld."}}, "summary.en"),
        ({"summary": {"nl": "Voor kwetsbare ouders.", "en": "Help."}}, "summary.nl"),
        ({"verified": True}, "last_checked"),
        ({"themes": []}, "themes"),
        ({"name": None}, "name"),
    ],
)
def test_bad_field_names_file_entry_and_field(
    tmp_path: Path, overrides: dict[str, Any], field: str
) -> None:
    _write(tmp_path / "bad.yml", [_entry(id="broken", **overrides)])
    message = _error(tmp_path)
    assert message.startswith(str(tmp_path / "bad.yml") + ": ")
    assert "entry 'broken' (index 0)" in message
    assert f"field '{field}'" in message


def test_entry_without_id_is_named_by_index(tmp_path: Path) -> None:
    raw = _entry()
    del raw["id"]
    _write(tmp_path / "a.yml", [_entry(), raw])
    message = _error(tmp_path)
    assert "entry at index 1" in message
    assert "field 'id'" in message


def test_broken_yaml_names_the_file(tmp_path: Path) -> None:
    broken = "entries:\n  - id: x\n    themes: [money\n"
    (tmp_path / "broken.yml").write_text(broken, encoding="utf-8")
    message = _error(tmp_path)
    assert "broken.yml" in message
    assert "invalid YAML" in message
    assert "line" in message


def test_duplicate_yaml_key_is_refused(tmp_path: Path) -> None:
    (tmp_path / "dup.yml").write_text(
        "entries:\n  - id: x\n    themes: [money]\n    themes: [housing]\n", encoding="utf-8"
    )
    message = _error(tmp_path)
    assert "dup.yml" in message
    assert "'themes' twice" in message


def test_wrong_top_level_shape(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text("- id: x\n", encoding="utf-8")
    assert "a.yml" in _error(tmp_path)
    (tmp_path / "a.yml").write_text("services: []\n", encoding="utf-8")
    assert "'services'" in _error(tmp_path)


def test_replaces_must_name_an_existing_national_entry(tmp_path: Path) -> None:
    _write(tmp_path / "a.yml", [_entry(id="local", region="amsterdam", replaces=["nowhere"])])
    message = _error(tmp_path)
    assert "a.yml" in message
    assert "entry 'local' (index 0)" in message
    assert "field 'replaces.0'" in message
    assert "'nowhere'" in message
    _write(
        tmp_path / "a.yml",
        [
            _entry(id="local", region="amsterdam", replaces=["other"]),
            _entry(id="other", region="delft"),
        ],
    )
    assert "not a national entry" in _error(tmp_path)


def test_best_must_name_themes_and_existing_entries(tmp_path: Path) -> None:
    _write(tmp_path / "a.yml", [_entry()])
    (tmp_path / "best.yml").write_text("best:\n  money: [test_line, ghost]\n", encoding="utf-8")
    message = _error(tmp_path)
    assert "best.yml" in message
    assert "field 'best.money.1'" in message
    assert "'ghost'" in message
    (tmp_path / "best.yml").write_text("best:\n  mony: [test_line]\n", encoding="utf-8")
    assert "field 'best.mony'" in _error(tmp_path)


def test_best_order_is_used(tmp_path: Path) -> None:
    _write(tmp_path / "a.yml", [_entry(id="first"), _entry(id="second"), _entry(id="third")])
    (tmp_path / "best.yml").write_text("best:\n  money: [third, first]\n", encoding="utf-8")
    assert _ids(load_catalogue(tmp_path).pick(Theme.money)) == ["third", "first", "second"]


def test_missing_or_empty_directory(tmp_path: Path) -> None:
    assert "not found" in _error(tmp_path / "nope")
    assert "no *.yml" in _error(tmp_path)


def test_access_enum_matches_the_brief() -> None:
    assert {a.value for a in Access} == {
        "self_referral",
        "via_professional",
        "via_gp_midwife",
        "drop_in",
        "unknown",
    }
