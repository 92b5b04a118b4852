"""`oudertelefoon catalogue export` and `catalogue import`, run as a real process against the
configured database: export writes data/aanbod YAML that loads back, import shows the diff first
and changes nothing until --apply, then applies it audited; a bad file changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.catalogue_service import IMPORTED
from bot.config import REPO_ROOT, Settings
from bot.intents.catalogue import load_catalogue
from bot.storage import db
from bot.storage.models import AuditLog, CatalogueRecord

NEW_ENTRY = """
  - id: geldhulp_test
    name: Geldhulp Test
    kind: municipal_service
    themes: [money]
    phases: [all]
    access: self_referral
    region: amsterdam
    summary:
      nl: "Hulp bij geld."
      en: "Help with money."
    contact:
      website: "geldhulp.example.nl"
    source: "test"
    verified: false
    last_checked: null
"""


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k not in {"NLU_BACKEND", "RASA_URL"}}
    out.update({"OUDERTELEFOON_VAR_DIR": str(settings.var_dir), "OUDERTELEFOON_ENV": "test",
                "LOG_LEVEL": "WARNING", "DATABASE_URL": settings.effective_database_url,
                "REDIS_URL": settings.redis_url, "REDIS_KEY_PREFIX": f"c{uuid.uuid4().hex[:10]}"})
    return out


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.cli", "catalogue", *args], check=False,
                          capture_output=True, text=True, env=env, timeout=180, cwd=REPO_ROOT)


def phone(settings: Settings, entry_id: str) -> str | None:
    engine = db.make_engine(settings.effective_database_url)
    try:
        with engine.connect() as connection:
            data = connection.execute(select(CatalogueRecord.data).where(CatalogueRecord.id == entry_id)).scalar()
    finally:
        engine.dispose()
    return None if data is None else (data.get("contact") or {}).get("phone")


def imported(settings: Settings) -> list[dict[str, object]]:
    engine = db.make_engine(settings.effective_database_url)
    try:
        with engine.connect() as connection:
            return [row[0] for row in connection.execute(
                select(AuditLog.detail).where(AuditLog.action == IMPORTED).order_by(AuditLog.id))]
    finally:
        engine.dispose()


def test_export_then_import_round_trip_with_a_diff_first(env: dict[str, str], settings: Settings,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "aanbod"
    exported = run(env, "export", "--to", str(out))
    assert exported.returncode == 0, exported.stderr
    assert dict(load_catalogue(out).entries) == dict(load_catalogue(REPO_ROOT / "data" / "aanbod").entries)

    # Its own export imports as no change.
    same = run(env, "import", str(out))
    assert same.returncode == 0 and "no changes" in same.stdout, same.stdout + same.stderr

    # A reviewed change: a new phone number and a new entry.
    lines = out / "lines.yml"
    assert "0800-8115" in lines.read_text()
    lines.write_text(lines.read_text().replace("0800-8115", "0800-8116"))
    amsterdam = out / "amsterdam.yml"
    amsterdam.write_text(amsterdam.read_text() + NEW_ENTRY)

    shown = run(env, "import", str(out))
    assert shown.returncode == 0, shown.stderr
    assert "+ geldhulp_test (Geldhulp Test)" in shown.stdout
    assert "~ geldfit" in shown.stdout and "0800-8116" in shown.stdout
    assert "nothing applied" in shown.stdout
    assert phone(settings, "geldfit") == "0800-8115" and phone(settings, "geldhulp_test") is None
    assert imported(settings) == []

    applied = run(env, "import", str(out), "--apply")
    assert applied.returncode == 0, applied.stderr
    assert "1 new, 1 changed; applied" in applied.stdout
    assert phone(settings, "geldfit") == "0800-8116"
    details = {str(d["entry"]): d for d in imported(settings)}
    assert details["geldfit"]["old"] == {"contact": {"phone": "0800-8115", "website": "geldfit.nl"}}
    assert details["geldfit"]["new"] == {"contact": {"phone": "0800-8116", "website": "geldfit.nl"}}
    assert details["geldhulp_test"]["old"] == {}

    # Exported again, it carries the change, and imports as no change.
    again = tmp_path / "again"
    assert run(env, "export", "--to", str(again)).returncode == 0
    assert load_catalogue(again).get("geldfit").contact.phone == "0800-8116"  # type: ignore[union-attr]
    assert "no changes" in run(env, "import", str(again)).stdout


def test_a_bad_file_is_refused_and_nothing_changes(env: dict[str, str], settings: Settings,
                                                   tmp_path: Path) -> None:
    out = tmp_path / "aanbod"
    assert run(env, "export", "--to", str(out)).returncode == 0
    lines = out / "lines.yml"
    lines.write_text(lines.read_text().replace("0800-8115", "bel maar"))
    refused = run(env, "import", str(out), "--apply")
    assert refused.returncode == 1
    assert "lines.yml" in refused.stderr and "geldfit" in refused.stderr and "contact.phone" in refused.stderr
    assert phone(settings, "geldfit") == "0800-8115"
