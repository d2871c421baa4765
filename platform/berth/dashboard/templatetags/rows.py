"""The dashboard's long lists, written out in Python: the org home's apps (50 a page), an app's
containers (up to a hundred) and its ten newest deployments with their steps (a rollout of 100 containers
writes 500). Through the template engine a step cost ~50 µs (two date filters and an escaped message), a
container row ~70 µs and an app row ~35 µs (each variable and condition a few µs), most of a page's CPU
where a page has 15 ms; here each is one f-string. The markup is the one the templates had, and every
value that is not Berth's own is escaped as the template engine escapes it."""

from collections.abc import Iterable
from html import escape
from typing import Any

from django import template
from django.utils.safestring import SafeString, mark_safe

from berth.deployments.selectors import ActivityEntry, StepLine
from berth.fleet.models import Container
from berth.fleet.selectors import ContainerExit, LiveContainer

from .moments import ago, lasted

register = template.Library()

_HEALTH = dict(Container.Health.choices)
_STATE = dict(Container.State.choices)


@register.filter
def step_items(steps: Iterable[StepLine]) -> SafeString:
    """`<li><time datetime="…">HH:MM:SS</time> message</li>` per step: the time of day in UTC, the
    dashboard's time zone (settings.TIME_ZONE)."""
    # The time is ISO text from PostgreSQL (deployments.selectors._STEP_LINES); the message is escaped.
    return mark_safe(  # noqa: S308
        "".join([f'<li><time datetime="{at}">{at[11:19]}</time> {escape(message)}</li>' for at, message in steps])
    )


@register.filter
def activity_items(deployments: Iterable[ActivityEntry]) -> SafeString:
    """An `<li>` per deployment: kind, release, state, who and when, the reason of a failure, and its steps,
    folded (`<details hx-preserve>`) once it succeeded; empty when the page holds them (`step_lines` None:
    htmx keeps the page's own)."""
    return mark_safe("".join([_activity_item(d) for d in deployments]))  # noqa: S308  # each value is escaped


def _activity_item(d: ActivityEntry) -> str:
    badge = "running-deploy" if d.state == "running" else escape(d.state)
    who = escape(d.author) if d.author else "Berth"
    error = f'<p class="error">Failed: {escape(d.error)}</p>' if d.error else ""
    if d.step_lines is None:
        steps = f'<details id="steps-{d.id}" hx-preserve></details>'
    else:
        steps = f'<ol class="steps">{step_items(d.step_lines)}</ol>'
        if d.state == "succeeded":
            count = len(d.step_lines)
            summary = f"<summary>{count} step{'' if count == 1 else 's'}</summary>"
            steps = f'<details id="steps-{d.id}" hx-preserve>{summary}{steps}</details>'
    return (
        f'<li class="{escape(d.state)}" id="deployment-{d.id}">'
        f'<p class="deployment-head"><strong>{escape(d.get_kind_display())}</strong> to v{d.version} '
        f'<span class="badge {badge}">{escape(d.get_state_display())}</span> '
        f'<span class="muted">· {who} · {ago(d.created_at)}</span></p>'
        f"{error}{steps}</li>\n"
    )


@register.filter
def container_rows(containers: Iterable[LiveContainer]) -> SafeString:
    """A `<tr>` per live container: slot, release, host, address and port, health (and the state, unless
    running), uptime, and restarts with the last exit's cause and age."""
    return mark_safe("".join([_container_row(c) for c in containers]))  # noqa: S308  # each value is escaped


def _container_row(c: LiveContainer) -> str:
    port = f":{c.published_port}" if c.published_port else ""
    state = f' <span class="muted">{escape(_STATE.get(c.state, c.state))}</span>' if c.state != "running" else ""
    up = lasted(c.started_at) if c.started_at else '<span class="muted">not started</span>'
    return (
        f'<tr id="container-{c.id}">'
        f'<td class="mono">{escape(c.process_type)}.{c.slot}</td>'
        f"<td>v{c.release}</td>"
        f"<td>{escape(c.host)}</td>"
        f'<td class="mono">{escape(c.address)}{port}</td>'
        f'<td><span class="badge {escape(c.health)}">{escape(_HEALTH.get(c.health, c.health))}</span>{state}</td>'
        f"<td>{up}</td>"
        f'<td class="num">{c.restarts}{_last_exit(c.last_exit)}</td>'
        "</tr>\n"
    )


def _last_exit(last: ContainerExit | None) -> str:
    if last is None:
        return ""
    if last.oom_killed:
        cause = "out of memory"
    elif last.state == Container.State.LOST:
        cause = "host lost"
    else:
        cause = f"exit {last.exit_code}"
    return f' <small class="muted">(last: {cause}, {ago(last.finished_at)})</small>'


@register.filter
def app_rows(rows: Iterable[Any], may_delete: bool) -> SafeString:
    """A `<tr>` per app of the org home (views.orgs.AppRow): name and description, status and what it
    leaves to say, release, containers live of wanted, the month's cost (unless the role may not see
    billing: `cost` is None) and, for roles that may delete apps, the delete link."""
    return mark_safe("".join([_app_row(row, may_delete) for row in rows]))  # noqa: S308  # each value is escaped


def _app_row(row: Any, may_delete: bool) -> str:
    name = escape(row.name)
    description = f' <small class="muted app-description">{escape(row.description)}</small>' if row.description else ""
    detail = f' <small class="muted status-detail">{escape(row.detail)}</small>' if row.detail else ""
    release = escape(row.release) if row.release else '<span class="muted">none</span>'
    cost = f'<td class="num">{escape(row.cost)}</td>' if row.cost is not None else ""
    delete = (
        f'<td><a href="{escape(row.delete_url)}">Delete<span class="visually-hidden"> {name}</span></a></td>'
        if may_delete
        else ""
    )
    return (
        f'<tr><th scope="row"><a href="{escape(row.url)}">{name}</a>{description}</th>'
        f'<td><span class="badge {row.status.value}">{escape(row.status.label)}</span>{detail}</td>'
        f'<td class="num">{release}</td>'
        f'<td class="num">{escape(row.containers)}</td>'
        f"{cost}{delete}</tr>\n"
    )
