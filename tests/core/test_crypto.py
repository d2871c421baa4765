"""Field encryption at rest, with more than one key so keys can rotate."""

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from berth.core import crypto


@pytest.fixture
def keys(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [old]
    return old, new


def test_round_trip_hides_the_plaintext(keys):
    token = crypto.encrypt("DATABASE_PASSWORD=hunter2")
    assert "hunter2" not in token
    assert crypto.decrypt(token) == "DATABASE_PASSWORD=hunter2"


def test_rotation_reads_old_values_and_writes_with_the_newest_key(keys, settings):
    old, new = keys
    written_with_old = crypto.encrypt("s3cret")
    settings.FIELD_ENCRYPTION_KEYS = [new, old]
    assert crypto.decrypt(written_with_old) == "s3cret"
    rotated = crypto.reencrypt(written_with_old)
    settings.FIELD_ENCRYPTION_KEYS = [new]
    assert crypto.decrypt(rotated) == "s3cret"
    with pytest.raises(ImproperlyConfigured, match="cannot be decrypted"):
        crypto.decrypt(written_with_old)


def test_field_stores_ciphertext_and_returns_plaintext(keys):
    field = crypto.EncryptedTextField()
    stored = field.get_prep_value("token-value")
    assert stored != "token-value"
    assert field.from_db_value(stored, None, None) == "token-value"
    assert field.get_prep_value(None) is None


def test_invalid_key_is_a_configuration_error(settings):
    settings.FIELD_ENCRYPTION_KEYS = ["not-a-fernet-key"]
    with pytest.raises(ImproperlyConfigured, match="invalid Fernet key"):
        crypto.encrypt("x")
