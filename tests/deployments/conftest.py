"""The deploy engine's tests run against the test bed's real Docker hosts (DESIGN §6)."""

from tests.fleet import fleet, tenant  # noqa: F401  (fixtures)
from tests.testbed import testbed_hosts  # noqa: F401  (fixture)
