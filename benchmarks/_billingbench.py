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
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"
SERVER = "postgres://postgres@127.0.0.1:5432"

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
    from cryptography.fernet import Fernet

    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "berth.settings.prod",
        "DATABASE_URL": f"{SERVER}/{database}",
        "BERTH_SECRET_KEY": secrets.token_urlsafe(38)[:50],
        "BERTH_FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "BERTH_HTTPS": "false",
        "BERTH_ALLOWED_HOSTS": "127.0.0.1",
        "BERTH_CACHE_PREFIX": "berth-bench",
        **extra,
    }


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
        for effective_from, price in ((price_change.replace(year=price_change.year - 2), before), (price_change, after)):
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


def relation_sizes(cursor, tables: tuple[str, ...]) -> dict[str, int]:
    """Table + indexes + TOAST size in MiB."""
    cursor.execute(
        "SELECT relname, pg_total_relation_size(oid) FROM pg_class WHERE relname = ANY(%s)", [list(tables)]
    )
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
