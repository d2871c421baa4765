"""What an engine URL needs to be reached safely, checked before a host is stored or contacted.

The Engine API is root on its host. Berth speaks it over a unix socket, over TCP only with TLS both
ways (the engine's certificate checked against the CA the operator gave, never the system's), or over
ssh with the operator's key to a server whose host key the operator gave: Berth keeps no known_hosts
and never trusts a server on first use. These checks read the material only; whether the engine
accepts it is the worker's to find out (services.host_connection_test).
"""

import base64
import re
from datetime import UTC, datetime
from urllib.parse import urlparse

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

TLS_FIELDS = ("tls_ca_cert", "tls_client_cert", "tls_client_key")
SSH_FIELDS = ("ssh_private_key", "ssh_host_key")
CONNECTION_FIELDS = ("engine_url", *TLS_FIELDS, *SSH_FIELDS)
FINGERPRINT = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}\Z")
ENCRYPTED_KEY_REFUSED = "The key is protected by a passphrase; give it without one (it is stored encrypted)."


def credential_problems(**fields) -> dict[str, list[str]]:
    """Field -> reasons the connection fields cannot work; empty when they may."""
    url = fields.get("engine_url", "")
    given = {name: (fields.get(name) or "").strip() for name in (*TLS_FIELDS, *SSH_FIELDS)}
    scheme = url.split("://", 1)[0]
    problems: dict[str, list[str]] = {}
    wanted = {"tcp": TLS_FIELDS, "ssh": SSH_FIELDS}.get(scheme, ())
    for name, value in given.items():
        if value and name not in wanted:
            problems[name] = [f"Only for {'tcp' if name in TLS_FIELDS else 'ssh'}:// engines; leave it empty."]
    if scheme == "tcp":
        problems |= _tls_problems(**{name: given[name] for name in TLS_FIELDS})
    elif scheme == "ssh":
        problems |= _ssh_problems(url, **{name: given[name] for name in SSH_FIELDS})
    return problems


def _tls_problems(*, tls_ca_cert: str, tls_client_cert: str, tls_client_key: str) -> dict[str, list[str]]:
    problems = {}
    missing = "A tcp:// engine needs it: the Engine API is only spoken over TCP with TLS both ways."
    if not tls_ca_cert:
        problems["tls_ca_cert"] = [missing + " The engine's certificate is checked against this CA."]
    elif (reason := _certificates_problem(tls_ca_cert)) is not None:
        problems["tls_ca_cert"] = [reason]
    cert = None
    if not tls_client_cert:
        problems["tls_client_cert"] = [missing]
    elif (reason := _certificates_problem(tls_client_cert)) is not None:
        problems["tls_client_cert"] = [reason]
    else:
        cert = x509.load_pem_x509_certificate(tls_client_cert.encode())
    if not tls_client_key:
        problems["tls_client_key"] = [missing]
        return problems
    try:
        key = serialization.load_pem_private_key(tls_client_key.encode(), password=None)
    except TypeError:
        problems["tls_client_key"] = [
            "The key is protected by a passphrase; give it without one (it is stored encrypted)."
        ]
    except ValueError:
        problems["tls_client_key"] = ["Not a PEM private key."]
    else:
        if cert is not None and _public_bytes(key.public_key()) != _public_bytes(cert.public_key()):
            problems["tls_client_key"] = ["This key does not belong to the client certificate."]
    return problems


def _certificates_problem(pem: str) -> str | None:
    try:
        certificates = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        return "Not a PEM certificate (-----BEGIN CERTIFICATE-----)."
    now = datetime.now(UTC)
    for certificate in certificates:
        if (expiry := certificate.not_valid_after_utc) < now:
            return f"The certificate {certificate.subject.rfc4514_string()} expired on {expiry:%Y-%m-%d}."
    return None


def _public_bytes(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _ssh_problems(url: str, *, ssh_private_key: str, ssh_host_key: str) -> dict[str, list[str]]:
    problems = {}
    parsed = urlparse(url)
    if not parsed.username or not parsed.hostname:
        problems["engine_url"] = ["An ssh:// engine URL names the user and the host: ssh://user@host[:port]."]
    if not ssh_private_key:
        problems["ssh_private_key"] = ["An ssh:// engine needs the private key Berth logs in with."]
    else:
        try:
            serialization.load_ssh_private_key(ssh_private_key.encode(), password=None)
        except TypeError:
            problems["ssh_private_key"] = [ENCRYPTED_KEY_REFUSED]
        except (ValueError, UnsupportedAlgorithm):
            try:
                serialization.load_pem_private_key(ssh_private_key.encode(), password=None)
            except (TypeError, ValueError, UnsupportedAlgorithm):
                problems["ssh_private_key"] = ["Not an unencrypted OpenSSH or PEM private key."]
    if not ssh_host_key:
        problems["ssh_host_key"] = [
            "An ssh:// engine needs the server's host key (a line of `ssh-keyscan HOST`, or the SHA256: "
            "fingerprint from `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`): Berth never trusts a "
            "server on first use."
        ]
    elif normalize_host_key(ssh_host_key) is None:
        problems["ssh_host_key"] = ["Give a public key (ssh-ed25519 AAAA…), a line of ssh-keyscan, or SHA256:…"]
    return problems


def normalize_host_key(value: str) -> str | None:
    """ "type base64" of a public key (a known_hosts or ssh-keyscan line loses its host name and comment),
    or a SHA256: fingerprint as given; None when it is neither."""
    value = value.strip()
    if FINGERPRINT.match(value):
        return value
    words = value.split()
    if words and not words[0].startswith(("ssh-", "ecdsa-", "sk-")):
        words = words[1:]  # ssh-keyscan and known_hosts put the host first
    if len(words) < 2:
        return None
    try:
        base64.b64decode(words[1], validate=True)
        serialization.load_ssh_public_key(f"{words[0]} {words[1]}".encode())
    except (ValueError, UnsupportedAlgorithm):
        return None
    return f"{words[0]} {words[1]}"
