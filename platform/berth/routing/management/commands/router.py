"""`manage.py router configure`: write a router's HAProxy and Caddy files (berth.routing.config)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandParser

from berth.routing.config import RouterFiles


class Command(BaseCommand):
    help = "Write a router's configuration: HAProxy routes, Caddy terminates TLS in front of it."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        configure = sub.add_parser("configure", help="write haproxy.cfg and caddy.json into a directory")
        configure.add_argument("--dir", required=True, type=Path, help="where the router keeps its files")
        configure.add_argument("--bind", default="127.0.0.1", help="the address clients connect to")
        configure.add_argument("--http-port", type=int, default=80)
        configure.add_argument("--https-port", type=int, default=443)
        configure.add_argument("--ask-port", type=int, help="loopback port Caddy asks before issuing a certificate")
        configure.add_argument("--slots", type=int, default=1024, help="how many apps the router can hold")
        configure.add_argument("--tls-issuer", choices=["internal", "acme"], default="internal")
        configure.add_argument("--acme-email", default="")

    def handle(self, *args, **options) -> None:
        files = RouterFiles(
            directory=options["dir"].resolve(),
            bind=options["bind"],
            http_port=options["http_port"],
            https_port=options["https_port"],
            ask_port=options["ask_port"] or options["http_port"] + 10000,
            slots=options["slots"],
            tls_issuer=options["tls_issuer"],
            acme_email=options["acme_email"],
        )
        files.write()
        self.stdout.write(f"Router files in {files.directory}; admin endpoint {files.admin_url}")
