"""What a reader may ask of an app's logs: each parameter parsed, and each bad value refused by name."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from berth.core.errors import Invalid
from berth.logs.query import DEFAULT_LINES, MAX_LINES, log_query
from berth.logs.store import Filter


def test_nothing_asked_is_the_newest_hundred_lines_unfiltered():
    query = log_query({})
    assert (query.lines, query.since, query.where) == (DEFAULT_LINES, None, Filter())


def test_each_parameter_is_read():
    query = log_query(
        {"lines": "250", "since": "2026-12-06T11:00:00Z", "process_type": "web", "source": "berth", "search": "GET /"}
    )
    assert query.lines == 250
    assert query.since == datetime(2026, 12, 6, 11, tzinfo=UTC)
    assert query.where == Filter(process_type="web", source="berth", search="GET /")


@pytest.mark.parametrize(
    ("since", "back"),
    [
        ("90s", timedelta(seconds=90)),
        ("10m", timedelta(minutes=10)),
        ("2h", timedelta(hours=2)),
        ("7d", timedelta(days=7)),
    ],
)
def test_since_may_be_a_duration_back_from_now(since, back):
    before = timezone.now()
    moment = log_query({"since": since}).since
    assert moment is not None
    assert before - back - timedelta(seconds=1) <= moment <= timezone.now() - back


def test_a_time_without_an_offset_is_utc():
    assert log_query({"since": "2026-12-06T11:00"}).since == datetime(2026, 12, 6, 11, tzinfo=UTC)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"lines": "-1"}, "lines"),
        ({"lines": "ten"}, "lines"),
        ({"lines": str(MAX_LINES + 1)}, "lines"),
        ({"lines": "1e3"}, "lines"),
        ({"since": "yesterday"}, "since"),
        ({"since": "10x"}, "since"),
        ({"since": "2026-13-01T00:00:00Z"}, "since"),
        ({"process_type": "Web"}, "process_type"),
        ({"process_type": "web.1"}, "process_type"),
        ({"process_type": "x" * 31}, "process_type"),
        ({"source": "router"}, "source"),
        ({"search": "x" * 201}, "search"),
        ({"search": "a\x00b"}, "search"),
    ],
)
def test_a_bad_value_is_refused_naming_its_parameter(params, field):
    with pytest.raises(Invalid) as refused:
        log_query(params)
    assert refused.value.field == field
    assert refused.value.message
