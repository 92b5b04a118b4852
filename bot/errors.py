"""The project's exception tree: every error we raise on purpose derives from OudertelefoonError."""

from __future__ import annotations


class OudertelefoonError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(OudertelefoonError):
    """A setting is missing or malformed. The message names the variable."""


class DataError(OudertelefoonError):
    """A data file (NLU data, risk rules, catalogue, messages) is invalid.

    The message names the file, and the entry and field where they are known.
    """


class CatalogueError(DataError):
    """A catalogue entry in data/aanbod/ is invalid."""


class NLUDataError(DataError):
    """Rasa-format training or test data in data/nlu/ is invalid."""


class TriageBackendError(OudertelefoonError):
    """An NLU backend could not produce a parse (server down, timeout, bad answer)."""
