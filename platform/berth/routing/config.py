"""A router's configuration files: HAProxy's, which routes, and Caddy's, which terminates TLS in front of it.

Both are written once, when a router is set up (`manage.py router configure`), and never change while it
runs: the worker changes HAProxy's routes through its runtime API, which swaps servers, weights and
drain states in place, so keep-alive clients never see a reload (docs/routing.md says why). HAProxy
cannot add backends at run time, so the file holds `slots` empty ones; each routed app takes one.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from .models import backend_name

NOT_FOUND_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>No such app</title></head>
<body><h1>No such app</h1><p>Nothing on Berth answers at this address.</p></body></html>
"""

UNAVAILABLE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>App not running</title></head>
<body><h1>App not running</h1><p>This app has no process serving HTTP right now.</p></body></html>
"""

# A request id a client sent is passed on if it looks like one; any other gets a new UUID.
REQUEST_ID = r"^[-A-Za-z0-9+/=._:]{20,200}$"

# Replica checks: a failed connection marks a replica down at once (passive health, `observe`), and a
# connect check brings it back (rise) or confirms it (fall); Berth's own health checks decide the rest.
SERVER_OPTIONS = "check inter 2s fall 1 rise 2 observe layer4 error-limit 1 on-error mark-down"


@dataclass(frozen=True)
class RouterFiles:
    """Where a router keeps its files, and the addresses it listens on."""

    directory: Path
    bind: str = "127.0.0.1"
    http_port: int = 80
    https_port: int = 443
    # Caddy asks here whether a hostname is routed before it gets a certificate for it (on-demand TLS).
    ask_port: int = 9080
    slots: int = 1024
    # "internal": Caddy's own CA (development, tests); "acme": Let's Encrypt and the like (production).
    tls_issuer: str = "internal"
    acme_email: str = ""

    @property
    def admin_socket(self) -> Path:
        return self.directory / "admin.sock"

    @property
    def admin_url(self) -> str:
        return f"unix://{self.admin_socket}"

    @property
    def tls_socket(self) -> Path:
        return self.directory / "tls.sock"

    @property
    def hosts_map(self) -> Path:
        return self.directory / "hosts.map"

    @property
    def https_map(self) -> Path:
        return self.directory / "https.map"

    @property
    def haproxy_cfg(self) -> Path:
        return self.directory / "haproxy.cfg"

    @property
    def caddy_json(self) -> Path:
        return self.directory / "caddy.json"

    @property
    def caddy_ca_root(self) -> Path:
        """The internal CA's root certificate, which clients trust to check HTTPS in development."""
        return self.directory / "caddy" / "pki" / "authorities" / "local" / "root.crt"

    def write(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "caddy").mkdir(exist_ok=True)
        for path in (self.hosts_map, self.https_map):
            path.write_text("")  # filled at run time; HAProxy reads them only at start
        (self.directory / "404.html").write_text(NOT_FOUND_PAGE)
        (self.directory / "503.http").write_text(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/html; charset=utf-8\r\n"
            f"Cache-Control: no-store\r\nConnection: close\r\n\r\n{UNAVAILABLE_PAGE}"
        )
        self.haproxy_cfg.write_text(haproxy_config(self))
        self.caddy_json.write_text(json.dumps(caddy_config(self), indent=2) + "\n")


def haproxy_config(files: RouterFiles) -> str:
    https_suffix = "" if files.https_port == 443 else f":{files.https_port}"
    redirect = f"https://%[req.hdr(host),field(1,:)]{https_suffix}%[capture.req.uri]"
    routing = f"""\
  http-request set-var(txn.host) req.hdr(host),lower,field(1,:)
  # Kept when a client (or a load balancer in front) sent a usable one, so a request can be followed.
  http-request set-header X-Request-Id %[uuid(4)] unless {{ req.hdr(x-request-id) -m reg {REQUEST_ID} }}
  use_backend %[var(txn.host),map({files.hosts_map})]
  default_backend unknown
"""
    backends = "".join(f"backend {backend_name(n)}\n  balance roundrobin\n" for n in range(files.slots))
    return f"""\
# Written by `manage.py router configure`; routes are changed at run time by Berth's worker, never here.
global
  stats socket {files.admin_socket} mode 600 level admin
  hard-stop-after 60s

defaults
  mode http
  option http-keep-alive
  # Should HAProxy itself ever reload, idle keep-alive connections get one last answer, not a reset.
  option idle-close-on-response
  timeout connect 1s
  timeout client 60s
  timeout http-request 10s
  timeout http-keep-alive 60s
  timeout server 60s
  timeout queue 5s
  # A request a replica refused, or that it closed without answering (it died), goes to another
  # replica; only idempotent ones after they were sent (see disable-l7-retry below).
  retries 3
  option redispatch 1
  retry-on conn-failure empty-response junk-response
  errorfile 503 {files.directory / "503.http"}

frontend http
  bind {files.bind}:{files.http_port}
  option forwardfor
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  http-request disable-l7-retry unless METH_GET or METH_HEAD or METH_OPTIONS or {{ method PUT DELETE TRACE }}
  acl https_only req.hdr(host),lower,field(1,:),map({files.https_map}) -m found
  http-request redirect location {redirect} code 308 if https_only
{routing}
# Requests Caddy decrypted: it set X-Forwarded-For, -Proto and -Host, and only it can reach this socket.
frontend tls
  bind unix@{files.tls_socket} mode 600
  http-request disable-l7-retry unless METH_GET or METH_HEAD or METH_OPTIONS or {{ method PUT DELETE TRACE }}
{routing}
# Caddy's question before it gets a certificate on demand: is this hostname routed here?
frontend ask
  bind 127.0.0.1:{files.ask_port}
  http-request return status 200 if {{ url_param(domain),lower,map({files.hosts_map}) -m found }}
  http-request return status 404

backend unknown
  http-request return status 404 content-type "text/html; charset=utf-8" file {files.directory / "404.html"}

{backends}"""


def caddy_config(files: RouterFiles) -> dict:
    issuer: dict = {"module": "internal"}
    if files.tls_issuer == "acme":
        # TLS-ALPN on the https port: the http port is HAProxy's.
        issuer = {"module": "acme", "challenges": {"http": {"disabled": True}}}
        if files.acme_email:
            issuer["email"] = files.acme_email
    return {
        "admin": {"listen": f"unix/{files.directory / 'caddy-admin.sock'}", "config": {"persist": False}},
        "storage": {"module": "file_system", "root": str(files.directory / "caddy")},
        "apps": {
            "http": {
                "http_port": files.http_port,
                "https_port": files.https_port,
                "servers": {
                    "berth": {
                        "listen": [f"{files.bind}:{files.https_port}"],
                        "routes": [
                            {
                                "handle": [
                                    {
                                        "handler": "reverse_proxy",
                                        "upstreams": [{"dial": f"unix/{files.tls_socket}"}],
                                        # Caddy keeps idle connections to HAProxy 2 minutes by default,
                                        # but HAProxy closes them after its `timeout http-keep-alive`
                                        # (60 s): a POST sent on one as HAProxy closes it would get a
                                        # 502. Caddy lets them go first.
                                        "transport": {"protocol": "http", "keep_alive": {"idle_timeout": "30s"}},
                                    }
                                ]
                            }
                        ],
                        "tls_connection_policies": [{}],
                        "automatic_https": {"disable_redirects": True},
                    }
                },
            },
            "tls": {
                "automation": {
                    "policies": [{"issuers": [issuer], "on_demand": True}],
                    "on_demand": {
                        "permission": {"module": "http", "endpoint": f"http://127.0.0.1:{files.ask_port}/allowed"}
                    },
                }
            },
            "pki": {"certificate_authorities": {"local": {"install_trust": False}}},
        },
    }
