"""The daily roll-up of the ledger (UsageDaily), so a usage read does not sum a month of records.

What it holds, exactly: per organization, day (UTC), app, process type, size, price and currency, the
seconds inside that day of the *closed, non-empty* records of the day's period whose revision is at most
the mark (UsageRollupMark.revision). Everything else a read needs comes from the ledger itself, live
(selectors.usage_for_period): open records, records written or closed after the last pass, empty ones,
and whatever falls on the day of the read's cutoff.

How it is kept (`usage_rollup`, run by the meter task after metering):
- Every record takes a new revision from one sequence when it is written and again when it is closed
  (metering never rewrites a closed record).
- A pass first reads the highest revision under a SHARE lock of the ledger, which waits for the writers
  in flight: every revision up to it is then committed, so none can turn up later below the mark. The
  lock lasts one short transaction (writers that arrive meanwhile wait for it), and a pass that cannot
  get it within LOCK_TIMEOUT is skipped: the next one catches up.
- Then, under an advisory lock that serializes passes against each other and against reads, it
  recomputes from the ledger every (organization, day) that a record with a revision between the old
  mark and that one touches, with one statement, and moves the mark. Recomputing a slice sets it to
  what the ledger says, so a second pass, or two at once, change nothing.
"""

import logging

from django.db import OperationalError, connection, transaction
from django.utils import timezone
from psycopg.errors import LockNotAvailable

logger = logging.getLogger(__name__)

# The roll-up's advisory lock (any constant of Berth's own): a pass takes it alone, a usage read shared.
ROLLUP_LOCK = 0x6265727468_7275
# A pass waits at most this long for the ledger's writers; the next pass (30 s later) tries again.
LOCK_TIMEOUT = "5s"

# Rolled up: closed, not empty, and at or below the mark. The one definition reads and passes share.
ROLLED_UP = "(r.ended_at > r.started_at AND r.revision <= {mark})"
# The days (UTC, as timestamps) a closed record touches, and its seconds inside day `d.day`. The usage
# report splits records at midnight with the same expressions, so the numbers are the same to the microsecond.
DAYS_OF_RECORD = """generate_series(
    date_trunc('day', r.started_at AT TIME ZONE 'UTC'),
    date_trunc('day', (r.ended_at - interval '1 microsecond') AT TIME ZONE 'UTC'),
    interval '1 day') AS d(day)"""
SECONDS_IN_DAY = """EXTRACT(EPOCH FROM (
    LEAST(r.ended_at, (d.day + interval '1 day') AT TIME ZONE 'UTC')
    - GREATEST(r.started_at, d.day AT TIME ZONE 'UTC')))"""
COLUMNS = ("organization_id", "day", "app_name", "process_type", "size_name", "price_per_hour", "currency")
KEY = ", ".join(COLUMNS)


def _key_of(alias: str) -> str:
    return "(" + ", ".join(f"{alias}.{column}" for column in COLUMNS) + ")"


# A record counts towards the day only in the period it belongs to (a record closed late, past its
# period's end, is clipped there by usage reads).
_IN_ITS_PERIOD = "date_trunc('month', d.day)::date = r.period"

_REBUILD = f"""
    INSERT INTO billing_usagedaily ({KEY}, seconds)
    SELECT r.organization_id, d.day::date, r.app_name, r.process_type, r.size_name, r.price_per_hour, r.currency,
           SUM({SECONDS_IN_DAY})
    FROM billing_usagerecord r CROSS JOIN LATERAL {DAYS_OF_RECORD}
    WHERE {ROLLED_UP.format(mark="%(upto)s")} AND {_IN_ITS_PERIOD}
    GROUP BY 1, 2, 3, 4, 5, 6, 7
"""

# The (organization, day) slices touched by records of revisions in (after, upto], recomputed from the
# ledger: rows that changed are written, rows whose usage is gone are deleted, equal rows left alone.
# LATERAL and = ANY(ARRAY(…)) keep the planner on the indexes, slice by slice: it guesses 1,000 rows per
# generate_series and would otherwise scan the whole ledger and roll-up for a handful of slices.
_UPDATE = f"""
    WITH touched AS (
        SELECT DISTINCT r.organization_id, d.day
        FROM billing_usagerecord r CROSS JOIN LATERAL {DAYS_OF_RECORD}
        WHERE r.revision > %(after)s AND {ROLLED_UP.format(mark="%(upto)s")} AND {_IN_ITS_PERIOD}
    ),
    fresh AS (
        SELECT t.organization_id, t.day::date AS day, s.*
        FROM touched t CROSS JOIN LATERAL (
            SELECT r.app_name, r.process_type, r.size_name, r.price_per_hour, r.currency,
                   SUM({SECONDS_IN_DAY}) AS seconds
            FROM billing_usagerecord r CROSS JOIN LATERAL (SELECT t.day) AS d(day)
            WHERE r.organization_id = t.organization_id AND r.period = date_trunc('month', t.day)::date
              AND r.ended_at > t.day AT TIME ZONE 'UTC' AND r.started_at < (t.day + interval '1 day') AT TIME ZONE 'UTC'
              AND {ROLLED_UP.format(mark="%(upto)s")}
            GROUP BY 1, 2, 3, 4, 5
        ) AS s
    ),
    written AS (
        INSERT INTO billing_usagedaily AS u ({KEY}, seconds)
        SELECT {KEY}, seconds FROM fresh
        ON CONFLICT ON CONSTRAINT usage_daily_once DO UPDATE SET seconds = EXCLUDED.seconds
        WHERE u.seconds <> EXCLUDED.seconds
        RETURNING 1
    ),
    deleted AS (
        DELETE FROM billing_usagedaily u
        WHERE u.organization_id = ANY(ARRAY(SELECT organization_id FROM touched))
          AND u.day = ANY(ARRAY(SELECT day::date FROM touched))
          AND EXISTS (SELECT 1 FROM touched t WHERE t.organization_id = u.organization_id AND t.day::date = u.day)
          AND NOT EXISTS (SELECT 1 FROM fresh f WHERE {_key_of("f")} = {_key_of("u")})
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM written) + (SELECT count(*) FROM deleted)
"""


def usage_rollup(*, rebuild: bool = False) -> int:
    """Bring the roll-up up to what the ledger has committed; returns the roll-up rows written or deleted.

    `rebuild` throws the roll-up away and builds it again from the whole ledger (a repair; passes never need it).
    """
    upto = _committed_revision()
    if upto is None:
        logger.warning("usage roll-up skipped: the ledger's writers did not finish within %s", LOCK_TIMEOUT)
        return 0
    with transaction.atomic(), connection.cursor() as cursor:
        # No JIT: the generate_series guesses make the plan look costly enough to compile, which takes
        # far longer (0.7 to 2 s measured) than running it (a few ms).
        cursor.execute("SELECT pg_advisory_xact_lock(%s), set_config('jit', 'off', true)", [ROLLUP_LOCK])
        cursor.execute("INSERT INTO billing_usagerollupmark (id, revision) VALUES (1, 0) ON CONFLICT DO NOTHING")
        cursor.execute("SELECT revision FROM billing_usagerollupmark WHERE id = 1")
        after = 0 if rebuild else cursor.fetchone()[0]
        if upto <= after and not rebuild:
            return 0
        if after == 0:
            # Nothing rolled up yet (a new installation, a ledger loaded in bulk, a repair): one scan of it.
            cursor.execute("DELETE FROM billing_usagedaily")
            cursor.execute(_REBUILD, {"upto": upto})
            changed = cursor.rowcount
        else:
            cursor.execute(_UPDATE, {"after": after, "upto": upto})
            changed = cursor.fetchone()[0]
        cursor.execute(
            "UPDATE billing_usagerollupmark SET revision = %s, rolled_at = %s WHERE id = 1", [upto, timezone.now()]
        )
    return changed


def _committed_revision() -> int | None:
    """The highest revision in the ledger, read when no writer is in flight; None if they did not finish in time."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [LOCK_TIMEOUT])
            cursor.execute("LOCK TABLE billing_usagerecord IN SHARE MODE")
            cursor.execute("SELECT COALESCE(MAX(revision), 0) FROM billing_usagerecord")
            return cursor.fetchone()[0]
    except OperationalError as error:
        if isinstance(error.__cause__, LockNotAvailable):
            return None
        raise
