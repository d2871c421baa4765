"""Secret tokens (API tokens, invitation tokens): generation, parsing and the digest stored at rest.

A token is `berth_<key_id>_<secret>`: the key id finds the row, the whole token is checked against
a SHA-256 digest. The secret carries 256 bits of randomness, so a fast hash is enough (a slow
password hash would protect nothing more and cost a hash per API request).
"""

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

TOKEN_PREFIX = "berth_"  # noqa: S105  (a public prefix, not a secret)
_TOKEN_RE = re.compile(r"^berth_([0-9a-f]{12})_([A-Za-z0-9_-]{43})\Z")


@dataclass(frozen=True)
class NewToken:
    plaintext: str
    key_id: str
    digest: str


def token_digest(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def token_generate() -> NewToken:
    key_id = secrets.token_hex(6)
    plaintext = f"{TOKEN_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    return NewToken(plaintext=plaintext, key_id=key_id, digest=token_digest(plaintext))


def token_key_id(plaintext: str) -> str | None:
    """The key id of a well-formed token, or None for anything else."""
    match = _TOKEN_RE.match(plaintext)
    return match.group(1) if match else None


def token_matches(plaintext: str, digest: str) -> bool:
    return hmac.compare_digest(token_digest(plaintext), digest)
