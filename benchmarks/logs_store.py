"""The log store: Berth's Redis Streams (`berth.logs.store`) against the same store in PostgreSQL, side by side.

The figures behind the choice of store (docs/logs.md): appends per second in batches of 500 lines (what the
collector sends), bytes each kept line costs, reading the last 1,000 lines that match a filter, and trimming.

- Redis: a `redis-server` of the benchmark's own (no persistence, `_logbench.OwnRedis`), written through
  `store.append` with a container's cursor, exactly as the collector writes, at the default bound
  (`BERTH_LOG_MAX_LINES`, 20,000 per app), so every append also trims (`MAXLEN ~`).
- PostgreSQL: one table of lines (`bigserial` id, the same fields, an index on (app, id)) and one table of
  cursors, in a database of the benchmark's own. An append is what `store.append` does, in one transaction:
  lock the container's cursor row, COPY the lines newer than it, move the cursor. Trimming is a DELETE of
  each app's lines beyond the bound, run apart (a table cannot trim on insert), then VACUUM.

Both hold 10 apps of 20,000 lines (two web replicas and a worker each; `_logbench.sample_line`) when reads
and sizes are measured. Reads: the last 1,000 lines of one app with no filter, with `process_type=worker` (a
third of the lines), a common search (`GET /api`) and a rare one (`timeout`, 1 line in 100, so fewer than
1,000 match and the whole app is scanned). Redis runs `store.recent`; PostgreSQL the same query in SQL
(`ILIKE` for the search).
"""

import json
import random
import sys
import threading
import time

import _deploybench as bench  # benchmarks/ is sys.path[0] both under run.py and as a script
import _logbench
import _server

NAME = "logs_store"
DATABASE = "berth_bench_logs_store"
APPS = 10
BATCH = 500
APPEND_BATCHES = 120  # 60,000 lines into one app: three times the bound, so trimming is in the figure
READS = 20
PROCESSES = (("web.1", "web"), ("web.2", "web"), ("worker.1", "worker"))

PG_SCHEMA = """
CREATE TABLE log_line (
    id bigserial PRIMARY KEY,
    app_id integer NOT NULL,
    ns bigint NOT NULL,
    source text NOT NULL,
    process text NOT NULL,
    process_type text NOT NULL,
    stream text NOT NULL,
    text text NOT NULL
);
CREATE INDEX log_line_app ON log_line (app_id, id);
CREATE TABLE log_cursor (docker_id text PRIMARY KEY, ns bigint NOT NULL);
"""


def run() -> dict:
    database = _server.database_name(DATABASE)
    redis_server = _logbench.OwnRedis(NAME)
    try:
        redis_server.start()
        postgresql = bench.database_recreate(database)
        env = _server.production_env(
            database,
            BERTH_LOG_REDIS_URL=redis_server.url,
            BERTH_BENCH_REDIS_PID=str(redis_server.process.pid),
            BERTH_BENCH_REDIS_DIR=str(redis_server.directory),
            PYTHONUNBUFFERED="1",
        )
        figures = bench.run_child(NAME, __file__, env, 900, [])
    finally:
        redis_server.stop()
        bench.database_drop(database)
        bench.stop_recorded_groups(NAME)
    return {"postgresql_version": postgresql, **figures}


# --- the measuring child ------------------------------------------------------------------------


def batches(rng: random.Random, count: int, start_ns: int, containers: str = "c") -> list[tuple[str, str, list]]:
    """`count` batches of BATCH lines, each from one container in turn: (docker id, process, entries). Containers
    are named `containers` + process, so a series has cursors of its own."""
    return list(lazy_batches(rng, count, start_ns, containers))


def lazy_batches(rng: random.Random, count: int, start_ns: int, containers: str = "c"):
    from berth.logs.store import Entry

    ns = start_ns
    for number in range(count):
        process, process_type = PROCESSES[number % len(PROCESSES)]
        entries = []
        for _ in range(BATCH):
            ns += rng.randint(50_000, 400_000)
            stream = "stderr" if rng.random() < 0.05 else "stdout"
            entries.append(Entry(ns, sample_text(rng, process_type), "app", process, process_type, stream))
        yield f"{containers}-{process}", process, entries


def sample_text(rng: random.Random, process_type: str) -> str:
    from berth.logs.lines import clean

    return clean(_logbench.sample_line(rng, process_type))


class Postgres:
    def __init__(self, url: str):
        import psycopg

        self.url = url
        self.connection = psycopg.connect(url, autocommit=True)
        self.connection.execute(PG_SCHEMA)

    def append(self, app_id: int, entries: list, docker_id: str, connection=None) -> int:
        connection = connection or self.connection
        with connection.transaction(), connection.cursor() as cursor:
            cursor.execute("INSERT INTO log_cursor VALUES (%s, 0) ON CONFLICT DO NOTHING", [docker_id])
            cursor.execute("SELECT ns FROM log_cursor WHERE docker_id = %s FOR UPDATE", [docker_id])
            last = cursor.fetchone()[0]
            fresh = [entry for entry in entries if entry.ns > last]
            if not fresh:
                return 0
            columns = "app_id, ns, source, process, process_type, stream, text"
            with cursor.copy(f"COPY log_line ({columns}) FROM STDIN") as copy:
                for e in fresh:
                    copy.write_row((app_id, e.ns, e.source, e.process, e.process_type, e.stream, e.text))
            cursor.execute("UPDATE log_cursor SET ns = %s WHERE docker_id = %s", [fresh[-1].ns, docker_id])
            return len(fresh)

    def trim(self, app_id: int, keep: int) -> int:
        done = self.connection.execute(
            "DELETE FROM log_line WHERE app_id = %s AND id < ("
            "  SELECT id FROM log_line WHERE app_id = %s ORDER BY id DESC OFFSET %s LIMIT 1)",
            [app_id, app_id, keep - 1],
        )
        return done.rowcount

    def recent(self, app_id: int, lines: int, process_type: str = "", search: str = "") -> list:
        """As `store.recent`: LogLine objects, oldest first."""
        from berth.logs.lines import LogLine

        where, params = ["app_id = %s"], [app_id]
        if process_type:
            where.append("process_type = %s")
            params.append(process_type)
        if search:
            where.append("text ILIKE %s")
            params.append(f"%{search}%")
        rows = self.connection.execute(
            f"SELECT * FROM (SELECT * FROM log_line WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT %s) recent "  # noqa: S608 - fixed column names
            "ORDER BY id",
            [*params, lines],
        ).fetchall()
        return [LogLine(str(row[0]), *row[2:]) for row in rows]

    def sizes(self) -> dict:
        row = self.connection.execute(
            "SELECT count(*), pg_relation_size('log_line'), pg_table_size('log_line'), "
            "pg_indexes_size('log_line'), pg_total_relation_size('log_line') FROM log_line"
        ).fetchone()
        count, heap, table, indexes, total = row
        return {
            "rows": count,
            "bytes_per_line_total": round(total / count, 1),
            "bytes_per_line_heap": round(heap / count, 1),
            "bytes_per_line_toast_and_maps": round((table - heap) / count, 1),
            "bytes_per_line_indexes": round(indexes / count, 1),
        }


def timed(function, *args, **kwargs) -> tuple[float, object]:
    began = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - began, result


def append_series(append, series: list) -> dict:
    """Every batch appended one after the other: lines per second and each batch's time (ms)."""
    times, stored = [], 0
    began = time.perf_counter()
    for docker_id, _, entries in series:
        seconds, count = timed(append, entries, docker_id)
        times.append(seconds * 1000)
        stored += count
    total = time.perf_counter() - began
    return {"lines": stored, "lines_per_s": round(stored / total), "batch_ms": bench.summary(times, 2)}


def read_series(recent) -> dict:
    shapes = {
        "no_filter": {},
        "process_type_worker": {"process_type": "worker"},
        "search_common_GET_api": {"search": "GET /api"},
        "search_rare_timeout": {"search": "timeout"},
    }
    out = {}
    for label, where in shapes.items():
        times, found = [], 0
        for _ in range(READS):
            seconds, lines = timed(recent, **where)
            times.append(seconds * 1000)
            found = len(lines)
        out[label] = {"lines_returned": found, "ms": bench.summary(times, 2)}
    return out


def redis_figures(rng: random.Random, start_ns: int) -> dict:
    import os

    from django.conf import settings
    from redis.utils import HIREDIS_AVAILABLE

    from berth.logs import store

    client = store.client()
    pid = int(os.environ["BERTH_BENCH_REDIS_PID"])
    bound = settings.BERTH_LOG_MAX_LINES
    series = batches(rng, APPEND_BATCHES, start_ns)
    cpu_before = _logbench.process_cpu_s(pid)
    appends = append_series(lambda entries, docker_id: store.append(1, entries, docker_id=docker_id), series)
    appends["redis_cpu_ms_per_1000_lines"] = round(
        (_logbench.process_cpu_s(pid) - cpu_before) * 1000 / appends["lines"] * 1000, 2
    )
    appends["stream_length_after"] = client.xlen(store.stream_key(1))
    # The same again into a stream with no bound in reach: what trimming on append costs.
    unbounded = batches(random.Random(2), APPEND_BATCHES, start_ns, "untrimmed")
    settings.BERTH_LOG_MAX_LINES = 10_000_000
    try:
        untrimmed = append_series(lambda entries, docker_id: store.append(99, entries, docker_id=docker_id), unbounded)
    finally:
        settings.BERTH_LOG_MAX_LINES = bound
    client.delete(store.stream_key(99))

    # Ten apps at the bound, for sizes and reads (app 1 already is).
    for app_id in range(2, APPS + 1):
        for docker_id, _, entries in batches(rng, bound // BATCH + 6, start_ns, f"app{app_id}"):
            store.append(app_id, entries, docker_id=docker_id)
    lengths = [client.xlen(store.stream_key(app_id)) for app_id in range(1, APPS + 1)]
    memory = [client.memory_usage(store.stream_key(app_id), samples=0) for app_id in range(1, APPS + 1)]
    text_bytes = sum(
        len(fields[b"l"]) for _, fields in client.xrange(store.stream_key(1), count=bound * 2)
    ) / client.xlen(store.stream_key(1))
    used = client.info("memory")
    client.save()
    rdb = (os.path.getsize(os.path.join(os.environ["BERTH_BENCH_REDIS_DIR"], "dump.rdb"))) / sum(lengths)
    sizes = {
        "lines_per_app": lengths,
        "text_bytes_per_line": round(text_bytes, 1),
        "memory_usage_bytes_per_line": round(sum(memory) / sum(lengths), 1),
        "used_memory_bytes_per_line": round(used["used_memory"] / sum(lengths), 1),
        "rdb_bytes_per_line": round(rdb, 1),
        "mem_allocator": used.get("mem_allocator"),
    }

    reads = read_series(lambda **where: store.recent(1, lines=1000, where=store.Filter(**where)))
    # Where a read's time goes: one XREVRANGE of `recent`'s 2,000 entries, read and parsed by redis-py.
    times = [timed(client.xrevrange, store.stream_key(1), count=2000)[0] * 1000 for _ in range(READS)]
    reads["xrevrange_2000_entries_ms"] = bench.summary(times, 2)
    reads["redis_py_parser"] = "hiredis" if HIREDIS_AVAILABLE else "python"

    # Trimming apart from appends: one app grown to three times its bound, then cut back, by length (approximate,
    # as appends do, and exact) and by age (MINID). Redis runs one command at a time: the time of a trim is how
    # long every other client waits.
    trims = {}
    for label, arguments in (
        ("maxlen_approx", {"maxlen": bound, "approximate": True}),
        ("maxlen_exact", {"maxlen": bound, "approximate": False}),
        ("minid_approx", {"minid": None, "approximate": True}),
    ):
        key = store.stream_key(200)
        client.delete(key)
        settings.BERTH_LOG_MAX_LINES = 10_000_000
        try:
            for docker_id, _, entries in batches(random.Random(3), 3 * bound // BATCH, start_ns, f"trim-{label}"):
                store.append(200, entries, docker_id=docker_id)
        finally:
            settings.BERTH_LOG_MAX_LINES = bound
        before = client.xlen(key)
        if label == "minid_approx":
            # The id of the entry two thirds of the way in: what an age bound would cut.
            middle = client.xrange(key, count=2 * bound)[-1][0]
            arguments = {"minid": middle, "approximate": True}
        seconds, _ = timed(client.xtrim, key, **arguments)
        trims[label] = {"lines_before": before, "lines_after": client.xlen(key), "ms": round(seconds * 1000, 2)}
        client.delete(key)
    return {"appends": appends, "appends_without_trimming": untrimmed, "sizes": sizes, "reads": reads, "trims": trims}


def postgres_figures(rng: random.Random, start_ns: int) -> dict:
    import os

    import psycopg
    from django.conf import settings

    bound = settings.BERTH_LOG_MAX_LINES
    url = os.environ["DATABASE_URL"]
    pg = Postgres(url)
    series = batches(rng, APPEND_BATCHES, start_ns)
    appends = append_series(lambda entries, docker_id: pg.append(1, entries, docker_id), series)
    seconds, deleted = timed(pg.trim, 1, bound)
    trims = {"delete_beyond_bound": {"lines_deleted": deleted, "ms": round(seconds * 1000, 1)}}
    seconds, _ = timed(pg.connection.execute, "VACUUM log_line")
    trims["vacuum_after"] = {"ms": round(seconds * 1000, 1)}

    for app_id in range(2, APPS + 1):
        for docker_id, _, entries in batches(rng, bound // BATCH + 6, start_ns, f"app{app_id}"):
            pg.append(app_id, entries, docker_id)
        pg.trim(app_id, bound)
    pg.connection.execute("VACUUM ANALYZE log_line")
    sizes = pg.sizes()
    reads = read_series(lambda **where: pg.recent(1, 1000, **where))

    # A trim while a writer appends: the writer's batches during the DELETE and VACUUM, against without.
    for docker_id, _, entries in batches(random.Random(4), 2 * bound // BATCH, start_ns + 10**12, "second"):
        pg.append(1, entries, docker_id)
    writer = psycopg.connect(url, autocommit=True)
    during: list[float] = []
    stop = threading.Event()

    def write() -> None:
        for docker_id, _, entries in lazy_batches(random.Random(5), 10_000, start_ns + 2 * 10**12, "third"):
            if stop.is_set():
                return
            seconds, _ = timed(pg.append, 1, entries, docker_id, writer)
            during.append(seconds * 1000)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    time.sleep(1.0)
    quiet = len(during)
    seconds, deleted = timed(pg.trim, 1, bound)
    seconds_vacuum, _ = timed(pg.connection.execute, "VACUUM log_line")
    stop.set()
    thread.join(timeout=30)
    writer.close()
    trims["delete_with_a_writer"] = {
        "lines_deleted": deleted,
        "ms": round(seconds * 1000, 1),
        "vacuum_ms": round(seconds_vacuum * 1000, 1),
        "writer_batch_ms_before": bench.summary(during[:quiet], 2),
        "writer_batch_ms_during": bench.summary(during[quiet:], 2),
    }
    pg.connection.close()
    return {"appends": appends, "sizes": sizes, "reads": reads, "trims": trims}


def measure() -> dict:
    from django.conf import settings

    start_ns = time.time_ns() - 3600 * 10**9
    figures = {
        "batch_lines": BATCH,
        "bound_lines_per_app": settings.BERTH_LOG_MAX_LINES,
        "load_before": open("/proc/loadavg").read().split()[:3],  # noqa: SIM115 - one read
        "redis": redis_figures(random.Random(1), start_ns),
        "postgresql": postgres_figures(random.Random(1), start_ns),
    }
    figures["load_after"] = open("/proc/loadavg").read().split()[:3]  # noqa: SIM115 - one read
    return figures


if __name__ == "__main__" and sys.argv[1:2] == ["measure"]:
    bench.django_setup()
    bench.emit(measure())
elif __name__ == "__main__":
    print(json.dumps(run(), indent=2))
