"""Settings come from the environment; production refuses to start with development secrets."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
GOOD = {
    "BERTH_SECRET_KEY": "k" * 50,
    "BERTH_FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
}


def load_prod(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
    code = (
        "import django; django.setup(); from django.conf import settings; print(settings.DATABASES['default']['NAME'])"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        env={
            **clean,
            "PYTHONPATH": f"{ROOT / 'platform'}:{ROOT}",
            "DJANGO_SETTINGS_MODULE": "berth.settings.prod",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_production_refuses_the_default_secret_key():
    result = load_prod(BERTH_FIELD_ENCRYPTION_KEYS=GOOD["BERTH_FIELD_ENCRYPTION_KEYS"])
    assert result.returncode != 0
    assert "BERTH_SECRET_KEY must be set" in result.stderr


def test_production_refuses_the_default_encryption_key():
    result = load_prod(BERTH_SECRET_KEY=GOOD["BERTH_SECRET_KEY"])
    assert result.returncode != 0
    assert "BERTH_FIELD_ENCRYPTION_KEYS" in result.stderr


def test_production_starts_with_its_own_secrets_and_reads_database_url():
    result = load_prod(**GOOD, DATABASE_URL="postgres://berth@db.internal:5432/berth_prod")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "berth_prod"


@pytest.mark.parametrize("value", ["maybe", "2"])
def test_bad_boolean_is_a_clear_error(value):
    result = load_prod(**GOOD, BERTH_HTTPS=value)
    assert result.returncode != 0
    assert "BERTH_HTTPS must be true or false" in result.stderr
