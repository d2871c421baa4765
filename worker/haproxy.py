"""A router's HAProxy, through its runtime API (the "stats socket"): read what it serves, change it in place.

Nothing here reloads HAProxy: servers, weights, drain states and map entries change at run time, so no
client connection is closed by a route change (docs/routing.md).
"""

import csv
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

# Commands sent over one connection at most: HAProxy answers each before reading the next, and the
# answers must not fill the socket's buffer while commands are still being written.
BATCH = 100

# Bits of `srv_admin_state` (HAProxy's SRV_ADMF_*): put in maintenance, or draining, by the runtime API.
FORCED_MAINT = 0x01
FORCED_DRAIN = 0x08


class RouterUnreachable(Exception):
    """The router's admin endpoint did not answer."""


class RouterRefused(Exception):
    """HAProxy answered a command with an error."""


@dataclass(frozen=True)
class LiveServer:
    backend: str
    name: str
    address: str
    port: int
    weight: int
    admin_state: int

    @property
    def draining(self) -> bool:
        return bool(self.admin_state & (FORCED_DRAIN | FORCED_MAINT))


class RuntimeAPI:
    """One router's runtime API: `unix:///path/admin.sock` or `tcp://127.0.0.1:PORT`."""

    def __init__(self, url: str, timeout: float = 2.0):
        self.url = url
        self.timeout = timeout

    def run(self, commands: list[str]) -> list[str]:
        """Each command's answer, in order."""
        answers: list[str] = []
        for start in range(0, len(commands), BATCH):
            answers += self._exchange(commands[start : start + BATCH])
        return answers

    def _connect(self) -> socket.socket:
        parts = urlsplit(self.url)
        try:
            if parts.scheme == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.timeout)
                sock.connect(parts.path)
            elif parts.scheme == "tcp" and parts.hostname and parts.port:
                sock = socket.create_connection((parts.hostname, parts.port), timeout=self.timeout)
            else:
                raise RouterUnreachable(f"{self.url} is not a unix:// or tcp:// admin endpoint")
        except OSError as error:
            raise RouterUnreachable(f"{self.url}: {error.strerror or error}") from None
        return sock

    def _exchange(self, commands: list[str]) -> list[str]:
        # Prompt mode: every answer ends with the prompt, so answers can be told apart on one connection.
        payload = "prompt\n" + "".join(f"{command}\n" for command in commands) + "quit\n"
        chunks = []
        with self._connect() as sock:
            try:
                sock.sendall(payload.encode())
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
            except OSError as error:
                raise RouterUnreachable(f"{self.url}: {error.strerror or error}") from None
        parts = b"".join(chunks).decode(errors="replace").split("\n> ")
        answers = [part.removesuffix("\n") for part in parts[1 : 1 + len(commands)]]
        if len(answers) != len(commands):
            raise RouterUnreachable(f"{self.url} closed the connection after {len(answers)} of {len(commands)} answers")
        return answers

    # Reading: each method asks one thing; a caller that needs several asks them in one `run` and parses
    # the answers with the functions below.

    def backends(self) -> list[str]:
        return parse_backends(self.run(["show backend"])[0])

    def map_paths(self) -> tuple[str, str]:
        return parse_map_paths(self.run(["show map"])[0])

    def map_entries(self, path: str) -> dict[str, str]:
        return parse_map(self.run([f"show map {path}"])[0])

    def servers(self, backend: str | None = None) -> list[LiveServer]:
        return parse_servers(self.run([servers_command(backend)])[0])

    def sessions(self, backend: str | None = None) -> dict[tuple[str, str], int]:
        return parse_sessions(self.run([sessions_command(backend)])[0])

    def backend_stats(self) -> tuple[str, list["BackendStats"]]:
        """Which life of HAProxy answered (`parse_life`), and every backend's counters in that life."""
        info, stats = self.run(["show info", backend_stats_command()])
        return parse_life(info), parse_backend_stats(stats)


def servers_command(backend: str | None = None) -> str:
    return f"show servers state {backend}" if backend else "show servers state"


def sessions_command(backend: str | None = None) -> str:
    return f"show stat {backend or -1} 4 -1"


def parse_backends(answer: str) -> list[str]:
    return [line for line in answer.splitlines() if line and not line.startswith("#")]


def parse_map(answer: str) -> dict[str, str]:
    """`show map <path>`: "0x55… key value" a line."""
    entries = {}
    for line in answer.splitlines():
        fields = line.split()
        if len(fields) == 3:
            entries[fields[1]] = fields[2]
    return entries


def parse_map_paths(answer: str) -> tuple[str, str]:
    """The router's two maps from `show map`, as it names them (the files it was started with)."""
    # "12 (/path/hosts.map) pattern loaded from file …"
    paths = [line.split()[1].strip("()") for line in answer.splitlines() if line and not line.startswith("#")]
    hosts = next((p for p in paths if p.endswith("/hosts.map")), None)
    https = next((p for p in paths if p.endswith("/https.map")), None)
    if hosts is None or https is None:
        raise RouterRefused("the router has no hosts.map and https.map: was it set up by `manage.py router configure`?")
    return hosts, https


def parse_servers(answer: str) -> list[LiveServer]:
    """`show servers state`: one line of space-separated fields per server, after a version and a header."""
    found = []
    for line in answer.splitlines():
        fields = line.split()
        if len(fields) < 19 or line.startswith("#"):
            continue
        found.append(
            LiveServer(
                backend=fields[1],
                name=fields[3],
                address=fields[4],
                port=int(fields[18]),
                weight=int(fields[7]),
                admin_state=int(fields[6]),
            )
        )
    return found


def parse_sessions(answer: str) -> dict[tuple[str, str], int]:
    """Requests in flight (and queued) per (backend, server), from `show stat`, as HAProxy counts them now."""
    rows = csv.DictReader(answer.removeprefix("# ").splitlines())
    return {(row["pxname"], row["svname"]): int(row["scur"] or 0) + int(row["qcur"] or 0) for row in rows}


def backend_stats_command() -> str:
    """Every backend's counters (`show stat` of type 2, backends only)."""
    return "show stat -1 2 -1"


@dataclass(frozen=True)
class BackendStats:
    """A backend's counters since HAProxy started (requests and responses by status class) and its
    running averages over the last 1024 requests (ms): the response's first byte, and the whole request."""

    backend: str
    requests: int
    status: dict[str, int]
    response_ms: float
    total_ms: float


def parse_life(answer: str) -> str:
    """`show info`: the process and the second it started, which tell one life of the router's counters
    from the next (a restart begins them again at zero, whatever they were)."""
    fields = dict(line.split(": ", 1) for line in answer.splitlines() if ": " in line)
    return f"{fields.get('Pid', '')}@{fields.get('Start_time_sec', '')}"


def _count(row: dict[str, str], name: str) -> int:
    return int(row.get(name) or 0)


def parse_backend_stats(answer: str) -> list[BackendStats]:
    """`show stat -1 2 -1`: CSV with a header line. `req_tot` counts HTTP requests (`stot` counts
    sessions, fewer with keep-alive); an empty field is a counter HAProxy has not started."""
    found = []
    for row in csv.DictReader(answer.removeprefix("# ").splitlines()):
        if row.get("svname") != "BACKEND":
            continue
        found.append(
            BackendStats(
                backend=row["pxname"],
                requests=_count(row, "req_tot") if row.get("req_tot") else _count(row, "stot"),
                status={name: _count(row, f"hrsp_{name}") for name in ("1xx", "2xx", "3xx", "4xx", "5xx", "other")},
                response_ms=float(_count(row, "rtime")),
                total_ms=float(_count(row, "ttime")),
            )
        )
    return found


def check_answers(commands: list[str], answers: list[str]) -> list[str]:
    """The errors among a batch's answers, each with its command. HAProxy answers a change that worked
    with nothing or a short confirmation; anything else it says is an error."""
    fine = ("", "New server registered.", "Server deleted.")
    return [f"{command}: {answer}" for command, answer in zip(commands, answers, strict=True) if answer not in fine]
