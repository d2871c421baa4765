import pytest
from tests.console.test_console_app_pages import app  # noqa
from tests.console.rows import html_of, operator, operator_client  # noqa
pytestmark = pytest.mark.django_db
def test_peek(operator_client, app):
    html = html_of(operator_client, f"/console/applications/app/{app.pk}/change/")
    i = html.find('<div class="js-inline-admin-formset'); print(html[i:i+9000])
