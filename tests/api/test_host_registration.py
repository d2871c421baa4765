"""Registering Docker hosts reached over TLS and ssh, against the test bed's real engine, sshd and a real
worker: the engine's version is reported, bad credentials are refused on the field at fault with nothing
created, and no secret comes back out of the API, the audit log, the database or the worker's log."""

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID
from django.db import connection

from berth.audit.models import AuditEvent
from berth.fleet.models import DockerHost
from tests.conftest import token_client
from tests.factories import UserFactory

pytestmark = [pytest.mark.docker, pytest.mark.django_db]

HOSTS = "/api/v1/fleet/hosts/"


@pytest.fixture
def operator_api(db):
    return token_client(UserFactory(is_staff=True))


def register(client, remote_engine, fields: dict):
    body = {"name": "remote", "address": remote_engine.host.address, "memory_mb": 1024, "cpu_millis": 1000, **fields}
    return client.post(HOSTS, body, format="json")


def stranger_ca() -> tuple[str, ec.EllipticCurvePrivateKey]:
    """A CA that signed nothing on the test bed."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Not the test-bed CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key


def client_cert_from(ca_pem: str, ca_key) -> tuple[str, str]:
    """A client certificate and key signed by `ca_pem`."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "intruder")]))
        .issuer_name(x509.load_pem_x509_certificate(ca_pem.encode()).subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def key_body(pem: str) -> str:
    """The secret part of a PEM or OpenSSH key: what must never show anywhere."""
    return "".join(line for line in pem.strip().splitlines() if not line.startswith("-----"))[:60]


def stored_column(host_id: int, column: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM fleet_dockerhost WHERE id = %s", [host_id])  # noqa: S608 (a constant)
        return cursor.fetchone()[0]


def assert_refused(response, field: str, reason: str) -> None:
    assert response.status_code == 400, response.content
    body = response.json()
    assert reason in body["fields"][field][0], body
    assert not DockerHost.objects.exists()
    assert not AuditEvent.objects.filter(action="host.register").exists()


@pytest.mark.parametrize("transport", ["tls", "ssh"])
def test_registering_a_remote_engine_reports_its_version_and_keeps_its_key_secret(
    operator_api, remote_engine, engine_checker, transport
):
    fields = remote_engine.tls_fields() if transport == "tls" else remote_engine.ssh_fields()
    secret_name = "tls_client_key" if transport == "tls" else "ssh_private_key"
    secret = key_body(fields[secret_name])

    response = register(operator_api, remote_engine, fields)

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["engine_url"]) == ("up", fields["engine_url"])
    assert body["engine_version"].startswith("20.10"), body
    host = DockerHost.objects.get(pk=body["id"])
    assert getattr(host, secret_name) == fields[secret_name]
    # Encrypted at rest: the column holds a Fernet token, not the key.
    assert stored_column(host.pk, secret_name).startswith("gAAAAA")
    assert secret not in stored_column(host.pk, secret_name)
    shown = operator_api.get(f"{HOSTS}{host.pk}/").content.decode() + response.content.decode()
    event = AuditEvent.objects.get(action="host.register")
    assert event.changes["engine_version"] == body["engine_version"]
    for where in (shown, str(event.changes), engine_checker.logs()):
        assert secret not in where


def test_registering_by_host_key_fingerprint_works_too(operator_api, remote_engine, engine_checker):
    import base64
    import hashlib

    blob = base64.b64decode(remote_engine.ssh_host_key.split()[1])
    fingerprint = "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")

    response = register(operator_api, remote_engine, remote_engine.ssh_fields() | {"ssh_host_key": fingerprint})

    assert response.status_code == 201, response.content
    assert response.json()["ssh_host_key"] == fingerprint


def test_an_engine_whose_certificate_another_ca_signed_is_refused(operator_api, remote_engine, engine_checker):
    ca, _ = stranger_ca()
    response = register(operator_api, remote_engine, remote_engine.tls_fields() | {"tls_ca_cert": ca})
    assert_refused(response, "tls_ca_cert", "The engine's certificate is not signed by this CA")


def test_a_client_certificate_the_engine_does_not_trust_is_refused(operator_api, remote_engine, engine_checker):
    cert, key = client_cert_from(*stranger_ca())
    response = register(
        operator_api, remote_engine, remote_engine.tls_fields() | {"tls_client_cert": cert, "tls_client_key": key}
    )
    assert_refused(response, "tls_client_cert", "The engine refused this client certificate")


@pytest.mark.parametrize(
    ("missing", "field", "reason"),
    [
        ("tls_client_cert", "tls_client_cert", "A tcp:// engine needs it"),
        ("tls_ca_cert", "tls_ca_cert", "checked against this CA"),
    ],
)
def test_a_tls_engine_without_its_certificates_is_refused_before_any_connection(
    operator_api, remote_engine, missing, field, reason
):
    response = register(operator_api, remote_engine, remote_engine.tls_fields() | {missing: ""})
    assert_refused(response, field, reason)


def test_a_client_key_that_is_not_the_certificates_is_refused(operator_api, remote_engine):
    _, other_key = client_cert_from(*stranger_ca())
    response = register(operator_api, remote_engine, remote_engine.tls_fields() | {"tls_client_key": other_key})
    assert_refused(response, "tls_client_key", "does not belong to the client certificate")


def test_an_ssh_server_showing_another_host_key_is_refused(operator_api, remote_engine, engine_checker):
    impostor = ed25519.Ed25519PrivateKey.generate().public_key()
    line = impostor.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    response = register(operator_api, remote_engine, remote_engine.ssh_fields() | {"ssh_host_key": line})
    assert_refused(response, "ssh_host_key", "not the one registered for this host")


def test_an_ssh_key_the_server_does_not_accept_is_refused(operator_api, remote_engine, engine_checker):
    stranger = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    response = register(
        operator_api, remote_engine, remote_engine.ssh_fields() | {"ssh_private_key": stranger.decode()}
    )
    assert_refused(response, "ssh_private_key", "did not accept this private key")


def test_an_ssh_engine_without_a_host_key_is_refused_rather_than_trusted_on_first_use(operator_api, remote_engine):
    response = register(operator_api, remote_engine, remote_engine.ssh_fields() | {"ssh_host_key": ""})
    assert_refused(response, "ssh_host_key", "never trusts a server on first use")


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        (
            "ssh_private_key",
            "-----BEGIN OPENSSH PRIVATE KEY-----\nbm90IGEga2V5\n-----END OPENSSH PRIVATE KEY-----",
            "Not an unencrypted OpenSSH or PEM private key",
        ),
        ("ssh_private_key", "just some words", "Not an unencrypted OpenSSH or PEM private key"),
        ("ssh_host_key", "ssh-ed25519 bm90IGEga2V5", "Give a public key"),
    ],
)
def test_an_unreadable_ssh_key_is_a_400_on_its_field_before_any_connection(
    operator_api, remote_engine, field, value, reason
):
    response = register(operator_api, remote_engine, remote_engine.ssh_fields() | {field: value})
    assert_refused(response, field, reason)
