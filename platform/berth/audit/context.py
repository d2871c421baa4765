"""Where the current change comes from (source and client address), set once per request.

A context variable keeps services free of request plumbing: the middleware sets it, services
read it when they record an event, and background work defaults to the system source.
"""

from contextvars import ContextVar
from dataclasses import dataclass

from django.http import HttpRequest

from berth.core.requests import client_ip


@dataclass(frozen=True)
class AuditContext:
    source: str
    ip_address: str | None = None


_SYSTEM = AuditContext(source="system")
_current: ContextVar[AuditContext] = ContextVar("berth_audit_context", default=_SYSTEM)


def current_audit_context() -> AuditContext:
    return _current.get()


def source_for_path(path: str) -> str:
    if path.startswith("/api/"):
        return "api"
    return "console" if path.startswith("/console/") else "dashboard"


class AuditContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        token = _current.set(AuditContext(source=source_for_path(request.path), ip_address=client_ip(request)))
        try:
            return self.get_response(request)
        finally:
            _current.reset(token)
