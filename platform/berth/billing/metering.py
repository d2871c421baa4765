"""The usage ledger, derived from what the worker observed of each container (docs/architecture.md#billing).

A container is billed from the host's StartedAt to its FinishedAt, or to the last time it was seen
running when its host was lost; requested is not running. `usage_sync` is level-based: it computes
the intervals a container's observed life should have and writes what is missing, so running it
twice, or from two workers at once, changes nothing (the container's row is locked, and PostgreSQL
constraints forbid a duplicate or an overlap). It runs at every change of a container's state that the
ledger reads (`fleet.transitions`), and in the periodic pass (`usage_sync_pass`) for what those missed.
"""

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from itertools import pairwise

from django.db import transaction
from django.db.models import Exists, OuterRef, Q

from berth.fleet.models import Container

from .models import ClosedPeriod, NextRevision, SizePrice, UsageRecord
from .money import period_end, period_of
from .rollup import usage_rollup

logger = logging.getLogger(__name__)
ENDED = {Container.State.REMOVED, Container.State.EXITED, Container.State.LOST}


@dataclass(frozen=True)
class Interval:
    start: datetime
    end: datetime | None
    price_per_hour: Decimal
    currency: str


def prices_of(size_id: int) -> list[tuple[datetime, Decimal, str]]:
    return list(
        SizePrice.objects.filter(size_id=size_id)
        .order_by("effective_from")
        .values_list("effective_from", "price_per_hour", "currency")
    )


def price_at(prices: list, moment: datetime) -> tuple[Decimal, str]:
    """The price in force at a moment; a size with no price yet is free."""
    current = (Decimal(0), "USD")
    for effective_from, price, currency in prices:
        if effective_from > moment:
            break
        current = (price, currency)
    return current


def intervals(start: datetime, end: datetime, prices: list) -> list[Interval]:
    """Split [start, end) at every price change and every period boundary inside it."""
    cuts = {moment for moment, _, _ in prices if start < moment < end}
    boundary = period_end(period_of(start))
    while boundary < end:
        cuts.add(boundary)
        boundary = period_end(period_of(boundary))
    points = [start, *sorted(cuts), end]
    return [Interval(a, b, *price_at(prices, a)) for a, b in pairwise(points)]


def _split_open(start: datetime, now: datetime, prices: list) -> list[Interval]:
    """Intervals of a container still running at `now`: closed ones, then an open one."""
    spans = intervals(start, now, prices)
    last = spans[-1]
    return [*spans[:-1], Interval(last.start, None, last.price_per_hour, last.currency)]


def usage_sync(container_ids, *, now: datetime) -> int:
    """Bring the ledger of these containers up to what was observed; returns rows written or closed."""
    written = 0
    for container_id in container_ids:
        written += _sync_one(container_id, now)
    return written


@transaction.atomic
def _sync_one(container_id: int, now: datetime) -> int:
    container = (
        Container.objects.select_for_update(of=("self",)).select_related("app", "size").filter(pk=container_id).first()
    )
    if container is None or container.started_at is None:
        return 0
    prices = prices_of(container.size_id)
    if container.state in ENDED:
        end = container.finished_at or container.last_seen_at or container.started_at
        wanted = intervals(container.started_at, max(end, container.started_at), prices)
    else:
        wanted = _split_open(container.started_at, max(now, container.started_at), prices)
    existing = {record.started_at: record for record in container.usage.all()}
    changed = 0
    for interval in wanted:
        record = existing.get(interval.start)
        if record is None:
            UsageRecord.objects.create(
                # Decided in the INSERT itself, after any finalizing lock is released (invoicing.py).
                late=Exists(ClosedPeriod.objects.filter(period=period_of(interval.start))),
                container=container,
                organization_id=container.organization_id,
                app=container.app,
                app_name=container.app.name,
                process_type=container.process_type,
                size_name=container.size.name,
                price_per_hour=interval.price_per_hour,
                currency=interval.currency,
                started_at=interval.start,
                ended_at=interval.end,
                period=period_of(interval.start),
            )
            changed += 1
        elif record.ended_at is None and interval.end is not None:
            UsageRecord.objects.filter(pk=record.pk).update(ended_at=interval.end, revision=NextRevision())
            changed += 1
        elif record.ended_at != interval.end:
            # Closed intervals are never rewritten; a host that changed its mind is worth a look.
            logger.warning(
                "usage of container %s from %s ends at %s, observed %s",
                container_id,
                interval.start,
                record.ended_at,
                interval.end,
            )
    return changed


def usage_sync_pass(*, now: datetime) -> dict:
    """The periodic pass (the meter task): bring the ledger up to what was observed, then roll up what
    changed."""
    synced = usage_sync_all(now=now)
    return {"ledger_rows_written": synced, "rollup_rows_written": usage_rollup()}


def usage_sync_all(*, now: datetime) -> int:
    """Sync the containers whose ledger needs a change, found with one query: most running containers
    have an open record with nothing to split, and a pass over them writes nothing."""
    return usage_sync(list(containers_to_sync(now=now)), now=now)


def containers_to_sync(*, now: datetime):
    """Ids of containers whose ledger lags what was observed: live ones without an open record; open
    records that a price change of their size or a period boundary must split; ended containers with an
    open record, or with no record at all."""
    records = UsageRecord.objects.filter(container=OuterRef("pk"))
    open_record = records.filter(ended_at__isnull=True)
    price_change = SizePrice.objects.filter(
        size=OuterRef(OuterRef("size")), effective_from__gt=OuterRef("started_at"), effective_from__lt=now
    )
    # An earlier period's record ends at that period's end, which is before now (a superset when now
    # is that very moment: syncing then changes nothing).
    to_split = open_record.filter(Q(period__lt=period_of(now)) | Exists(price_change))
    ended = Q(state__in=ENDED)
    return (
        Container.objects.filter(started_at__isnull=False)
        .filter(
            (Q(state__in=Container.LIVE) & ~Exists(open_record))
            | (~ended & Exists(to_split))
            | (ended & Exists(open_record))
            | (ended & ~Exists(records))
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def usage_close_for_app(*, app, at: datetime) -> int:
    """End the open intervals of an app that is being deleted, at the moment of deletion. They are
    first split up to that moment, so none closes across a period boundary or a price change the
    periodic pass (usage_sync_pass) has not reached yet."""
    usage_sync(app.containers.filter(state__in=Container.LIVE).values_list("pk", flat=True), now=at)
    return UsageRecord.objects.filter(app=app, ended_at__isnull=True, started_at__lte=at).update(
        ended_at=at, revision=NextRevision()
    )
