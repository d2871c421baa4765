"""A new installation's fleet: container sizes, and the local Docker engine as the first host
(`manage.py bootstrap`). Each step leaves what exists alone."""

import os

from .models import DockerHost, Size
from .services import host_register, size_create

# name, memory MB, CPU millis, default
SIZES = [
    ("small", 128, 250, True),
    ("medium", 512, 500, False),
    ("large", 1024, 1000, False),
]


def sizes_ensure(operator) -> list[Size]:
    """The sizes missing from SIZES, made; returns those it made."""
    made = []
    for name, memory_mb, cpu_millis, is_default in SIZES:
        if not Size.objects.filter(name=name).exists():
            made.append(
                size_create(
                    actor=operator, name=name, memory_mb=memory_mb, cpu_millis=cpu_millis, is_default=is_default
                )
            )
    return made


def local_host_ensure(operator) -> None:
    """The local engine as the fleet's host, unless there is a fleet already. No worker runs yet to test the
    connection; its heartbeat checks the engine once it does."""
    if DockerHost.objects.exists():
        return
    host_register(
        actor=operator,
        test_connection=False,
        name="local",
        engine_url="unix:///var/run/docker.sock",
        address="127.0.0.1",
        memory_mb=_memory_mb(),
        cpu_millis=(os.cpu_count() or 1) * 1000,
    )


def _memory_mb() -> int:
    with open("/proc/meminfo") as meminfo:
        total_kb = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
    return total_kb // 1024
