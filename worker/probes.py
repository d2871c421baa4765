"""Health probes, run by the worker from outside the container (no curl needed in the image)."""

import http.client
import socket

from berth.applications.specs import HealthCheck

from .engine import Engine, EngineError


def probe(check: HealthCheck, *, address: str, port: int | None, engine: Engine, docker_id: str) -> tuple[bool, str]:
    """One probe: (healthy, what was seen)."""
    if check.type == "none":
        return True, "no health check"
    if check.type == "http":
        return _http(address, port, check)
    if check.type == "tcp":
        # A process type with a tcp check has a port (specs.parse_health), so its container publishes one.
        return _tcp(address, port, check.timeout_s)  # type: ignore[arg-type]
    try:
        ok = engine.exec_probe(docker_id, list(check.command), check.timeout_s)
    except EngineError as error:
        return False, f"health command failed to run: {error}"
    return ok, "health command exited 0" if ok else "health command exited non-zero"


def _http(address: str, port: int | None, check: HealthCheck) -> tuple[bool, str]:
    connection = http.client.HTTPConnection(address, port, timeout=check.timeout_s)
    try:
        connection.request("GET", check.path, headers={"User-Agent": "berth-health", "Connection": "close"})
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException) as error:
        return False, f"GET {check.path}: {error.__class__.__name__}: {error}"
    finally:
        connection.close()
    return status == check.expected_status, f"GET {check.path} answered {status}"


def _tcp(address: str, port: int, timeout_s: float) -> tuple[bool, str]:
    try:
        with socket.create_connection((address, port), timeout=timeout_s):
            return True, f"port {port} accepts connections"
    except OSError as error:
        return False, f"port {port}: {error}"
