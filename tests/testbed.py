"""The multi-host test bed (docs/architecture.md#the-test-bed): Docker hosts on this machine, each with its own address.

testbed/hosts.sh does the work: host i is network namespace berth-h{i} with its own dockerd, whose
published ports answer on 10.250.{i}.2. tests/conftest.py loads this module as a plugin, so every
test can ask for `testbed_hosts`. The hosts stay up after the session (the next `up` finds them
ready in under a second); `testbed/hosts.sh down` removes them.
"""

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

HOSTS_SCRIPT = Path(__file__).resolve().parent.parent / "testbed" / "hosts.sh"
# Which hosts this run uses, by index. Two suites run side by side on different hosts (say
# BERTH_TEST_HOSTS=3,4) without removing each other's containers.
HOST_INDICES = [int(i) for i in os.environ.get("BERTH_TEST_HOSTS", "1,2").split(",") if i.strip()]
# The host whose engine remaps user namespaces (testbed/hosts.sh up --userns-remap): by default the one
# after the last of BERTH_TEST_HOSTS (h3 under `make test`), used by the tests that ask for it. It may also
# be one of BERTH_TEST_HOSTS, and then the fleet holds a remapping host.
USERNS_HOST_INDEX = int(os.environ.get("BERTH_TEST_USERNS_HOST") or max(HOST_INDICES) + 1)
# From nothing the script installs packages and builds images; a stuck engine is reported well before.
SCRIPT_TIMEOUT_S = 600


@dataclass(frozen=True)
class TestHost:
    """One Docker host of the test bed: the URL of its engine and the address its ports publish on."""

    __test__ = False  # a class named Test* in a test module is not a test class

    name: str
    engine_url: str
    address: str

    @property
    def index(self) -> int:
        return int(self.name.removeprefix("h"))


def host_by_index(index: int) -> TestHost:
    """Host `index` of the test bed, by the names testbed/hosts.sh gives it."""
    return TestHost(
        name=f"h{index}",
        engine_url=f"unix:///run/berth-testbed/h{index}/docker.sock",
        address=f"10.250.{index}.2",
    )


def hosts_script(*args: str) -> str:
    """Run testbed/hosts.sh; a failure fails the test with everything the script said."""
    command = [str(HOSTS_SCRIPT), *args]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as timeout:
        pytest.fail(f"{' '.join(command)} ran longer than {SCRIPT_TIMEOUT_S}s:\n{timeout.stdout}{timeout.stderr}")
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}{result.stderr}", pytrace=False)
    return result.stdout


@pytest.fixture(scope="session")
def testbed_hosts() -> list[TestHost]:
    """The test bed's hosts, up and holding the berth-test images. Never skips: a test bed that cannot
    come up fails the test with the script's output. The remapping host comes up with them."""
    hosts_script("up", str(max(*HOST_INDICES, USERNS_HOST_INDEX)), "--userns-remap", str(USERNS_HOST_INDEX))
    return [host_by_index(index) for index in HOST_INDICES]


@pytest.fixture(scope="session")
def userns_testbed_host(testbed_hosts) -> TestHost:
    """The test bed's host whose engine runs with --userns-remap=default (root in a container is host uid
    100000, the first of dockremap's /etc/subuid range)."""
    return host_by_index(USERNS_HOST_INDEX)


def stop_engine(index: int, *, kill: bool = False) -> None:
    """Stop host `index`'s dockerd: gracefully (its containers get their stop signal) or, with `kill`,
    SIGKILL it and everything it ran, like a power cut. Its data-root stays for start_engine."""
    hosts_script("stop-engine", str(index), *(["--kill"] if kill else []))


def start_engine(index: int) -> None:
    """Start host `index`'s dockerd again on the same data-root (same engine ID, same containers)."""
    hosts_script("start-engine", str(index))


@contextmanager
def engine_stopped(index: int, *, kill: bool = False) -> Iterator[None]:
    """Host `index`'s engine is down inside the block and up again after it, whatever the block did."""
    stop_engine(index, kill=kill)
    try:
        yield
    finally:
        start_engine(index)


def link_down(index: int) -> None:
    """Cut host `index` off the network: its published ports refuse at once ("No route to host").
    Its engine still answers on its unix socket."""
    hosts_script("link-down", str(index))


def link_up(index: int) -> None:
    hosts_script("link-up", str(index))


@contextmanager
def link_cut(index: int) -> Iterator[None]:
    """Host `index` is cut off the network inside the block and joined again after it, whatever the
    block did (link-up of a link that is up changes nothing, so the block may restore it early)."""
    link_down(index)
    try:
        yield
    finally:
        link_up(index)


# --- one host's engine over TLS and over ssh (testbed/hosts.sh tls-up / ssh-up) ---

TLS_DIR = Path("/var/lib/berth-testbed/tls")
SSH_DIR = Path("/var/lib/berth-testbed/ssh")


@dataclass(frozen=True)
class RemoteEngine:
    """The last test host's engine as Berth reaches it from afar: the URLs and what an operator registers."""

    host: TestHost
    tls_url: str
    ca_cert: str
    client_cert: str
    client_key: str
    ssh_url: str
    ssh_private_key: str
    ssh_host_key: str  # "ssh-ed25519 AAAA…", as ssh-keyscan shows it

    def tls_fields(self) -> dict:
        return {
            "engine_url": self.tls_url,
            "tls_ca_cert": self.ca_cert,
            "tls_client_cert": self.client_cert,
            "tls_client_key": self.client_key,
        }

    def ssh_fields(self) -> dict:
        return {"engine_url": self.ssh_url, "ssh_private_key": self.ssh_private_key, "ssh_host_key": self.ssh_host_key}


@pytest.fixture(scope="session")
def remote_engine(testbed_hosts) -> RemoteEngine:
    """The last of this run's hosts, also serving its engine over tcp://…:2376 (TLS) and ssh://…:22."""
    host = testbed_hosts[-1]
    hosts_script("tls-up", str(host.index))
    hosts_script("ssh-up", str(host.index))
    host_key = (SSH_DIR / f"h{host.index}" / "host_ed25519_key.pub").read_text().split()
    return RemoteEngine(
        host=host,
        tls_url=f"tcp://{host.address}:2376",
        ca_cert=(TLS_DIR / "ca.pem").read_text(),
        client_cert=(TLS_DIR / "client-cert.pem").read_text(),
        client_key=(TLS_DIR / "client-key.pem").read_text(),
        ssh_url=f"ssh://berth-testbed@{host.address}",
        ssh_private_key=(SSH_DIR / "client_ed25519").read_text(),
        ssh_host_key=" ".join(host_key[:2]),
    )
