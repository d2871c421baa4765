#!/usr/bin/env python
"""Berth's command-line utility for administrative tasks."""

import os
import sys
from pathlib import Path

# platform/ is a source root, not a package: putting it on the path keeps the standard
# library's `platform` module importable (docs/conventions.md#layout).
ROOT = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "berth.settings.dev")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
