"""factory_boy factories for Berth's models."""

import factory

from berth.applications.models import App
from berth.fleet.models import Container, DockerHost, Router, Size
from berth.routing.models import Domain
from berth.tenancy.models import Membership, Organization, User
from berth.tenancy.roles import Role

PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.test")
    name = factory.Faker("name")
    password = factory.django.Password(PASSWORD)


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    slug = factory.Sequence(lambda n: f"org-{n}")
    name = factory.Sequence(lambda n: f"Organization {n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organization = factory.SubFactory(OrganizationFactory)
    role = Role.DEVELOPER


class AppFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = App

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"app-{n}")
    description = "An app"


class SizeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Size
        django_get_or_create = ("name",)

    name = "small"
    memory_mb = 64
    cpu_millis = 250


class HostFactory(factory.django.DjangoModelFactory):
    """A host row only; tests that talk to an engine use the test bed's real hosts."""

    class Meta:
        model = DockerHost

    name = factory.Sequence(lambda n: f"host-{n}")
    engine_url = factory.Sequence(lambda n: f"tcp://10.99.0.{n % 250 + 1}:2376")
    address = factory.Sequence(lambda n: f"10.99.0.{n % 250 + 1}")
    memory_mb = 2048
    cpu_millis = 2000
    status = DockerHost.Status.UP


class RouterFactory(factory.django.DjangoModelFactory):
    """A router row only; tests that route requests use the `router` fixture's real one (tests/routers.py)."""

    class Meta:
        model = Router

    name = factory.Sequence(lambda n: f"router-{n}")
    admin_url = factory.Sequence(lambda n: f"unix:///run/berth/router-{n}/admin.sock")
    public_address = "203.0.113.10"
    http_port = 80
    https_port = 443


class DomainFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Domain

    app = factory.SubFactory(AppFactory)
    hostname = factory.Sequence(lambda n: f"www{n}.example.com")


class ContainerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Container

    docker_id = factory.Sequence(lambda n: f"{n:064x}")
    name = factory.Sequence(lambda n: f"container-{n}")
    organization = factory.SelfAttribute("app.organization")
    process_type = "web"
    index = 0
    state = Container.State.RUNNING
    health = Container.Health.HEALTHY
    published_port = 32768
