"""factory_boy factories for Berth's models."""

import factory

from berth.applications.models import App
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
