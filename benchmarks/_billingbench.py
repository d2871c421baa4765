"""Shared plumbing of the billing benchmarks (invoice_generation, usage_api).

Not a benchmark itself (its name starts with "_"). The parent (`run()`, in run.py's process) never
loads Django: it makes the benchmark's own database, migrates it, and runs each step that needs
Django in a child (`python benchmarks/<name>.py <step>`), which prints its figures as its last line.

The ledger is seeded with SQL (`sizes_seed`, `organizations_seed`, `records_seed`): organizations,
apps, one release each, containers, and for each container a run of consecutive, non-overlapping
usage records, each at the price its size had when it started and in the period it falls in (what
metering writes), so a million rows take seconds, not the hours `usage_sync` would. Intervals are
whole seconds, so an invoice line's seconds are exact.
"""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import _server  # benchmarks/ is sys.path[0] both under run.py and as a script

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"
SERVER = _server.POSTGRES

# Sizes and their prices per hour. Two of them change price at a moment the benchmark picks, so an
# invoice has lines at two prices of one size. Six decimals, as SizePrice stores them, chosen so that
# amounts rarely fall on whole cents.
SIZES = (
    # name, memory MB, CPU millis, price before the change, price after it (None: no change)
    ("bench-small", 128, 250, "0.013889", None),
    ("bench-medium", 512, 500, "0.027778", "0.030555"),
    ("bench-large", 1024, 1000, "0.055556", None),
    ("bench-xlarge", 4096, 2000, "0.111111", "0.097222"),
)
APP_NAMES = ("shop", "api", "jobs")
PROCESS_TYPES = ("web", "worker")


# --- database -------------------------------------------------------------------------------------


def maintenance(statement: str, *identifiers: str) -> str:
    """Run a statement on the maintenance database; `{}` in it are quoted identifiers."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as connection:
        connection.execute(sql.SQL(statement).format(*(sql.Identifier(name) for name in identifiers)))
        return connection.info.parameter_status("server_version")


def database_recreate(database: str) -> str:
    database_drop(database)
    return maintenance("CREATE DATABASE {}", database)


def database_clone(template: str, database: str) -> None:
    """A copy of a seeded database, files and statistics included; FILE_COPY writes no WAL for it."""
    database_drop(database)
    maintenance("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY", database, template)


def database_drop(database: str) -> None:
    maintenance("DROP DATABASE IF EXISTS {} WITH (FORCE)", database)


def database_stats(database: str) -> dict:
    """Cumulative statistics of one database: temporary files, blocks read and hit, rows written."""
    import psycopg

    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as connection:
        row = connection.execute(
            "SELECT temp_files, temp_bytes, blks_read, blks_hit, tup_inserted, tup_updated, tup_deleted "
            "FROM pg_stat_database WHERE datname = %s",
            [database],
        ).fetchone()
    keys = ("temp_files", "temp_bytes", "blks_read", "blks_hit", "tup_inserted", "tup_updated", "tup_deleted")
    return dict(zip(keys, row or (0,) * len(keys), strict=True))


def django_env(database: str, **extra: str) -> dict[str, str]:
    """The production settings and the environment they require, on the benchmark's database."""
    return _server.production_env(database, **extra)


def quietly(command: list[str], env: dict[str, str], timeout: float = 900) -> str:
    """Run a setup step or a child; its output is shown only if it fails."""
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command[1:])} failed:\n{done.stdout[-3000:]}{done.stderr[-5000:]}")
    return done.stdout


def migrate(env: dict[str, str]) -> float:
    began = time.monotonic()
    quietly([sys.executable, "manage.py", "migrate", "--noinput"], env)
    return round(time.monotonic() - began, 1)


def child(script: str, args: list[str], env: dict[str, str], timeout: float = 900) -> dict:
    """Run `python <script> <args>` and return the JSON of its last line of output."""
    return json.loads(quietly([sys.executable, script, *args], env, timeout).splitlines()[-1])


def progress(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def django_setup() -> None:
    import django

    sys.path[:0] = [str(REPO / "platform"), str(REPO)]
    django.setup()


# --- the ledger, in SQL ---------------------------------------------------------------------------


def sizes_seed(cursor, *, price_change) -> dict:
    """A host and the SIZES with their prices: the first since long ago, the second from `price_change`."""
    cursor.execute(
        "INSERT INTO fleet_dockerhost (name, engine_url, tls_ca_cert, tls_client_cert, tls_client_key, address, "
        "memory_mb, cpu_millis, labels, state, status, engine_version, engine_id, last_error, created_at) "
        "VALUES ('bench-host', 'tcp://127.0.0.1:1', '', '', '', '127.0.0.1', 65536, 32000, '{}', 'active', 'up', "
        "'', '', '', now()) RETURNING id"
    )
    host_id = cursor.fetchone()[0]
    size_ids = []
    for name, memory_mb, cpu_millis, before, after in SIZES:
        cursor.execute(
            "INSERT INTO fleet_size (name, memory_mb, cpu_millis, is_default) VALUES (%s, %s, %s, false) RETURNING id",
            [name, memory_mb, cpu_millis],
        )
        size_ids.append(cursor.fetchone()[0])
        for effective_from, price in (
            (price_change.replace(year=price_change.year - 2), before),
            (price_change, after),
        ):
            if price is not None:
                cursor.execute(
                    "INSERT INTO billing_sizeprice (size_id, price_per_hour, currency, effective_from, created_at) "
                    "VALUES (%s, %s, 'USD', %s, now())",
                    [size_ids[-1], price, effective_from],
                )
    return {"host_id": host_id, "size_ids": size_ids}


def organizations_seed(
    cursor,
    *,
    count: int,
    slug_prefix: str,
    containers_per_org: int,
    fleet: dict,
    release_config: str,
    owner_id: int | None = None,
    running_every: int = 0,
) -> list[int]:
    """Organizations, each with the APP_NAMES apps (one release each) and `containers_per_org` containers.

    Container k of an organization runs app k mod 3, process type web or worker by parity, and a size
    that varies with the organization and k. Every `running_every`-th container is running, the others
    were removed. Returns the organizations' ids.
    """
    cursor.execute(
        """
        INSERT INTO tenancy_organization (slug, name, created_at, created_by_id)
        SELECT %(prefix)s || lpad(n::text, 5, '0'), 'Benchmark ' || n, now(), %(owner)s
        FROM generate_series(1, %(n)s) n
        RETURNING id
        """,
        {"prefix": slug_prefix, "n": count, "owner": owner_id},
    )
    org_ids = sorted(row[0] for row in cursor.fetchall())
    params = {
        "orgs": org_ids,
        "owner": owner_id,
        "apps": list(APP_NAMES),
        "app_count": len(APP_NAMES),
        "process_types": list(PROCESS_TYPES),
        "process_types_json": json.dumps({name: f"run-{name}" for name in PROCESS_TYPES}),
        "config": release_config,
        "containers": containers_per_org,
        "host": fleet["host_id"],
        "sizes": fleet["size_ids"],
        "size_count": len(fleet["size_ids"]),
        "running_every": running_every,
    }
    if owner_id is not None:
        cursor.execute(
            "INSERT INTO tenancy_membership (role, created_at, user_id, organization_id) "
            "SELECT 'owner', now(), %(owner)s, o FROM unnest(%(orgs)s::bigint[]) o",
            params,
        )
    cursor.execute(
        """
        INSERT INTO applications_app (name, description, created_at, updated_at, created_by_id, organization_id)
        SELECT name, '', now(), now(), %(owner)s, o FROM unnest(%(orgs)s::bigint[]) o, unnest(%(apps)s::text[]) name
        """,
        params,
    )
    cursor.execute(
        """
        INSERT INTO applications_release (version, image, image_digest, process_types, config, description,
            created_at, app_id)
        SELECT 1, 'registry.example/' || a.name || ':v1', '', %(process_types_json)s::jsonb, %(config)s, '', now(), a.id
        FROM applications_app a WHERE a.organization_id = ANY(%(orgs)s)
        """,
        params,
    )
    cursor.execute(
        "UPDATE applications_app a SET current_release_id = r.id FROM applications_release r "
        "WHERE r.app_id = a.id AND a.organization_id = ANY(%(orgs)s)",
        params,
    )
    # started_at, finished_at and last_seen_at are set from the records by containers_finish.
    cursor.execute(
        """
        INSERT INTO fleet_container (docker_id, name, process_type, index, state, health, health_failures,
            image_digest, created_at, app_id, organization_id, release_id, host_id, size_id)
        SELECT md5(a.organization_id || '-' || k), a.name || '-' || k, (%(process_types)s::text[])[1 + k %% 2], k / 2,
            CASE WHEN %(running_every)s > 0 AND (a.organization_id + k) %% %(running_every)s = 0
                 THEN 'running' ELSE 'removed' END,
            'unknown', 0, '', now(), a.id, a.organization_id, a.current_release_id, %(host)s,
            (%(sizes)s::bigint[])[1 + (a.organization_id + k / 2) %% %(size_count)s]
        FROM unnest(%(orgs)s::bigint[]) o
        CROSS JOIN generate_series(0, %(containers)s - 1) k
        JOIN applications_app a ON a.organization_id = o AND a.name = (%(apps)s::text[])[1 + k %% %(app_count)s]
        """,
        params,
    )
    return org_ids


def records_seed(cursor, *, org_ids: list[int], start, end, records_per_container: int, open_last: bool = False) -> int:
    """`records_per_container` usage records for each container of these organizations, in [start, end).

    The span is cut into equal slots, one record per slot: it starts 0 to 599 s into its slot and lasts
    60 s to nearly the whole slot (a hash of the container and the slot picks both), so records of a
    container never overlap. Like metering, a record never crosses a price change of its size or the
    1st of a month (it ends there), and carries the price in force when it starts and the period it
    falls in. With `open_last`, the last record of each running container is still open.
    """
    slot = int((end - start).total_seconds()) // records_per_container
    if slot < 1200:
        raise ValueError(f"slots of {slot} s are too short for the record shapes")
    cursor.execute(
        """
        INSERT INTO billing_usagerecord (container_id, organization_id, app_id, app_name, process_type, size_name,
            price_per_hour, currency, started_at, ended_at, period)
        SELECT c.id, c.organization_id, c.app_id, a.name, c.process_type, s.name, p.price_per_hour, p.currency,
            t.started_at,
            CASE WHEN %(open_last)s AND c.state = 'running' AND i = %(records)s - 1 THEN NULL
                 ELSE LEAST(t.ended_at, t.month_end, (SELECT MIN(effective_from) FROM billing_sizeprice
                                                      WHERE size_id = c.size_id AND effective_from > t.started_at))
            END,
            t.month_start::date
        FROM fleet_container c
        JOIN applications_app a ON a.id = c.app_id
        JOIN fleet_size s ON s.id = c.size_id
        CROSS JOIN generate_series(0, %(records)s - 1) i
        CROSS JOIN LATERAL (SELECT abs(hashint8(c.id * 100000 + i)::bigint) AS h1,
                                   abs(hashint8(-(c.id * 100000 + i))::bigint) AS h2) h
        CROSS JOIN LATERAL (
            SELECT %(start)s::timestamptz + make_interval(secs => i * %(slot)s + h.h1 %% 600) AS started_at,
                   %(start)s::timestamptz
                       + make_interval(secs => i * %(slot)s + h.h1 %% 600 + 60 + h.h2 %% (%(slot)s - 661)) AS ended_at,
                   date_trunc('month', %(start)s::timestamptz + make_interval(secs => i * %(slot)s + h.h1 %% 600),
                              'UTC') AS month_start
        ) t0
        CROSS JOIN LATERAL (SELECT t0.*, t0.month_start + interval '1 month' AS month_end) t
        CROSS JOIN LATERAL (
            SELECT price_per_hour, currency FROM billing_sizeprice
            WHERE size_id = c.size_id AND effective_from <= t.started_at
            ORDER BY effective_from DESC LIMIT 1
        ) p
        WHERE c.organization_id = ANY(%(orgs)s)
        ORDER BY c.organization_id, c.id, i
        """,
        {"records": records_per_container, "slot": slot, "start": start, "orgs": org_ids, "open_last": open_last},
    )
    return cursor.rowcount


def containers_finish(cursor, org_ids: list[int]) -> None:
    """Each container's life as its records tell it: started at the first, removed at the end of the last."""
    cursor.execute(
        """
        UPDATE fleet_container c SET started_at = u.first, last_seen_at = u.last_end,
            finished_at = CASE WHEN c.state = 'running' THEN NULL ELSE u.last_end END,
            removed_at = CASE WHEN c.state = 'running' THEN NULL ELSE u.last_end END
        FROM (SELECT container_id, MIN(started_at) AS first, MAX(COALESCE(ended_at, started_at)) AS last_end
              FROM billing_usagerecord WHERE organization_id = ANY(%(orgs)s) GROUP BY container_id) u
        WHERE u.container_id = c.id
        """,
        {"orgs": org_ids},
    )


def release_config_encrypted() -> str:
    """An empty config as Release.config stores it (encrypted with this process's key); needs Django."""
    from django.db import connection

    from berth.applications.models import Release

    return Release._meta.get_field("config").get_db_prep_value({}, connection)


SETTINGS = (
    "shared_buffers",
    "work_mem",
    "maintenance_work_mem",
    "jit",
    "jit_above_cost",
    "max_parallel_workers_per_gather",
    "synchronous_commit",
    "max_wal_size",
)


def server_settings(cursor) -> dict[str, str]:
    """The PostgreSQL settings the figures depend on (all at their Debian defaults on the machine measured)."""
    cursor.execute("SELECT name, setting, unit FROM pg_settings WHERE name = ANY(%s)", [list(SETTINGS)])
    return {name: f"{setting}{' ' + unit if unit else ''}" for name, setting, unit in cursor.fetchall()}


def relation_sizes(cursor, tables: tuple[str, ...]) -> dict[str, int]:
    """Table + indexes + TOAST size in MiB."""
    cursor.execute("SELECT relname, pg_total_relation_size(oid) FROM pg_class WHERE relname = ANY(%s)", [list(tables)])
    return {name: round(size / 2**20) for name, size in cursor.fetchall()}


# --- memory and CPU of a process, from /proc -----------------------------------------------------


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon... of a process in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if rest.strip().endswith("kB"):
            values[key] = int(rest.split()[0])
    return values


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_reset() -> None:
    """Reset this process's peak RSS (VmHWM), so the next reading is the peak of what follows (Linux >= 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


class MemorySampler:
    """Samples the RSS of processes every `interval` s in a thread; keeps the maximum of each field.

    For a PostgreSQL backend, RssAnon is its private memory (sorts, hashes, the trigger queue);
    RssShmem is the part of shared_buffers it touched, shared with every other backend.
    """

    FIELDS = ("VmRSS", "RssAnon", "RssShmem")

    def __init__(self, pids: dict[str, int], interval: float = 0.01):
        self.pids, self.interval = pids, interval
        self.peak = {name: dict.fromkeys(self.FIELDS, 0) for name in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        for name, pid in self.pids.items():
            try:
                status = proc_status(pid)
            except OSError:
                continue
            for key in self.FIELDS:
                self.peak[name][key] = max(self.peak[name][key], status.get(key, 0))

    def mib(self) -> dict[str, dict[str, float]]:
        return {name: {k: round(v / 1024, 1) for k, v in fields.items()} for name, fields in self.peak.items()}


# --- bulk loading and measuring statements -------------------------------------------------------


class IndexesDeferred:
    """Drop a table's secondary indexes and index-backed constraints, and build them again on exit.

    What pg_restore does: building an index once over a million rows is far cheaper than growing it a
    row at a time (most of all the GiST index of the exclusion constraint, which is also checked per
    row). The definitions are read from the catalog, so the rebuilt ones are exactly what the
    migrations made, constraint names included. Use inside one transaction.
    """

    def __init__(self, cursor, table: str):
        self.cursor, self.table = cursor, table
        self.built_s: dict[str, float] = {}

    def __enter__(self):
        self.cursor.execute(
            """
            SELECT pg_get_indexdef(i.indexrelid), i.indexrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)
            FROM pg_index i LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid
            WHERE i.indrelid = %s::regclass AND NOT i.indisprimary
            """,
            [self.table],
        )
        self.definitions = self.cursor.fetchall()
        for _, index, constraint, _ in self.definitions:
            if constraint:
                self.cursor.execute(f'ALTER TABLE {self.table} DROP CONSTRAINT "{constraint}"')
            else:
                self.cursor.execute(f"DROP INDEX {index}")
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is not None:
            return
        self.cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
        for definition, index, constraint, constraint_definition in self.definitions:
            began = time.monotonic()
            if constraint:
                self.cursor.execute(f'ALTER TABLE {self.table} ADD CONSTRAINT "{constraint}" {constraint_definition}')
            else:
                self.cursor.execute(definition)
            self.built_s[constraint or index] = round(time.monotonic() - began, 2)


def without_fk_triggers(cursor) -> None:
    """Skip the foreign-key checks for the rest of the transaction (rows are built from the rows they
    reference, so they hold): the check of each of a million rows would be queued until commit."""
    cursor.execute("SET LOCAL session_replication_role = replica")


class StatementTimer:
    """An execute_wrapper timing each SQL statement; `commit_timed` times the commits too."""

    def __init__(self):
        self.statements: list[dict] = []
        self.commits: list[float] = []

    def __call__(self, execute, sql, params, many, context):
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            elapsed = time.perf_counter() - began
            self.statements.append(
                {"sql": " ".join(sql.split())[:90], "ms": round(elapsed * 1000, 1), "rows": context["cursor"].rowcount}
            )

    def commit_timed(self, connection) -> None:
        commit = connection.commit

        def timed():
            began = time.perf_counter()
            try:
                return commit()
            finally:
                self.commits.append(round((time.perf_counter() - began) * 1000, 1))

        connection.commit = timed

    def heaviest(self, n: int = 8) -> list[dict]:
        return sorted(self.statements, key=lambda s: -s["ms"])[:n]


class Explainer:
    """An execute_wrapper that runs each raw statement of berth.billing (dict parameters) as
    EXPLAIN (ANALYZE, BUFFERS, WAL) instead, which executes it too, and keeps the plans; ORM
    statements run as they are. The first thing it does sets the constraints IMMEDIATE, so the
    deferred foreign-key checks are run, and shown, by the statement that queues them."""

    def __init__(self):
        self.plans: list[dict] = []
        self.skipped: list[dict] = []
        self._immediate = False

    # What EXPLAIN accepts; anything else (LOCK TABLE, SET LOCAL, …) runs as it is and is listed as run.
    EXPLAINABLE = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "MERGE", "VALUES")

    def __call__(self, execute, sql, params, many, context):
        if not isinstance(params, dict):
            return execute(sql, params, many, context)
        if not sql.lstrip().upper().startswith(self.EXPLAINABLE):
            began = time.perf_counter()
            result = execute(sql, params, many, context)
            self.skipped.append({"sql": " ".join(sql.split()), "ms": round((time.perf_counter() - began) * 1000, 1)})
            return result
        cursor = context["cursor"].cursor  # the driver's cursor: through the wrapper would come back here
        if not self._immediate:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            self._immediate = True
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, WAL, FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0][0]
        self.plans.append({"sql": " ".join(sql.split()), "plan": plan})
        return None


def plan_summary(plan: dict) -> dict:
    """The figures of one EXPLAIN (ANALYZE, BUFFERS, WAL, FORMAT JSON) that say where time and memory went."""
    root = plan["Plan"]
    nodes = []

    def walk(node: dict, depth: int) -> None:
        extra = {
            key: node[key]
            for key in (
                "Relation Name",
                "Index Name",
                "Strategy",
                "Sort Method",
                "Sort Space Used",
                "Sort Space Type",
                "Peak Memory Usage",
                "Disk Usage",
                "HashAgg Batches",
                "Hash Batches",
                "Temp Written Blocks",
                "Rows Removed by Filter",
            )
            if node.get(key)
        }
        nodes.append(
            f"{'  ' * depth}{node['Node Type']} time={node.get('Actual Total Time')} ms "
            f"rows={node.get('Actual Rows')} loops={node.get('Actual Loops')}"
            + (f" {json.dumps(extra)}" if extra else "")
        )
        for sub in node.get("Plans", ()):
            walk(sub, depth + 1)

    walk(root, 0)
    return {
        "execution_ms": round(plan["Execution Time"], 1),
        "planning_ms": round(plan["Planning Time"], 1),
        "triggers": [
            {"name": t["Trigger Name"], "ms": round(t["Time"], 1), "calls": t["Calls"]}
            for t in plan.get("Triggers", ())
        ],
        "shared_blocks": {k: root.get(f"Shared {k.title()} Blocks", 0) for k in ("hit", "read", "dirtied", "written")},
        "temp_blocks_written": root.get("Temp Written Blocks", 0),
        "jit_ms": round(plan.get("JIT", {}).get("Timing", {}).get("Total", 0), 1),
        "wal_mib": round(root.get("WAL Bytes", 0) / 2**20, 1),
        "wal_records": root.get("WAL Records", 0),
        "nodes": nodes,
    }


# --- serving ----------------------------------------------------------------------------------------


def group_cpu_s(group: int) -> float:
    """CPU seconds used so far by the processes of a process group (gunicorn's master and workers)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[2]) == group:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of a sorted list."""
    import math

    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def latency_summary(seconds: list[float]) -> dict:
    ordered = sorted(seconds)
    if not ordered:
        return {"n": 0}

    def ms(value: float) -> float:
        return round(value * 1000, 1)

    return {
        "n": len(ordered),
        "p50": ms(percentile(ordered, 50)),
        "p90": ms(percentile(ordered, 90)),
        "p99": ms(percentile(ordered, 99)),
        "max": ms(ordered[-1]),
        "mean": ms(sum(ordered) / len(ordered)),
    }


# --- what the machine was doing ------------------------------------------------------------------


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def _process_ticks() -> dict[tuple[int, int], tuple[str, int]]:
    """(pid, start time) -> (what it is, user + system ticks) of every process."""
    ticks = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            argv = [a.decode(errors="replace") for a in (stat.parent / "cmdline").read_bytes().split(b"\0") if a]
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        what = _what(text[text.index("(") + 1 : text.rindex(")")], argv)
        ticks[(int(stat.parent.name), int(fields[19]))] = (what, int(fields[11]) + int(fields[12]))
    return ticks


def _what(comm: str, argv: list[str]) -> str:
    """A process's kind: its command, the script a Python runs, the database a PostgreSQL backend serves."""
    words = " ".join(argv).split()
    if comm == "postgres" and words[:1] == ["postgres:"]:
        # "postgres: 15/main: <user> <database> <client> <activity>", or "postgres: 15/main: walwriter"
        return f"postgres {words[3]}" if len(words) > 4 and "(" in words[4] else f"postgres {' '.join(words[2:4])}"
    scripts = [n for n, a in enumerate(argv) if n and not a.startswith("-")]
    if comm.startswith("python") and scripts and "-c" not in argv:
        return " ".join(["python", Path(argv[scripts[0]]).name, *argv[scripts[0] + 1 : scripts[0] + 2]])[:80]
    return comm


class MachineWatch:
    """The machine's load over a benchmark run: load averages, how busy its CPUs were, and which
    processes (ours included) used the most CPU meanwhile, so figures are never read blind.

    Processes are sampled every `interval` s, so one that ended meanwhile (a child, a PostgreSQL
    backend) counts up to its last sample; one that lived less than `interval` s may be missed.
    """

    def __init__(self, interval: float = 1.0):
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._first: dict[tuple[int, int], tuple[str, int]] = {}
        self._last: dict[tuple[int, int], tuple[str, int]] = {}

    def __enter__(self):
        self.began = time.monotonic()
        self.loadavg_before = Path("/proc/loadavg").read_text().split()[:3]
        self.ticks_before = _machine_ticks()
        self._first = _process_ticks()
        self._last = dict(self._first)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()
        self.elapsed = time.monotonic() - self.began
        self.loadavg_after = Path("/proc/loadavg").read_text().split()[:3]
        self.ticks_after = _machine_ticks()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        for key, (name, ticks) in _process_ticks().items():
            # A process that started meanwhile spent all its ticks during the watch.
            self._first.setdefault(key, (name, 0))
            self._last[key] = (self._first[key][0], ticks)

    def report(self) -> dict:
        busy, total = (a - b for a, b in zip(self.ticks_after, self.ticks_before, strict=True))
        per_command: dict[str, float] = {}
        hz = os.sysconf("SC_CLK_TCK")
        for key, (name, ticks) in self._last.items():
            spent = ticks - self._first[key][1]
            if spent > 0:
                per_command[name] = per_command.get(name, 0) + spent / hz
        top = sorted(per_command.items(), key=lambda item: -item[1])[:12]
        meminfo = Path("/proc/meminfo").read_text().split()
        return {
            "seconds": round(self.elapsed, 1),
            "loadavg_before": self.loadavg_before,
            "loadavg_after": self.loadavg_after,
            "cpu_busy_pct": round(100 * busy / total, 1) if total else None,
            "mem_available_mib_after": int(meminfo[meminfo.index("MemAvailable:") + 1]) // 1024,
            "top_cpu_s": {name: round(seconds, 1) for name, seconds in top},
        }
