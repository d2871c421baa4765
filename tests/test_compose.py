"""docker-compose.yml: docker-compose accepts it, it runs Berth's services, only worker code gets the Docker socket."""

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
BERTH_SERVICES = {"migrate", "web", "worker", "beat", "events"}


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
    assert set(services) == {"postgres", "redis"} | BERTH_SERVICES


def test_only_worker_code_mounts_the_docker_socket(services):
    with_socket = {
        name for name, service in services.items() if any(s.endswith("docker.sock") for s in mount_sources(service))
    }
    assert with_socket == {"worker", "events"}  # the worker package, the only code that drives engines


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
