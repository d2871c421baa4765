"""Run Berth's benchmarks, print their figures and append them to benchmarks/results/results.jsonl.

Every module in benchmarks/ whose name does not start with "_" (and is not this file) is a
benchmark: it defines NAME and `run() -> dict`. `run.py NAME …` runs only the named ones.
"""

import importlib
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "results.jsonl"


def benchmark_modules() -> list:
    names = sorted(path.stem for path in HERE.glob("*.py") if path.stem != "run" and not path.stem.startswith("_"))
    return [importlib.import_module(name) for name in names]


def machine() -> dict:
    """The machine and software a result was measured on, so figures are never compared blind."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "")
    meminfo = Path("/proc/meminfo").read_text().split()
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "memory_mib": int(meminfo[meminfo.index("MemTotal:") + 1]) // 1024,
        "loadavg_before": Path("/proc/loadavg").read_text().split()[:3],
        "kernel": platform.release(),
        "python": platform.python_version(),
        "django": version("django"),
        "djangorestframework": version("djangorestframework"),
        "gunicorn": version("gunicorn"),
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain")),
    }


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=HERE.parent, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def report(name: str, results: dict) -> None:
    print(f"\n== {name}")
    for key, value in results.items():
        print(f"  {key:<26} {json.dumps(value) if isinstance(value, dict | list) else value}")


def main(selected: list[str]) -> int:
    modules = [module for module in benchmark_modules() if not selected or module.NAME in selected]
    if not modules:
        print(f"No benchmark named {', '.join(selected)}.", file=sys.stderr)
        return 2
    RESULTS.parent.mkdir(exist_ok=True)
    for module in modules:
        started_at = datetime.now(UTC).isoformat(timespec="seconds")
        about = machine()
        began = time.monotonic()
        results = module.run()
        record = {"benchmark": module.NAME, "started_at": started_at, "seconds": round(time.monotonic() - began, 1)}
        about["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
        record.update(machine=about, results=results)
        report(module.NAME, results)
        with RESULTS.open("a") as out:
            out.write(json.dumps(record) + "\n")
    print(f"\nAppended to {RESULTS.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
