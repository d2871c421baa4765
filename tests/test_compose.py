"""docker-compose.yml: docker-compose accepts it, it runs Berth's services and a router, only worker code gets the
Docker socket and the router's runtime API, and the router holds no secret."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

COMPOSE_FILE = Path(__file__).resolve().parents[1] / "docker-compose.yml"
# Dummy values for what the file requires with ${VAR:?}; none of them is a real secret.
REQUIRED_ENV = {
    "POSTGRES_PASSWORD": "dummy-postgres-password",
    "BERTH_SECRET_KEY": "dummy-secret-key",
    "BERTH_FIELD_ENCRYPTION_KEYS": "dummy-fernet-keys",
    "BERTH_ALLOWED_HOSTS": "berth.example.test",
    "DOCKER_GID": "999",
}
BERTH_SERVICES = {"migrate", "web", "worker", "runs", "beat", "events", "logs", "router-config"}
# The router's processes: HAProxy and Caddy from Berth's image, with none of Berth's settings.
ROUTER_SERVICES = {"router", "tls"}
ROUTER_DIR = "/var/lib/berth/router"


def compose_config(env: dict[str, str], env_file: Path) -> subprocess.CompletedProcess:
    executable = shutil.which("docker-compose")
    assert executable, "docker-compose is not installed: scripts/ensure-docker.sh installs it"
    # Only PATH and HOME from the caller, and an empty env file instead of a developer's .env,
    # so the values on their machine do not change what this test sees.
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), **env}
    return subprocess.run(
        [executable, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "config"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def empty_env_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("compose") / "empty.env"
    path.write_text("")
    return path


@pytest.fixture(scope="module")
def services(empty_env_file) -> dict:
    result = compose_config(REQUIRED_ENV, empty_env_file)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["services"]


def mount_sources(service: dict) -> list[str]:
    """Host side of each volume, from the short ("src:dst:mode") or the long ({source: …}) syntax."""
    return [v["source"] if isinstance(v, dict) else v.split(":")[0] for v in service.get("volumes", [])]


def test_compose_accepts_the_file_and_defines_berths_services(services):
    assert set(services) == {"postgres", "redis"} | BERTH_SERVICES | ROUTER_SERVICES


def test_only_worker_code_mounts_the_docker_socket(services):
    with_socket = {
        name for name, service in services.items() if any(s.endswith("docker.sock") for s in mount_sources(service))
    }
    assert with_socket == {"worker", "runs", "events", "logs"}  # the worker package, the only code that drives engines


def test_berth_services_run_prod_settings_with_secrets_from_the_environment(services):
    for name in BERTH_SERVICES:
        environment = services[name]["environment"]
        assert environment["DJANGO_SETTINGS_MODULE"] == "berth.settings.prod", name
        assert environment["BERTH_SECRET_KEY"] == REQUIRED_ENV["BERTH_SECRET_KEY"], name
        assert environment["BERTH_FIELD_ENCRYPTION_KEYS"] == REQUIRED_ENV["BERTH_FIELD_ENCRYPTION_KEYS"], name


@pytest.mark.parametrize("missing", sorted(REQUIRED_ENV))
def test_compose_refuses_to_run_without_a_required_value(missing, empty_env_file):
    """No secret has a default in the file: leaving one out is an error that names it."""
    env = {name: value for name, value in REQUIRED_ENV.items() if name != missing}
    result = compose_config(env, empty_env_file)
    assert result.returncode != 0
    assert missing in result.stderr


def mounts(service: dict) -> dict[str, str]:
    """Each volume's target, with its source and mode: {"/var/lib/berth/router": "router-data:ro"}."""
    found = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            found[volume["target"]] = f"{volume['source']}:{'ro' if volume.get('read_only') else 'rw'}"
        else:
            source, target, *mode = volume.split(":")
            found[target] = f"{source}:{mode[0] if mode else 'rw'}"
    return found


def test_router_config_writes_a_router_for_every_address_on_ports_80_and_443(services):
    command = services["router-config"]["command"]
    options = dict(zip(command[4::2], command[5::2], strict=True))
    assert command[:4] == ["python", "manage.py", "router", "configure"]
    assert options == {
        "--dir": ROUTER_DIR,
        "--bind": "0.0.0.0",  # noqa: S104 - a router listens where clients reach it
        "--http-port": "80",
        "--https-port": "443",
        "--tls-issuer": "acme",  # in production; BERTH_TLS_ISSUER=internal for a trial without DNS
        "--acme-email": "",
    }
    assert services["router-config"]["restart"] == "no"
    assert mounts(services["router-config"]) == {ROUTER_DIR: "router-data:rw"}
    assert not services["router-config"].get("depends_on")  # the router starts whatever else is down


def test_the_router_runs_haproxy_and_caddy_from_berths_image_on_the_files_router_config_wrote(services):
    assert services["router"]["command"] == ["haproxy", "-W", "-db", "-f", f"{ROUTER_DIR}/haproxy.cfg"]
    assert services["tls"]["command"] == ["caddy", "run", "--config", f"{ROUTER_DIR}/caddy.json"]
    assert services["router"]["depends_on"]["router-config"]["condition"] == "service_completed_successfully"
    for name in ROUTER_SERVICES:
        service = services[name]
        assert service["image"] == services["web"]["image"], name
        assert mounts(service) == {ROUTER_DIR: "router-data:rw"}, name
        # The host's network: replicas are reached at their host's registered address, clients keep theirs.
        assert service["network_mode"] == "host", name
        assert (service["cap_drop"], service["cap_add"]) == (["ALL"], ["NET_BIND_SERVICE"]), name
        assert not set(service.get("environment", {})) & {*REQUIRED_ENV, "DATABASE_URL"}, name


def test_only_the_worker_reaches_the_routers_runtime_api(services):
    with_router = {name for name, service in services.items() if "router-data" in mount_sources(service)}
    assert with_router == {"worker", "router-config"} | ROUTER_SERVICES
    assert mounts(services["worker"])[ROUTER_DIR] == "router-data:ro"  # enough to open a socket


def test_bootstrap_registers_the_router_this_file_runs(services):
    environment = services["worker"]["environment"]
    assert environment["BERTH_ROUTER_DIR"] == ROUTER_DIR
    assert (environment["BERTH_ROUTER_HTTP_PORT"], environment["BERTH_ROUTER_HTTPS_PORT"]) == ("80", "443")
    assert environment["BERTH_ROUTER_PUBLIC_ADDRESS"] == "127.0.0.1"
    assert environment["BERTH_APPS_DOMAIN"] == "localhost"
    assert services["web"]["environment"]["BERTH_ROUTER_DIR"] == ROUTER_DIR  # where bootstrap runs
