"""The console's fixtures: an operator, a test client logged in as one, and a real Chromium.

The console's browser tests drive a real Chromium against the live server; the others use Django's test
client. Both log in as `operator`, a staff superuser with the factories' password.
"""

import pytest

from tests.browser import browser, page  # noqa: F401  (fixtures, used by name)
from tests.factories import UserFactory


@pytest.fixture
def operator(db):
    """An operator of the installation: staff and superuser, who may do anything in the console."""
    return UserFactory(is_staff=True, is_superuser=True, email="operator@example.test", name="Olga Operator")


@pytest.fixture
def operator_client(client, operator):
    """Django's test client, logged in as `operator`."""
    client.force_login(operator)
    return client
