"""`manage.py bootstrap`, which `make run` calls: a first operator, sizes with prices, the local engine
as a host, and a demo app with a release queued; running it again changes nothing."""

import io
import re

import pytest
from django.core.management import call_command

from berth.billing.models import SizePrice
from berth.deployments.models import Deployment
from berth.fleet.models import DockerHost, Size
from berth.tenancy.models import User


def bootstrap() -> str:
    out = io.StringIO()
    call_command("bootstrap", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_bootstrap_prepares_a_usable_installation_once():
    first = bootstrap()
    assert "Console" in first and "/console/" in first and "berth_" in first
    # The dashboard's sign-in: the demo tenant's password, printed once, signs in.
    demo_password = re.search(r"Dashboard \S+/ +sign in as demo@berth.local +(\S+)", first).group(1)
    assert User.objects.get(email="demo@berth.local").check_password(demo_password)
    operator = User.objects.get(email="operator@berth.local")
    assert operator.is_staff and operator.is_superuser
    assert set(Size.objects.values_list("name", flat=True)) == {"small", "medium", "large"}
    assert SizePrice.objects.count() == 3 and Size.objects.get(is_default=True).name == "small"
    assert DockerHost.objects.get().engine_url == "unix:///var/run/docker.sock"
    assert Deployment.objects.get().app.name == "hello"
    second = bootstrap()
    assert "(unchanged)" in second and "berth_" not in second
    assert (
        User.objects.count(),
        SizePrice.objects.count(),
        DockerHost.objects.count(),
        Deployment.objects.count(),
    ) == (2, 3, 1, 1)
