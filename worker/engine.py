"""The one module that speaks the Docker Engine API (DESIGN §7: one seam to an engine).

Everything Berth asks of a host goes through `Engine`; callers get plain dicts and Berth's own
`EngineError`, never the docker package's types, so another engine driver could stand in.
"""

import contextlib
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import docker
from docker import errors as docker_errors
from docker.tls import TLSConfig
from docker.utils import parse_repository_tag

from berth.fleet.models import DockerHost

MANAGED_LABEL = "berth.managed"
API_TIMEOUT_S = 30


class EngineError(Exception):
    """A host did not do what was asked. `transient` says whether trying again may help."""

    def __init__(self, message: str, *, transient: bool):
        super().__init__(message)
        self.transient = transient


class ImageNotFound(EngineError):
    def __init__(self, message: str):
        super().__init__(message, transient=False)


@contextlib.contextmanager
def _translate_errors(what: str):
    try:
        yield
    except docker_errors.ImageNotFound as error:
        raise ImageNotFound(f"{what}: {error.explanation or error}") from None
    except docker_errors.APIError as error:
        transient = error.status_code is None or error.status_code >= 500
        raise EngineError(f"{what}: {error.explanation or error}", transient=transient) from None
    except (docker_errors.DockerException, OSError) as error:
        raise EngineError(f"{what}: {error}", transient=True) from None


def _absent_is_fine():
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


@dataclass(frozen=True)
class ObservedContainer:
    """What one engine says about one of Berth's containers."""

    docker_id: str
    name: str
    labels: dict
    state: str  # created | running | paused | restarting | removing | exited | dead
    exit_code: int | None
    started_at: datetime | None
    finished_at: datetime | None
    published_port: int | None
    image_id: str


class Engine:
    """A connection to one Docker host."""

    def __init__(self, host: DockerHost, *, timeout: int = API_TIMEOUT_S):
        self.host = host
        self._tmp = None
        with _translate_errors(f"connecting to {host.name} at {host.engine_url}"):
            self.api = docker.APIClient(
                base_url=host.engine_url,
                tls=self._tls(host),
                timeout=timeout,
                version="auto",
                use_ssh_client=host.engine_url.startswith("ssh://"),
            )

    def _tls(self, host: DockerHost):
        if not host.engine_url.startswith("tcp://") or not host.tls_client_cert:
            return None
        self._tmp = tempfile.TemporaryDirectory(prefix="berth-tls-")
        paths = {}
        for name, pem in {"ca": host.tls_ca_cert, "cert": host.tls_client_cert, "key": host.tls_client_key}.items():
            path = Path(self._tmp.name) / f"{name}.pem"
            path.write_text(pem)
            path.chmod(0o600)
            paths[name] = str(path)
        # The engine's certificate is always verified: against the host's CA, or the system's.
        return TLSConfig(client_cert=(paths["cert"], paths["key"]), verify=paths["ca"] if host.tls_ca_cert else True)

    def close(self) -> None:
        self.api.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
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

    def ensure_image(self, image: str, auth: dict | None = None) -> str:
        """The local image id of `image`, pulling it if the host does not have it.

        `auth` ({"username", "password"}) is the login to the image's registry; without one the pull
        is anonymous. Never None to docker-py: it would fall back to the logins in the worker's own
        ~/.docker/config.json and lend the operator's registry access to every tenant.
        """
        with _translate_errors(f"looking up image {image} on {self.host.name}"):
            try:
                return self.api.inspect_image(image)["Id"]
            except docker_errors.ImageNotFound:
                pass
        what = f"pulling {image} on {self.host.name} " + (f"as {auth['username']}" if auth else "without credentials")
        try:
            with _translate_errors(what):
                # docker-py splits the tag or digest off (default "latest"); the engine reports a
                # failure that happens after the pull began (a refused layer) in the stream, not as a status.
                for event in self.api.pull(image, auth_config=auth or {}, stream=True, decode=True):
                    if "error" in event:
                        raise EngineError(f"{what}: {event['error']}", transient=False)
                return self.api.inspect_image(image)["Id"]
        except EngineError as error:
            raise ImageNotFound(f"Image {image} is not on {self.host.name} and could not be pulled: {error}") from None

    def image_digest(self, image_id: str, image: str = "") -> str:
        """The registry's digest of the image (its manifest's sha256), preferring the repository `image`
        names; the image id when the image never came from a registry (built or loaded on the host)."""
        with _translate_errors("reading an image's digest"):
            digests = self.api.inspect_image(image_id).get("RepoDigests") or []
        repository = parse_repository_tag(image)[0] if image else ""
        ours = [d for d in digests if d.split("@", 1)[0] == repository]
        return (ours or digests)[0].split("@", 1)[1] if digests else image_id

    # --- containers ---

    def run(self, spec: dict) -> str:
        """Create and start a container from a spec made by worker.containers; returns its id."""
        with _translate_errors(f"starting {spec['name']} on {self.host.name}"):
            host_config = self.api.create_host_config(**spec["host_config"])
            created = self.api.create_container(
                image=spec["image"],
                name=spec["name"],
                command=spec["command"] or None,
                environment=spec["environment"],
                labels=spec["labels"],
                ports=spec["ports"],
                host_config=host_config,
                networking_config=self.api.create_networking_config(
                    {spec["network"]: self.api.create_endpoint_config()}
                ),
                stop_signal="SIGTERM",
            )
            self.api.start(created["Id"])
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

    def logs_tail(self, docker_id: str, lines: int = 5) -> str:
        with _translate_errors("reading logs"):
            try:
                return self.api.logs(docker_id, tail=lines).decode(errors="replace").strip()
            except docker_errors.NotFound:
                return ""

    def exec_probe(self, docker_id: str, command: list[str], timeout_s: float) -> bool:
        """Run a health command inside the container; healthy when it exits 0."""
        with _translate_errors("running a health command"):
            exec_id = self.api.exec_create(docker_id, command, stdout=False, stderr=False)["Id"]
            self.api.exec_start(exec_id)
            return self.api.exec_inspect(exec_id).get("ExitCode") == 0

    def events(self, since: datetime | None = None):
        """A blocking stream of container events for Berth's containers."""
        with _translate_errors(f"following events on {self.host.name}"):
            return self.api.events(since=since, decode=True, filters={"type": "container", "label": MANAGED_LABEL})
