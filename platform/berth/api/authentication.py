"""API authentication: personal tokens as `Authorization: Bearer …`, or the browser's session with CSRF."""

from rest_framework import authentication, exceptions

from berth.tenancy.services import TokenRejected, api_token_authenticate


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0].lower() != self.keyword.lower():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "Send the header as `Authorization: Bearer <token>`.", code="invalid_token"
            )
        try:
            return api_token_authenticate(header[1])
        except TokenRejected as rejected:
            raise exceptions.AuthenticationFailed(rejected.message, code=rejected.code) from None

    def authenticate_header(self, request):
        return f'{self.keyword} realm="berth"'


class SessionAuthentication(authentication.SessionAuthentication):
    """The browser's login session; DRF enforces CSRF on unsafe methods."""
