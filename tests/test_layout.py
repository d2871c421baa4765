"""The source layout keeps the standard library importable (docs/conventions.md#layout)."""

import platform
import sysconfig
from pathlib import Path


def test_platform_is_the_standard_library_module():
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    assert Path(platform.__file__).resolve().parent == stdlib
    assert platform.python_version().startswith("3.11")


def test_platform_source_root_is_not_a_package():
    root = Path(__file__).resolve().parents[1]
    assert not (root / "platform" / "__init__.py").exists()
    assert (root / "platform" / "berth" / "__init__.py").exists()
