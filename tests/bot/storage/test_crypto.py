from __future__ import annotations

import pytest

from bot.storage.crypto import AddressDecryptError, AddressVault


def test_pseudonym_is_stable_and_keyed() -> None:
    vault = AddressVault(b"k" * 32)
    a = vault.pseudonym("sms", "+31612345678")
    assert a == vault.pseudonym("sms", "+31612345678")
    assert len(a) == 64 and "31612345678" not in a
    assert a != vault.pseudonym("whatsapp", "+31612345678")
    assert a != AddressVault(b"o" * 32).pseudonym("sms", "+31612345678")


def test_address_round_trip_and_wrong_key() -> None:
    vault = AddressVault(b"k" * 32)
    token = vault.encrypt("whatsapp:+31612345678")
    assert b"31612345678" not in token
    assert vault.decrypt(token) == "whatsapp:+31612345678"
    with pytest.raises(AddressDecryptError):
        AddressVault(b"o" * 32).decrypt(token)


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        AddressVault(b"")
