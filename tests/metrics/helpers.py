"""Figures for tests of the reads: readings as the worker's pass records them, without an engine."""

from datetime import timedelta

from django.utils import timezone

from berth.metrics.services import ContainerReading, RouteReading, container_readings_record, route_readings_record

MB = 1024 * 1024


def readings(app, *, cpu_per_second_ns: int, requests: int, docker_id: str, errors: int = 0) -> None:
    """Two passes 15 s apart, ending a minute ago: a replica web.1 at 20 MB, and `requests` requests of
    which `errors` answered 5xx."""
    first = timezone.now() - timedelta(seconds=75)
    for n, moment in enumerate((first, first + timedelta(seconds=15))):
        container_readings_record(
            readings=[
                ContainerReading(
                    app_id=app.pk,
                    process_type="web",
                    index=1,
                    canary=False,
                    docker_id=docker_id,
                    read_at=moment,
                    cpu_ns=n * 15 * cpu_per_second_ns,
                    memory_bytes=20 * MB,
                    memory_limit_bytes=64 * MB,
                    cpu_limit_millis=250,
                )
            ]
        )
        counters = {"requests": n * requests, "status_2xx": n * (requests - errors), "status_5xx": n * errors}
        counters |= dict.fromkeys(("status_1xx", "status_3xx", "status_4xx", "status_other"), 0)
        route_readings_record(
            readings=[
                RouteReading(
                    router_id=1,
                    backend=f"b{app.pk:05d}",
                    app_id=app.pk,
                    read_at=moment,
                    life="1@1",
                    counters=counters,
                    response_ms=8,
                    total_ms=9,
                )
            ]
        )
