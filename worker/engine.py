"""The one module that speaks the Docker Engine API (docs/architecture.md#invariants: one seam to an engine).

Everything Berth asks of a host goes through `Engine`; callers get plain dicts and Berth's own
`EngineError`, never the docker package's types, so another engine driver could stand in.
"""

import base64
import contextlib
import hashlib
import io
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import paramiko
from docker import errors as docker_errors
from docker.constants import DEFAULT_DOCKER_API_VERSION
from docker.tls import TLSConfig
from docker.transport import SSHHTTPAdapter
from docker.types import CancellableStream
from docker.utils import parse_repository_tag

from berth.fleet.models import DockerHost

MANAGED_LABEL = "berth.managed"
API_TIMEOUT_S = 30
# Containers whose counters are read at the same time (Engine.stats_many), and connections an ssh://
# engine gets (each is an ssh channel running `docker system dial-stdio` on the host).
STATS_PARALLEL = 32
SSH_CONNECTIONS = 4


class EngineError(Exception):
    """A host did not do what was asked. `transient` says whether trying again may help; `field` names
    the part of the host's registration that is wrong, when the error says which (a CA, a key)."""

    def __init__(self, message: str, *, transient: bool, field: str | None = None):
        super().__init__(message)
        self.transient = transient
        self.field = field


# Substrings of OpenSSL's messages -> the registration field at fault and what to tell the operator.
_TLS_FAULTS = [
    (("IP address mismatch", "Hostname mismatch"), "engine_url", "The engine's certificate is not for this address"),
    (("CERTIFICATE_VERIFY_FAILED",), "tls_ca_cert", "The engine's certificate is not signed by this CA"),
    (
        ("unknown ca", "bad certificate", "certificate required", "CERTIFICATE_REQUIRED", "certificate unknown"),
        "tls_client_cert",
        "The engine refused this client certificate",
    ),
]


def _tls_fault(error: Exception) -> EngineError | None:
    text = str(error)
    for needles, field, reason in _TLS_FAULTS:
        if any(needle in text for needle in needles):
            return EngineError(f"{reason} ({text[:300]})", transient=False, field=field)
    return None


class ImageNotFound(EngineError):
    def __init__(self, message: str):
        super().__init__(message, transient=False)


@contextlib.contextmanager
def _translate_errors(what: str) -> Iterator[None]:
    try:
        yield
    except docker_errors.ImageNotFound as error:
        raise ImageNotFound(f"{what}: {error.explanation or error}") from None
    except docker_errors.APIError as error:
        transient = error.status_code is None or error.status_code >= 500
        raise EngineError(f"{what}: {error.explanation or error}", transient=transient) from None
    except HostKeyMismatch as error:
        raise EngineError(f"{what}: {error}", transient=False, field="ssh_host_key") from None
    except paramiko.AuthenticationException:
        message = f"{what}: the ssh server did not accept this private key for the user in the engine URL"
        raise EngineError(message, transient=False, field="ssh_private_key") from None
    except (docker_errors.DockerException, OSError, paramiko.SSHException) as error:
        fault = _tls_fault(error)
        if fault is not None:
            raise EngineError(f"{what}: {fault}", transient=False, field=fault.field) from None
        raise EngineError(f"{what}: {error}", transient=True, field="engine_url") from None


def _absent_is_fine() -> contextlib.suppress:
    """Stopping or removing a container that is already gone has done what was asked."""
    return contextlib.suppress(docker_errors.NotFound)


def parse_docker_time(value: str | None) -> datetime | None:
    """Docker's RFC 3339 times (nanoseconds, 'Z'); its zero time means 'never'."""
    if not value or value.startswith("0001-01-01"):
        return None
    stamp, _, fraction = value.rstrip("Z").partition(".")
    fraction = fraction.split("+")[0].split("-")[0]
    parsed = datetime.fromisoformat(stamp).replace(tzinfo=UTC)
    return parsed.replace(microsecond=int((fraction + "000000")[:6])) if fraction else parsed


def docker_ns(value: str) -> int | None:
    """Nanoseconds since the epoch of one of Docker's RFC 3339 timestamps with nanoseconds
    (`2026-12-06T11:24:12.123456789Z`, as `logs --timestamps` writes them); None for anything else."""
    stamp, _, fraction = value.rstrip("Z").partition(".")
    try:
        seconds = int(datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp())
    except ValueError:
        return None
    digits = fraction[:9]
    return seconds * 1_000_000_000 + (int(digits.ljust(9, "0")) if digits.isdigit() else 0)


# Docker's own container states (an ObservedContainer's and list_managed's "state"), not Container.State.
DOCKER_RUNNING = "running"
DOCKER_DEAD = "dead"
DOCKER_ENDED = ("exited", DOCKER_DEAD)


@dataclass(frozen=True)
class ObservedContainer:
    """What one engine says about one of Berth's containers."""

    docker_id: str
    name: str
    labels: dict
    state: str  # created | running | paused | restarting | removing | exited | dead
    exit_code: int | None
    oom_killed: bool
    started_at: datetime | None
    finished_at: datetime | None
    published_port: int | None
    image_id: str


@dataclass(frozen=True)
class ContainerStats:
    """One reading of a container's counters: CPU time used since it started (ns), memory in use and its
    limit (bytes), at the host's clock."""

    read_at: datetime
    cpu_ns: int
    memory_bytes: int
    memory_limit_bytes: int


@dataclass(frozen=True)
class LocalImage:
    """An image in a host's store: its id, the digest Berth records for containers run from it, and the
    user its config says it runs as ("" when it says none, which is root)."""

    image_id: str
    digest: str
    user: str = ""

    @classmethod
    def of(cls, inspected: dict, image: str) -> "LocalImage":
        """From `docker image inspect`: the registry's digest (its manifest's sha256), preferring the
        repository `image` names; the image id when it never came from a registry (built or loaded)."""
        digests = inspected.get("RepoDigests") or []
        repository = parse_repository_tag(image)[0]
        ours = [d for d in digests if d.split("@", 1)[0] == repository]
        digest = (ours or digests)[0].split("@", 1)[1] if digests else inspected["Id"]
        return cls(image_id=inspected["Id"], digest=digest, user=(inspected.get("Config") or {}).get("User") or "")


class HostKeyMismatch(paramiko.SSHException):
    """The ssh server showed a host key other than the one the host was registered with."""


class _PinnedHostKey(paramiko.MissingHostKeyPolicy):
    """Accept the server's key only if it is the registered one. Berth keeps no known_hosts file, so
    paramiko asks this policy about every server: there is no trust on first use."""

    def __init__(self, expected: str):
        self.expected = expected

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if not host_key_matches(self.expected, key):
            raise HostKeyMismatch(
                f"the ssh server at {hostname} showed host key {key.get_name()} {ssh_fingerprint(key)}, "
                "not the one registered for this host"
            )


def ssh_fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint, as `ssh-keygen -lf` prints it."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


def host_key_matches(expected: str, key: paramiko.PKey) -> bool:
    """`expected` is a public key ("ssh-ed25519 AAAA…") or a fingerprint ("SHA256:…"), as registered."""
    if expected.startswith("SHA256:"):
        return expected == ssh_fingerprint(key)
    return expected.split()[:2] == [key.get_name(), key.get_base64()]


def _ssh_private_key(text: str) -> paramiko.PKey:
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text))
        except paramiko.SSHException:
            continue
    raise EngineError("The ssh private key cannot be read", transient=False, field="ssh_private_key")


class _PinnedSSHAdapter(SSHHTTPAdapter):
    """docker-py's paramiko transport (it runs `docker system dial-stdio` on the host), given the host's
    own key and host key instead of the worker's ~/.ssh: no agent, no key files, no known_hosts."""

    def __init__(self, base_url: str, *, private_key: str, host_key: str, timeout: int | None):
        self._pkey, self._host_key, self._connect_timeout = _ssh_private_key(private_key), host_key, timeout
        # None (no timeout) reaches requests as for APIClient below; types-docker allows only an int.
        super().__init__(
            base_url,
            timeout=timeout,  # type: ignore[arg-type]
            pool_connections=1,
            max_pool_size=SSH_CONNECTIONS,
        )

    def _create_paramiko_client(self, base_url: str) -> None:
        url = urllib.parse.urlparse(base_url)
        self.ssh_client = paramiko.SSHClient()
        self.ssh_client.set_missing_host_key_policy(_PinnedHostKey(self._host_key))
        self.ssh_params = {
            "hostname": url.hostname,
            "port": url.port or 22,
            "username": url.username,
            "pkey": self._pkey,
            "allow_agent": False,
            "look_for_keys": False,
            "timeout": self._connect_timeout,
            "banner_timeout": self._connect_timeout,
            "auth_timeout": self._connect_timeout,
        }


def _client(base_url: str, *, tls: TLSConfig | bool, timeout: int | None) -> docker.APIClient:
    """An API client that takes nothing from the environment: requests would otherwise let
    REQUESTS_CA_BUNDLE replace the host's CA, and HTTPS_PROXY route the Engine API through a proxy.
    Its API version is asked for once the transport is in place (Engine.__init__)."""
    # docker-py hands `timeout` to requests, where None means none; types-docker allows only an int.
    api = docker.APIClient(
        base_url=base_url,
        tls=tls,
        timeout=timeout,  # type: ignore[arg-type]
        # As many connections kept as counters read at once (Engine.stats_many); docker-py keeps 10.
        max_pool_size=STATS_PARALLEL,
        version=DEFAULT_DOCKER_API_VERSION,
    )
    api.trust_env = False
    return api


# An engine upgraded in the meantime still speaks the older version it was first asked in.
API_VERSION_TTL_S = 300.0
_api_versions: dict[str, tuple[str, float]] = {}


class Engine:
    """A connection to one Docker host: unix socket, tcp:// with TLS client certificates, or ssh://."""

    def __init__(self, host: DockerHost, *, timeout: int | None = API_TIMEOUT_S) -> None:
        """`timeout=None` waits as long as a call takes (the events stream)."""
        self.host = host
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        try:
            with _translate_errors(f"connecting to {host.name} at {host.engine_url}"):
                if host.engine_url.startswith("ssh://"):
                    self.api = self._ssh_client(host, timeout)
                else:
                    self.api = _client(host.engine_url, tls=self._tls(host), timeout=timeout)
                # docker-py's own attribute for the version it speaks, private and so absent from types-docker.
                self.api._version = self._api_version(host.engine_url)  # type: ignore[attr-defined]
        except EngineError:
            self.close()
            raise

    def _api_version(self, engine_url: str) -> str:
        """The engine's API version, asked once per API_VERSION_TTL_S per engine and process: every
        Engine() would otherwise cost a round trip before its first real call."""
        known = _api_versions.get(engine_url)
        if known is not None and time.monotonic() - known[1] < API_VERSION_TTL_S:
            return known[0]
        version = self.api._retrieve_server_version()  # type: ignore[attr-defined]  # docker-py, private
        _api_versions[engine_url] = (version, time.monotonic())
        return version

    def _tls(self, host: DockerHost) -> TLSConfig | bool:
        if not host.engine_url.startswith("tcp://"):
            return False
        if not (host.tls_ca_cert and host.tls_client_cert and host.tls_client_key):
            # The Engine API is root on the host: never spoken over TCP unencrypted or unverified.
            raise EngineError("A tcp:// engine needs a CA, a client certificate and its key", transient=False)
        # The ssl module reads certificates and keys from files only; these live as long as the connection.
        self._tmp = tempfile.TemporaryDirectory(prefix="berth-tls-")
        paths = {}
        for name, pem in {"ca": host.tls_ca_cert, "cert": host.tls_client_cert, "key": host.tls_client_key}.items():
            path = Path(self._tmp.name) / f"{name}.pem"
            path.touch(mode=0o600)
            path.write_text(pem)
            paths[name] = str(path)
        # The engine's certificate is verified against the host's own CA only, never the system's.
        return TLSConfig(client_cert=(paths["cert"], paths["key"]), ca_cert=paths["ca"], verify=True)

    @staticmethod
    def _ssh_client(host: DockerHost, timeout: int | None) -> docker.APIClient:
        if not (host.ssh_private_key and host.ssh_host_key):
            raise EngineError("An ssh:// engine needs a private key and the server's host key", transient=False)
        adapter = _PinnedSSHAdapter(
            host.engine_url, private_key=host.ssh_private_key, host_key=host.ssh_host_key, timeout=timeout
        )
        # An APIClient made for ssh:// would build (and connect) docker-py's own adapter from ~/.ssh
        # first; this one starts with no transport and is given ours, mounted as docker-py mounts its own.
        api = _client("http://127.0.0.1:9", tls=False, timeout=timeout)
        api._custom_adapter = adapter  # type: ignore[attr-defined]  # docker-py, private
        api.mount("http+docker://ssh", adapter)
        api._unmount("http://", "https://")  # type: ignore[attr-defined]  # docker-py, private
        api.base_url = "http+docker://ssh"
        return api

    def close(self) -> None:
        if getattr(self, "api", None) is not None:
            self.api.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the host ---

    def info(self) -> dict:
        with _translate_errors(f"asking {self.host.name} for its version"):
            version = self.api.version()
            info = self.api.info()
        return {
            "version": version.get("Version", ""),
            "api_version": version.get("ApiVersion", ""),
            "engine_id": info.get("ID", ""),
            "memory_bytes": info.get("MemTotal", 0),
            "cpus": info.get("NCPU", 0),
            "clock": info.get("SystemTime", ""),
            # dockerd --userns-remap: root in a container is an unprivileged user on the host.
            "userns_remap": any(option.split(",")[0] == "name=userns" for option in info.get("SecurityOptions") or []),
        }

    def ensure_network(self, name: str, labels: dict) -> None:
        with _translate_errors(f"creating network {name} on {self.host.name}"):
            # Docker's name filter matches substrings ("berth-org-7" finds "berth-org-71"): compare exactly.
            if any(network["Name"] == name for network in self.api.networks(names=[name])):
                return
            try:
                self.api.create_network(name, driver="bridge", labels=labels, check_duplicate=True)
            except docker_errors.APIError as error:
                if error.status_code != 409:  # 409: created at the same moment by another worker
                    raise

    def prune_networks(self, older_than: str = "10m") -> list[str]:
        """Remove Berth's networks no container uses (an organization that left the host); a young
        one may be about to get its first container, so only those older than `older_than` go."""
        with _translate_errors(f"pruning networks on {self.host.name}"):
            pruned = self.api.prune_networks(filters={"label": f"{MANAGED_LABEL}=true", "until": older_than})
        return pruned.get("NetworksDeleted") or []

    def local_image(self, image: str) -> "LocalImage | None":
        """The host's copy of `image`, or None when it has none; never pulls."""
        with _translate_errors(f"looking up image {image} on {self.host.name}"):
            try:
                return LocalImage.of(self.api.inspect_image(image), image)
            except docker_errors.ImageNotFound:
                return None

    def ensure_image(self, image: str, auth: dict | None = None, *, always_pull: bool = False) -> "LocalImage":
        """The host's copy of `image` (its id and digest), pulling it if the host does not have it
        (or, with `always_pull`, even if it does: the registry then checks `auth` against the image).

        `auth` ({"username", "password"}) is the login to the image's registry; without one the pull
        is anonymous. Never None to docker-py: it would fall back to the logins in the worker's own
        ~/.docker/config.json and lend the operator's registry access to every tenant.
        """
        if not always_pull:
            found = self.local_image(image)
            if found is not None:
                return found
        what = f"pulling {image} on {self.host.name} " + (f"as {auth['username']}" if auth else "without credentials")
        try:
            with _translate_errors(what):
                # docker-py splits the tag or digest off (default "latest"); the engine reports a
                # failure that happens after the pull began (a refused layer) in the stream, not as a status.
                for event in self.api.pull(image, auth_config=auth or {}, stream=True, decode=True):
                    if "error" in event:
                        raise EngineError(f"{what}: {event['error']}", transient=False)
                return LocalImage.of(self.api.inspect_image(image), image)
        except EngineError as error:
            where = "was pulled again for this organization" if always_pull else f"is not on {self.host.name}"
            raise ImageNotFound(f"Image {image} {where} and could not be pulled: {error}") from None

    # --- containers ---

    def run(self, spec: dict) -> str:
        """Create and start a container from a spec made by worker.containers; returns its id.

        A reconcile pass prunes networks no container uses, so an organization's network that was
        idle may vanish between ensure_network and here: it is made again, once.
        """
        with _translate_errors(f"starting {spec['name']} on {self.host.name}"):
            try:
                return self._create_and_start(spec)
            except docker_errors.NotFound as error:
                if "network" not in str(error.explanation).lower():
                    raise
            self.ensure_network(spec["network"], spec["network_labels"])
            return self._create_and_start(spec)

    def _create_and_start(self, spec: dict) -> str:
        created = self.api.create_container(
            image=spec["image"],
            name=spec["name"],
            user=spec.get("user"),
            command=spec["command"] or None,
            environment=spec["environment"],
            labels=spec["labels"],
            ports=spec["ports"],
            host_config=self.api.create_host_config(**spec["host_config"]),
            # docker-py takes {network: endpoint config}; types-docker says a single EndpointConfig.
            networking_config=self.api.create_networking_config(
                {spec["network"]: self.api.create_endpoint_config()}  # type: ignore[arg-type]
            ),
            stop_signal="SIGTERM",
        )
        try:
            self.api.start(created["Id"])
        except docker_errors.APIError:
            with _absent_is_fine():  # nothing half-made stays behind, and the name is free again
                self.api.remove_container(created["Id"], force=True)
            raise
        return created["Id"]

    def inspect(self, docker_id: str) -> ObservedContainer | None:
        with _translate_errors(f"inspecting {docker_id[:12]} on {self.host.name}"):
            try:
                data = self.api.inspect_container(docker_id)
            except docker_errors.NotFound:
                return None
        state = data["State"]
        ports = data["NetworkSettings"].get("Ports") or {}
        published = next((int(b[0]["HostPort"]) for b in ports.values() if b), None)
        return ObservedContainer(
            docker_id=data["Id"],
            name=data["Name"].lstrip("/"),
            labels=data["Config"].get("Labels") or {},
            state=state["Status"],
            exit_code=state.get("ExitCode"),
            oom_killed=bool(state.get("OOMKilled")),
            started_at=parse_docker_time(state.get("StartedAt")),
            finished_at=parse_docker_time(state.get("FinishedAt")),
            published_port=published,
            image_id=data.get("Image", ""),
        )

    def list_managed(self) -> list[dict]:
        """A cheap summary (id, state, labels) of every container Berth started on this host."""
        with _translate_errors(f"listing containers on {self.host.name}"):
            rows = self.api.containers(all=True, filters={"label": MANAGED_LABEL})
        return [{"docker_id": r["Id"], "state": r["State"], "labels": r.get("Labels") or {}} for r in rows]

    def stop(self, docker_id: str, timeout_s: int = 10) -> None:
        """SIGTERM, then SIGKILL after `timeout_s` (graceful stop)."""
        with _translate_errors(f"stopping {docker_id[:12]} on {self.host.name}"), _absent_is_fine():
            self.api.stop(docker_id, timeout=timeout_s)

    def remove(self, docker_id: str) -> None:
        with _translate_errors(f"removing {docker_id[:12]} on {self.host.name}"), _absent_is_fine():
            try:
                self.api.remove_container(docker_id, force=True)
            except docker_errors.APIError as error:
                # Someone else is removing it (409): it will be gone, which is what was asked.
                if error.status_code != 409 or "already in progress" not in str(error.explanation):
                    raise

    def stats(self, docker_id: str) -> "ContainerStats | None":
        """One reading of a running container's counters, read once (Docker's `one-shot`, not the stream
        `docker stats` keeps open, nor the second read it waits a second for); None if it is not running."""
        with _translate_errors(f"reading the counters of {docker_id[:12]} on {self.host.name}"):
            try:
                data = self.api.stats(docker_id, stream=False, one_shot=True)
            except docker_errors.NotFound:
                return None
        read_at = parse_docker_time(data.get("read"))
        cpu = (data.get("cpu_stats") or {}).get("cpu_usage") or {}
        memory = data.get("memory_stats") or {}
        if read_at is None or "total_usage" not in cpu or "usage" not in memory:
            return None  # a container that stopped in the meantime has no counters
        # As `docker stats` shows memory: less the page cache the kernel can take back (cgroup v2, then v1).
        details = memory.get("stats") or {}
        cache = details.get("inactive_file", details.get("total_inactive_file", 0))
        return ContainerStats(
            read_at=read_at,
            cpu_ns=int(cpu["total_usage"]),
            memory_bytes=max(int(memory["usage"]) - int(cache), 0),
            memory_limit_bytes=int(memory.get("limit") or 0),
        )

    def stats_many(self, docker_ids: list[str]) -> dict[str, "ContainerStats | None"]:
        """A reading of each container (`stats`), asked at once, STATS_PARALLEL at a time.

        Engines before Docker 23 answer a one-shot read only at their stats collector's next tick, once
        a second, and answer every read waiting at that tick together: one after the other, a host of
        100 containers would take 100 s, at once 4 s (docs/metrics.md#figures). A container whose read
        failed is None; if every read failed, the engine's error is raised."""
        if not docker_ids:
            return {}
        parallel = SSH_CONNECTIONS if self.host.engine_url.startswith("ssh://") else STATS_PARALLEL
        errors: list[EngineError] = []

        def read(docker_id: str) -> "ContainerStats | None":
            try:
                return self.stats(docker_id)
            except EngineError as error:
                errors.append(error)
                return None

        with ThreadPoolExecutor(max_workers=min(parallel, len(docker_ids))) as pool:
            found = dict(zip(docker_ids, pool.map(read, docker_ids), strict=True))
        if len(errors) == len(docker_ids):
            raise errors[0]
        return found

    def logs_tail(self, docker_id: str, lines: int = 5) -> str:
        with _translate_errors("reading logs"):
            try:
                return self.api.logs(docker_id, tail=lines).decode(errors="replace").strip()
            except docker_errors.NotFound:
                return ""

    def read_logs(self, docker_id: str, since_ns: int | None = None) -> list[tuple[str, int, bytes]]:
        """What a container printed (after `since_ns`, when given) up to now, without following: (stream,
        Docker's timestamp in ns, line) in the order printed, stdout's and stderr's lines merged by their
        timestamps. [] for a container the engine no longer knows."""
        since = None if since_ns is None else max(0.0, (since_ns - 1_000_000) / 1e9)  # a margin: it is a float
        found: list[tuple[str, int, bytes]] = []
        with _translate_errors("reading logs"):
            for stream in ("stdout", "stderr"):
                try:
                    raw = self.api.logs(
                        docker_id, stdout=stream == "stdout", stderr=stream == "stderr", timestamps=True, since=since
                    )
                except docker_errors.NotFound:
                    return []
                for line in raw.split(b"\n"):
                    stamp, _, text = line.partition(b" ")
                    ns = docker_ns(stamp.decode(errors="replace"))
                    if ns is not None and (since_ns is None or ns > since_ns):
                        found.append((stream, ns, text))
        found.sort(key=lambda entry: entry[1])  # stable: lines of one stream keep their order
        return found

    def exec_probe(self, docker_id: str, command: list[str], timeout_s: float) -> bool:
        """Run a health command inside the container; healthy when it exits 0 within `timeout_s`.

        With no stream attached, the engine may answer the start before the command has ended (its exit
        code is then still null): the command is looked at until it has, or its time is up."""
        deadline = time.monotonic() + timeout_s
        with _translate_errors("running a health command"):
            exec_id = self.api.exec_create(docker_id, command, stdout=False, stderr=False)["Id"]
            self.api.exec_start(exec_id)
            pause = 0.005
            while (state := self.api.exec_inspect(exec_id)).get("Running") and time.monotonic() < deadline:
                time.sleep(pause)
                pause = min(pause * 2, 0.1)
            return not state.get("Running") and state.get("ExitCode") == 0

    def events(self, since: datetime | None = None) -> "CancellableStream[dict[str, Any]]":
        """A blocking stream of container events for Berth's containers."""
        with _translate_errors(f"following events on {self.host.name}"):
            return self.api.events(since=since, decode=True, filters={"type": "container", "label": MANAGED_LABEL})
