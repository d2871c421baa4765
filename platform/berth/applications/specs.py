"""What a release says about its processes: validated here, once, for the API and the worker.

A process type is a name, a command (a list of arguments, never run through a shell on the host),
the port it listens on and a health check. Commands given as a string are split like a shell
would split words, and refused if they use shell operators: Berth never runs a shell, so `;` or
`&&` would silently become plain arguments.
"""

import re
import shlex
from dataclasses import asdict, dataclass, field

from django.conf import settings

from berth.core.errors import Invalid

# Docker's image reference grammar: [registry/]path[:tag][@sha256:digest]. A first component is a
# registry only if it has a dot or a port, or is localhost (as Docker itself decides).
_HOST = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)"
_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REFERENCE = (
    rf"^(?:(?:{_HOST}(?:\.{_HOST})+(?::[0-9]{{1,5}})?|{_HOST}:[0-9]{{1,5}}|localhost)/)?"
    rf"{_PATH}(?:/{_PATH})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?(?:@sha256:[a-f0-9]{{64}})?\Z"
)
PROCESS_NAME = re.compile(r"^[a-z][a-z0-9]{0,29}\Z")
SHELL_OPERATORS = {";", "&", "&&", "|", "||", "<", ">", ">>", "(", ")", "`", "$("}
HEALTH_TYPES = {"http", "tcp", "command", "none"}
# The process type of one-off runs' containers (docs/runs.md): never a release's, so a run is never a replica.
RUN_PROCESS_TYPE = "run"
MAX_ARGS, MAX_ARG_LENGTH = 64, 1024


@dataclass(frozen=True)
class HealthCheck:
    type: str = "tcp"
    path: str = "/"
    expected_status: int = 200
    command: tuple[str, ...] = ()
    interval_s: float = 2.0
    timeout_s: float = 2.0
    retries: int = 3
    start_period_s: float = 30.0


@dataclass(frozen=True)
class ProcessType:
    name: str
    command: tuple[str, ...] = ()
    port: int | None = 8080
    health: HealthCheck = field(default_factory=HealthCheck)
    # How long a new container must stay healthy before it counts as ready: before the old container
    # it replaces is stopped, and before a deployment succeeds (docs/deploys.md).
    min_ready_s: float = 5.0
    # A read-only root filesystem, with a writable tmpfs at /tmp.
    read_only: bool = False
    # Takes HTTP from the routers at the app's hostnames (docs/routing.md): `web` does unless told otherwise.
    http: bool = False

    def as_json(self) -> dict:
        data = asdict(self)
        data.pop("name")
        return data


def _field(name: str, message: str) -> Invalid:
    return Invalid(message, field=name, code="invalid_process_types")


def parse_command(value, where: str) -> tuple[str, ...]:
    if value in (None, "", []):
        return ()
    if isinstance(value, str):
        lexer = shlex.shlex(value, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        try:
            args = list(lexer)
        except ValueError as error:
            raise _field(where, f"The command cannot be split into words: {error}.") from None
        operators = [arg for arg in args if arg in SHELL_OPERATORS or arg.startswith(("$(", "`"))]
        if operators:
            raise _field(
                where,
                f"The command uses shell operators ({', '.join(operators)}); Berth runs no shell. "
                'Give a list such as ["sh", "-c", "…"] if the image has a shell.',
            )
    elif isinstance(value, list) and all(isinstance(arg, str) for arg in value):
        args = value
    else:
        raise _field(where, "The command must be a string or a list of strings.")
    if len(args) > MAX_ARGS or any(len(arg) > MAX_ARG_LENGTH or "\x00" in arg for arg in args):
        raise _field(where, f"The command may have at most {MAX_ARGS} arguments of {MAX_ARG_LENGTH} characters.")
    return tuple(args)


def _number(data: dict, key: str, default, low, high, where: str, kind=float):
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and not isinstance(value, int)):
        raise _field(f"{where}.{key}", f"{key} must be a {'whole ' if kind is int else ''}number.")
    if not low <= value <= high:
        raise _field(f"{where}.{key}", f"{key} must be between {low} and {high}.")
    return kind(value)


def parse_health(data, where: str, port: int | None) -> HealthCheck:
    if data is None:
        return HealthCheck(type="tcp" if port else "none")
    if not isinstance(data, dict):
        raise _field(where, "The health check must be an object.")
    unknown = set(data) - {
        "type",
        "path",
        "expected_status",
        "command",
        "interval_s",
        "timeout_s",
        "retries",
        "start_period_s",
    }
    if unknown:
        raise _field(where, f"Unknown health check fields: {', '.join(sorted(unknown))}.")
    kind = data.get("type", "http")
    if kind not in HEALTH_TYPES:
        raise _field(f"{where}.type", f"The health check type must be one of {', '.join(sorted(HEALTH_TYPES))}.")
    if kind in {"http", "tcp"} and not port:
        raise _field(f"{where}.type", f"A {kind} health check needs the process type to have a port.")
    path = data.get("path", "/")
    if not isinstance(path, str) or not path.startswith("/") or len(path) > 200 or any(c in path for c in "\r\n\x00 "):
        raise _field(f"{where}.path", "The path must start with / and hold no spaces or control characters.")
    command = parse_command(data.get("command"), f"{where}.command")
    if kind == "command" and not command:
        raise _field(f"{where}.command", "A command health check needs a command.")
    return HealthCheck(
        type=kind,
        path=path,
        expected_status=_number(data, "expected_status", 200, 100, 599, where, int),
        command=command,
        interval_s=_number(data, "interval_s", 2.0, 0.2, 300, where),
        timeout_s=_number(data, "timeout_s", 2.0, 0.1, 60, where),
        retries=_number(data, "retries", 3, 1, 20, where, int),
        start_period_s=_number(data, "start_period_s", 30.0, 0, 600, where),
    )


def parse_process_types(data) -> dict[str, ProcessType]:
    """Validate the process types of a new release; raises Invalid naming the field at fault."""
    if data is None:
        data = {"web": {}}
    if not isinstance(data, dict) or not data:
        raise _field("process_types", "Give at least one process type, as an object keyed by name.")
    if len(data) > 10:
        raise _field("process_types", "A release may have at most 10 process types.")
    parsed = {}
    for name, spec in data.items():
        where = f"process_types.{name}"
        if not isinstance(name, str) or not PROCESS_NAME.match(name):
            raise _field(where, "A process type name is lowercase letters and digits, starting with a letter.")
        if name == RUN_PROCESS_TYPE:
            raise _field(where, f"{RUN_PROCESS_TYPE} is the process type of one-off runs; choose another name.")
        spec = spec or {}
        if not isinstance(spec, dict):
            raise _field(where, "A process type must be an object.")
        unknown = set(spec) - {"command", "port", "health_check", "min_ready_s", "read_only", "http"}
        if unknown:
            raise _field(where, f"Unknown process type fields: {', '.join(sorted(unknown))}.")
        port = spec.get("port", 8080 if name == "web" else None)
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535):
            raise _field(f"{where}.port", "The port must be a whole number from 1 to 65535.")
        http = _boolean(spec, "http", where, default=name == "web" and port is not None)
        if http and port is None:
            raise _field(f"{where}.http", "A process type that takes HTTP needs a port.")
        parsed[name] = ProcessType(
            name=name,
            command=parse_command(spec.get("command"), f"{where}.command"),
            port=port,
            health=parse_health(spec.get("health_check"), f"{where}.health_check", port),
            min_ready_s=_number(spec, "min_ready_s", settings.BERTH_MIN_READY_SECONDS, 0, 600, where),
            read_only=_boolean(spec, "read_only", where),
            http=http,
        )
    return parsed


def _boolean(data: dict, key: str, where: str, default: bool = False) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise _field(f"{where}.{key}", f"{key} must be true or false.")
    return value


def load_process_types(stored: dict) -> dict[str, ProcessType]:
    """Process types as a release stored them (already validated)."""
    return {
        name: ProcessType(
            name=name,
            command=tuple(spec["command"]),
            port=spec["port"],
            health=HealthCheck(**{**spec["health"], "command": tuple(spec["health"]["command"])}),
            # Releases made before these fields existed ran with no ready time, writable.
            min_ready_s=spec.get("min_ready_s", 0.0),
            read_only=spec.get("read_only", False),
            # Releases made before routing existed: web took HTTP.
            http=spec.get("http", name == "web" and spec["port"] is not None),
        )
        for name, spec in stored.items()
    }


def parse_run_command(value, where: str) -> tuple[str, ...]:
    """The command of a one-off run or a release command: split and checked like a process type's, and
    required. Raises Invalid naming `where`."""
    try:
        command = parse_command(value, where)
    except Invalid as error:
        raise Invalid(error.message, field=where) from None
    if not command:
        raise Invalid("Give the command to run, as a string or a list of strings.", field=where)
    return command


def parse_timeout(value, where: str) -> int:
    """A run's timeout in whole seconds, from 1 to BERTH_RUN_MAX_TIMEOUT_SECONDS (None: the default)."""
    if value is None:
        return settings.BERTH_RUN_TIMEOUT_SECONDS
    high = settings.BERTH_RUN_MAX_TIMEOUT_SECONDS
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise Invalid(f"The timeout is a whole number of seconds from 1 to {high}.", field=where)
    return value


def parse_release_command(command, timeout) -> dict:
    """What a release stores of its release command: {} for none, else {"command": [...], "timeout_s": n}.
    It runs once, before any container of the release serves (docs/deploys.md#the-release-command)."""
    if command in (None, "", []):
        if timeout is not None:
            raise Invalid("A release timeout needs a release command.", field="release_timeout")
        return {}
    return {
        "command": list(parse_run_command(command, "release_command")),
        "timeout_s": parse_timeout(timeout, "release_timeout"),
    }
