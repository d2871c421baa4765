"""The last lines of a container, stored before Berth removes it (docs/logs.md, docs/runs.md).

Whatever follows a container live may not have read its last lines when it ends: what it printed since
the store's cursor for it is read from the engine and appended with that cursor, so a line the follower
stored meanwhile is not stored twice (berth.logs.store.append).
"""

import logging

import redis

from berth.logs import store
from berth.logs.lines import STDERR, STDOUT, clean

from .engine import Engine, EngineError

logger = logging.getLogger(__name__)


def flush_container_logs(engine: Engine, container_docker_id: str, app_id: int, process: str, process_type: str) -> int:
    """Store what the container printed that the store does not hold yet; returns how many lines were
    stored. Never raises: a container's lines must not keep it from being removed."""
    try:
        printed = engine.read_logs(container_docker_id, since_ns=store.cursor(container_docker_id))
        entries = [
            store.Entry(
                ns=ns,
                text=clean(text),
                process=process,
                process_type=process_type,
                stream=STDERR if stream == "stderr" else STDOUT,
            )
            for stream, ns, text in printed
        ]
        return store.append(app_id, entries, docker_id=container_docker_id)
    except (EngineError, redis.RedisError) as error:
        logger.warning("could not store the last lines of %s: %s", container_docker_id[:12], error)
        return 0
