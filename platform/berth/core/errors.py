"""Domain errors raised by services. The API turns each into one JSON error shape."""


class BerthError(Exception):
    """A request that Berth refuses for a reason the caller can act on."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code


class Invalid(BerthError):
    status = 400
    code = "invalid"


class Forbidden(BerthError):
    status = 403
    code = "permission_denied"


class NotFound(BerthError):
    status = 404
    code = "not_found"


class Conflict(BerthError):
    status = 409
    code = "conflict"


class Unavailable(BerthError):
    """Something Berth needs to answer (a worker, say) did not answer in time; trying again may help."""

    status = 503
    code = "unavailable"
