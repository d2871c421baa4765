"""Periods and the one rounding rule.

Amounts are computed exactly (Decimal seconds times Decimal price) and rounded once, per invoice line,
half up to the cent (PostgreSQL's ROUND on numeric, and ROUND_HALF_UP here, agree).

The usage report (selectors.usage_for_period) rounds the same way once per row it shows, so rows grouped
otherwise than an invoice's lines can sum to a cent or so apart from it. Its daily roll-up (rollup.py)
stores exact seconds, never amounts, so nothing is rounded before the row.

Seconds are shown to the millisecond, rounded half up from the ledger's microseconds, once per row or
invoice line (`ROUND(…, 3)` in SQL): 96.95 s reads 96.950, never 96. They are only shown rounded; an
amount is always computed from the exact seconds.
"""

import re
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

from berth.core.errors import Invalid

CENT = Decimal("0.01")
MILLISECOND = Decimal("0.001")
# [0-9], not \d: \d also takes other scripts' digits (fullwidth ones, say), and int() reads them as 0-9.
PERIOD = re.compile(r"^([0-9]{4})-(0[1-9]|1[0-2])\Z")


def round_amount(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def round_seconds(value: Decimal) -> Decimal:
    return value.quantize(MILLISECOND, rounding=ROUND_HALF_UP)


def period_of(moment: datetime) -> date:
    """The billing period (calendar month, UTC) a moment falls in, as its first day."""
    moment = moment.astimezone(UTC)
    return date(moment.year, moment.month, 1)


def period_start(period: date) -> datetime:
    return datetime(period.year, period.month, 1, tzinfo=UTC)


def next_period(period: date) -> date:
    return date(period.year + period.month // 12, period.month % 12 + 1, 1)


def period_end(period: date) -> datetime:
    return period_start(next_period(period))


def parse_period(value: str | None, *, now: datetime) -> date:
    """The period a caller names as YYYY-MM (the API's and the dashboard's `?period=`); the one of `now`
    when none is named. Anything else is refused on the field `period`."""
    if not value:
        return period_of(now)
    match = PERIOD.match(value)
    if not match or not 2000 <= int(match.group(1)) <= 2999:
        raise Invalid("Give the period as YYYY-MM.", field="period")
    return date(int(match.group(1)), int(match.group(2)), 1)
