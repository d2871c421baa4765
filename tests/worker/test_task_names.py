"""Every task the control plane or the worker sends, or beat schedules, is one the worker registers, and
every task the worker registers has its name in berth.core.task_names, the one list of names."""

import ast
from pathlib import Path

import pytest

import worker.tasks  # noqa: F401 - registers the tasks with the app
from berth.core import task_names
from worker import app

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCES = [REPO_ROOT / "platform" / "berth", REPO_ROOT / "worker"]
# The calls that send a task, by the name of what is called; the task's name is their first argument.
SENDERS = {"enqueue", "enqueue_on_commit", "ask", "send_task", "delay", "apply_async"}
# berth.core.queue sends whatever name its callers give it.
PASS_THROUGH = REPO_ROOT / "platform" / "berth" / "core" / "queue.py"


def named_tasks() -> dict[str, str]:
    return {name: value for name, value in vars(task_names).items() if name.isupper() and isinstance(value, str)}


def registered() -> set[str]:
    return {name for name in app.tasks if name.startswith("berth.")}


def sent_names(path: Path) -> list[tuple[int, str]]:
    """(line, task name) of each task this source file sends; a name not taken from task_names is
    reported as such, so a literal spelled wrong, or right, is caught either way."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.Call):
            continue
        called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
        if called not in SENDERS:
            continue
        if called in ("delay", "apply_async"):
            found.append((node.lineno, f"a task object's .{called}(), not a name from task_names"))
            continue
        first = node.args[0] if node.args else None
        if isinstance(first, ast.Attribute) and isinstance(first.value, ast.Name) and first.value.id == "task_names":
            found.append((node.lineno, getattr(task_names, first.attr, f"task_names.{first.attr}, which is not there")))
        elif path != PASS_THROUGH:
            found.append((node.lineno, f"{ast.unparse(first) if first else 'nothing'}, not a name from task_names"))
    return found


def test_the_names_are_berth_tasks_and_distinct():
    names = named_tasks()
    assert names and all(value.startswith("berth.") for value in names.values())
    assert len(set(names.values())) == len(names)


def test_every_task_the_worker_registers_has_its_name_in_task_names():
    assert registered() == set(named_tasks().values())


def test_every_scheduled_task_is_registered():
    scheduled = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert scheduled and scheduled <= registered()


def test_every_task_sent_is_sent_by_its_name_and_registered():
    known = registered()
    sent, wrong = set(), []
    for root in SOURCES:
        for path in sorted(root.rglob("*.py")):
            for line, name in sent_names(path):
                sent.add(name)
                if name not in known:
                    wrong.append(f"{path.relative_to(REPO_ROOT)}:{line}: {name}")
    assert not wrong, "tasks sent that no worker registers:\n" + "\n".join(wrong)
    # The scan found the senders: the deploys, the fleet's changes, the engine check, the heal later.
    assert {task_names.DEPLOY, task_names.RECONCILE, task_names.CHECK_ENGINE, task_names.RECONCILE_APP} <= sent


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("enqueue_on_commit(task_names.DEPLOY, 1)", task_names.DEPLOY),
        ("enqueue(task_names.DEPLOYY, 1)", "task_names.DEPLOYY, which is not there"),
        ("app.send_task('berth.fleet.reconcil')", "'berth.fleet.reconcil', not a name from task_names"),
    ],
)
def test_the_scan_reads_names_and_reports_the_rest(tmp_path, source, expected):
    path = tmp_path / "sender.py"
    path.write_text(source + "\n")
    assert sent_names(path) == [(1, expected)]


def test_the_control_plane_imports_no_worker_code():
    found = []
    for path in sorted((REPO_ROOT / "platform" / "berth").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module or ""]
            else:
                continue
            found += [
                f"{path.relative_to(REPO_ROOT)}:{node.lineno}" for name in modules if name.split(".")[0] == "worker"
            ]
    assert not found
