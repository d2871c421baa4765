"""Billing tests that meter real containers use the deploy tests' fleet on the test bed."""

from tests.fleet import fleet, tenant  # noqa: F401  (fixtures)
from tests.testbed import testbed_hosts  # noqa: F401  (fixture)
