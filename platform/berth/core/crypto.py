"""Encryption at rest for tenant secrets, with key rotation (BERTH_FIELD_ENCRYPTION_KEYS)."""

import json
from functools import cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except (ValueError, TypeError) as error:
        raise ImproperlyConfigured(f"BERTH_FIELD_ENCRYPTION_KEYS holds an invalid Fernet key: {error}") from None


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    try:
        return fernet().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured("A stored value cannot be decrypted with any configured key.") from None


def reencrypt(ciphertext: str) -> str:
    """Re-encrypt with the newest key, so the oldest can be retired."""
    return fernet().rotate(ciphertext.encode()).decode()


class EncryptedTextField(models.TextField):
    """Text stored as a Fernet token; Python code only ever sees the plaintext."""

    def from_db_value(self, value, expression, connection):
        return None if value is None else decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return None if value is None else encrypt(value)


class EncryptedJSONField(models.TextField):
    """A JSON value stored encrypted as one Fernet token (config snapshots)."""

    # For django-stubs: the attribute holds a JSON value, not the text its base class stores.
    _pyi_private_set_type: Any
    _pyi_private_get_type: Any

    def from_db_value(self, value, expression, connection):
        return None if value is None else json.loads(decrypt(value))

    def get_prep_value(self, value):
        return None if value is None else encrypt(json.dumps(value, sort_keys=True))

    def to_python(self, value):
        return json.loads(value) if isinstance(value, str) else value
