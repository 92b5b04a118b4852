"""Oudertelefoon: an anonymous chat and telephone helpline bot for (expecting) parents."""

__version__ = "0.1.0"
