"""HTTPS through a real router: Caddy gets a certificate on demand for a hostname Berth routes, and for no
other (it asks HAProxy's `ask` port first); an app that asks for HTTPS only has plain HTTP redirected."""

import ssl

import pytest

from berth.routing.hostnames import default_hostname
from berth.routing.services import app_routing_update, domain_add
from tests.deployments.helpers import live
from worker import routing

from .helpers import deploy_app

pytestmark = pytest.mark.docker


def environment(body: str) -> dict[str, str]:
    """The CGI environment /cgi-bin/request prints after its first line."""
    return dict(line.split("=", 1) for line in body.splitlines()[1:] if "=" in line)


def test_a_certificate_is_issued_on_demand_for_a_routed_custom_domain(fleet, router, tenant):
    app = deploy_app(tenant, "hello")
    domain_add(actor=tenant, app=app, hostname="www.example.com")
    routing.push([app.pk])

    connection = router.connection("www.example.com", https=True)
    connection.request("GET", "/cgi-bin/request", headers={"Host": "www.example.com"})
    response = connection.getresponse()
    body = response.read().decode()
    certificate = connection.sock.getpeercert()
    connection.close()
    assert response.status == 200
    [replica] = live(app)
    assert body.startswith(f"SERVED_BY={replica.docker_id[:12]} ")
    assert ("DNS", "www.example.com") in certificate["subjectAltName"]
    issuer = dict(item for pair in certificate["issuer"] for item in pair)
    assert issuer["commonName"].startswith("Caddy Local Authority")


def test_no_certificate_for_a_hostname_berth_does_not_route(fleet, router, tenant):
    deploy_app(tenant, "hello")
    # Names no test routes: Caddy keeps the certificates it got for this session's router.
    for hostname in ("never-routed.example.com", "nope.shop.localhost", "hello.shop.localhost.evil.test"):
        with pytest.raises(ssl.SSLError):
            router.get(hostname, "/", https=True)
    assert not list((router.files.directory / "caddy" / "certificates").rglob("never-routed.example.com*"))


def test_https_only_redirects_plain_http_to_https_with_the_path_and_query(fleet, router, tenant):
    app = deploy_app(tenant, "hello")
    hostname = default_hostname("hello", "shop")
    domain_add(actor=tenant, app=app, hostname="shop.example.com")
    app_routing_update(actor=tenant, app=app, https_only=True)
    routing.push([app.pk])

    https_port = router.files.https_port
    for name in (hostname, "shop.example.com"):
        response = router.get(name, "/cgi-bin/request?page=2&sort=name")
        assert response.status == 308, name
        assert response.headers["location"] == f"https://{name}:{https_port}/cgi-bin/request?page=2&sort=name"
    # A Host header with the http port gives the https port; a POST is redirected too (308 keeps the method).
    response = router.get(hostname, "/", headers={"Host": f"{hostname}:{router.files.http_port}"})
    assert response.headers["location"] == f"https://{hostname}:{https_port}/"
    assert router.post(hostname, "/cgi-bin/request").status == 308

    served = router.get(hostname, "/cgi-bin/request?page=2", https=True)
    assert served.status == 200 and served.body.splitlines()[0].endswith("web v1")

    app_routing_update(actor=tenant, app=app, https_only=False)
    routing.push([app.pk])
    assert router.get(hostname, "/cgi-bin/request").status == 200


def test_the_forwarded_headers_say_which_scheme_the_client_used_whatever_it_claims(fleet, router, tenant):
    deploy_app(tenant, "hello")
    hostname = default_hostname("hello", "shop")
    claims = {"X-Forwarded-Proto": "ftp", "X-Forwarded-Host": "evil.test", "X-Forwarded-For": "192.0.2.9"}
    over_tls = environment(router.get(hostname, "/cgi-bin/request", https=True, headers=claims).body)
    assert over_tls["HTTP_X_FORWARDED_PROTO"] == "https"
    assert over_tls["HTTP_X_FORWARDED_HOST"] == hostname
    assert over_tls["HTTP_X_FORWARDED_FOR"] == "127.0.0.1"
    assert len(over_tls["HTTP_X_REQUEST_ID"]) == 36
    plain = environment(router.get(hostname, "/cgi-bin/request", headers=claims).body)
    assert plain["HTTP_X_FORWARDED_PROTO"] == "http"
    assert plain["HTTP_X_FORWARDED_HOST"] == hostname
    # HAProxy appends the client's address to what it claimed: the last address is the one to trust.
    assert plain["HTTP_X_FORWARDED_FOR"].endswith("127.0.0.1")
