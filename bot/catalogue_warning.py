"""The empty catalogue, said out loud.

With `CATALOGUE_INCLUDE_UNVERIFIED` unset, production offers only published entries a
coordinator has checked (the dashboard's catalogue, bot.catalogue_service). When not one such
entry exists, every practical question gets "Ik weet hier nog geen goede plek voor": the bot still answers, but gives no address at all.
That must never pass unnoticed: the service logs one warning at start (`log_at_start`) and the
coordinators' dashboard shows a banner (`banner`) on every page, until an entry is checked or
unchecked entries are allowed.
"""

from __future__ import annotations

import logging

from bot.config import Settings
from bot.intents.catalogue import Catalogue

logger = logging.getLogger(__name__)

BANNER = (
    "Geen enkel aanbod is gecontroleerd: de bot geeft nu geen praktische adressen. "
    "Controleer het aanbod onder Aanbod beheren, "
    "of zet CATALOGUE_INCLUDE_UNVERIFIED=true."
)


def nothing_checked(settings: Settings, catalogue: Catalogue) -> bool:
    """True when the bot may offer only checked entries and no entry is checked."""
    if settings.include_unverified_catalogue:
        return False
    return not any(entry.verified and entry.published for entry in catalogue.entries.values())


def banner(settings: Settings, catalogue: Catalogue) -> str | None:
    """The dashboard banner's text, or None when there is nothing to warn about."""
    return BANNER if nothing_checked(settings, catalogue) else None


def log_at_start(settings: Settings, catalogue: Catalogue) -> bool:
    """Log the warning once (at start) when it applies; True when it did. Counts only."""
    if not nothing_checked(settings, catalogue):
        return False
    logger.warning(
        "CATALOGUE: none of the %d catalogue entries is checked (verified: true), and "
        "CATALOGUE_INCLUDE_UNVERIFIED is not set: the bot gives parents NO practical addresses. "
        "Check entries in the dashboard (/dashboard/catalogue), or set "
        "CATALOGUE_INCLUDE_UNVERIFIED=true.",
        len(catalogue.entries),
    )
    return True
