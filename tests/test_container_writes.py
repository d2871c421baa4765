"""`fleet.transitions` is the only code that writes a container's row, and its transitions meter usage.

The control plane and the worker are read as source (no database, no hosts): a module other than
`fleet/transitions.py` that updates, creates, saves or deletes `Container` rows, sets a field of one,
or writes the container table in SQL fails this test, naming the file and line.

What counts as a container: `Container` itself (`Container.objects…`, `Container(…)`), a related
manager (`app.containers…`), a call to a function whose name ends in `containers` (`live_containers`)
or whose return annotation names `Container`, a parameter annotated with `Container`, and any name
bound from an expression over one of those (assigned, looped over, or comprehended), within a
function. Admin classes registered for `Container` have their `queryset` and `obj` counted too.
"""

import ast
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "platform", ROOT / "worker"]
TRANSITIONS = ROOT / "platform" / "berth" / "fleet" / "transitions.py"

WRITES = {"update", "create", "get_or_create", "update_or_create", "bulk_create", "bulk_update", "save", "delete"}
# A queryset's (or a collection's) methods that give containers again; any other attribute of a
# container (its host, its app) is another thing.
AGAIN = {
    "Container",
    "containers",
    "objects",
    "all",
    "filter",
    "exclude",
    "for_actor",
    "select_related",
    "prefetch_related",
    "select_for_update",
    "order_by",
    "only",
    "defer",
    "using",
    "distinct",
    "annotate",
    "alias",
    "none",
    "first",
    "last",
    "get",
    "latest",
    "earliest",
    "iterator",
    "values",
    "pop",
    "copy",
}
WRAPPERS = {"list", "tuple", "set", "sorted", "reversed", "iter", "next", "frozenset"}
SQL_WRITE = re.compile(r"\b(UPDATE|INSERT\s+INTO|DELETE\s+FROM)\s+[\"{]?(fleet_container|containers)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Write:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def _names_container(node: ast.AST | None) -> bool:
    """Whether an annotation mentions Container (Container, list[Container], "Container | None"…)."""
    if node is None:
        return False
    for sub in ast.walk(node):
        if (isinstance(sub, ast.Name) and sub.id == "Container") or (
            isinstance(sub, ast.Attribute) and sub.attr == "Container"
        ):
            return True
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and re.search(r"\bContainer\b", sub.value):
            return True
    return False


def _local(body: list[ast.stmt]):
    """The nodes of a body, not descending into nested functions and classes (their own scopes)."""
    todo = list(body)
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            todo.extend(ast.iter_child_nodes(node))


class _Finder(ast.NodeVisitor):
    def __init__(self, path: str, returning_containers: set[str]):
        self.path = path
        self.returning = returning_containers
        self.found: list[Write] = []
        self.scopes: list[set[str]] = [set()]

    # What is a container -----------------------------------------------------------------------

    def _is_container(self, node: ast.AST) -> bool:
        """Whether an expression gives a container, a queryset of them or a collection of them."""
        match node:
            case ast.Name(id=name):
                return name == "Container" or name in self.scopes[-1]
            case ast.Attribute(attr=attr, value=value):
                return attr in ("Container", "containers") or (attr in AGAIN and self._is_container(value))
            case ast.Call(func=ast.Name(id=name), args=args):
                return (
                    name.endswith("containers")
                    or name in self.returning
                    or (name in WRAPPERS and any(self._is_container(a) for a in args))
                    or name == "Container"
                )
            case ast.Call(func=ast.Attribute(attr=attr) as func):
                return attr.endswith("containers") or attr in self.returning or self._is_container(func)
            case ast.Subscript(value=value) | ast.Starred(value=value) | ast.Await(value=value):
                return self._is_container(value)
            case ast.ListComp(elt=elt) | ast.SetComp(elt=elt) | ast.GeneratorExp(elt=elt):
                return self._is_container(elt)
            case ast.DictComp(value=value):
                return self._is_container(value)
            case ast.List(elts=elts) | ast.Tuple(elts=elts) | ast.Set(elts=elts):
                return any(self._is_container(e) for e in elts)
            case ast.BoolOp(values=values):
                return any(self._is_container(v) for v in values)
            case ast.IfExp(body=body, orelse=orelse):
                return self._is_container(body) or self._is_container(orelse)
            case ast.NamedExpr(value=value):
                return self._is_container(value)
        return False

    def _bound(self, node: ast.AST) -> list[ast.AST]:
        """What a node binds to a container, if it does."""
        match node:
            case ast.Assign(targets=targets, value=value) if self._is_container(value):
                return targets
            case ast.AnnAssign(target=target, annotation=annotation, value=value):
                return [target] if _names_container(annotation) or (value and self._is_container(value)) else []
            case ast.NamedExpr(target=target, value=value) if self._is_container(value):
                return [target]
            case (
                ast.For(target=target, iter=it)
                | ast.AsyncFor(target=target, iter=it)
                | ast.comprehension(target=target, iter=it)
            ) if self._is_container(it):
                return [target]
            case ast.withitem(context_expr=context, optional_vars=target) if target and self._is_container(context):
                return [target]
        return []

    def _taint(self, body: list[ast.stmt]) -> None:
        """Names bound from container expressions in one scope, to a fixed point (flow-insensitive)."""
        scope = self.scopes[-1]
        nodes = list(_local(body))
        while True:
            before = len(scope)
            for node in nodes:
                for target in self._bound(node):
                    scope.update(sub.id for sub in ast.walk(target) if isinstance(sub, ast.Name))
            if len(scope) == before:
                return

    # Scopes ------------------------------------------------------------------------------------

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        registered = any(
            isinstance(d, ast.Call) and any(_names_container(a) for a in d.args) for d in node.decorator_list
        ) or any(
            isinstance(s, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "model" for t in s.targets)
            and _names_container(s.value)
            for s in node.body
        )
        self.scopes.append(set(self.scopes[-1]) | ({"queryset", "obj"} if registered else set()))
        self._taint(node.body)
        self.generic_visit(node)
        self.scopes.pop()

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        scope = set(self.scopes[-1])
        arguments = node.args
        for arg in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]:
            if _names_container(arg.annotation):
                scope.add(arg.arg)
        self.scopes.append(scope)
        self._taint(node.body if isinstance(node.body, list) else [ast.Expr(node.body)])
        self.generic_visit(node)
        self.scopes.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Module(self, node: ast.Module) -> None:
        self._taint(node.body)
        self.generic_visit(node)

    # Writes ------------------------------------------------------------------------------------

    def _report(self, node: ast.AST, what: str) -> None:
        self.found.append(Write(self.path, node.lineno, what))

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in WRITES and self._is_container(func.value):
            self._report(node, f"{ast.unparse(func)[:80]}(…)")
        elif isinstance(func, ast.Name) and func.id == "setattr" and node.args and self._is_container(node.args[0]):
            self._report(node, f"setattr({ast.unparse(node.args[0])}, …)")
        self.generic_visit(node)

    def _assigned(self, targets: list[ast.AST], node: ast.AST) -> None:
        for target in targets:
            for sub in ast.walk(target):
                if isinstance(sub, ast.Attribute) and isinstance(sub.ctx, ast.Store) and self._is_container(sub.value):
                    self._report(node, f"{ast.unparse(sub)} = …")

    def visit_Assign(self, node: ast.Assign) -> None:
        self._assigned(node.targets, node)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._assigned([node.target], node)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._assigned([node.target], node)
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and SQL_WRITE.search(node.value):
            self._report(node, "SQL writing the container table")


def _modules(roots=SOURCES):
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if "migrations" not in path.parts:
                yield path, ast.parse(path.read_text(), filename=str(path))


def _returning_containers(trees) -> set[str]:
    return {
        node.name
        for _, tree in trees
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _names_container(node.returns)
    }


def container_writes(trees, returning: set[str]) -> list[Write]:
    found = []
    for path, tree in trees:
        finder = _Finder(str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path), returning)
        finder.visit(tree)
        found += finder.found
    return found


def writes_in(source: str, returning=frozenset({"start_container"})) -> list[Write]:
    return container_writes([(Path("snippet.py"), ast.parse(source))], set(returning))


def test_only_the_transitions_module_writes_containers():
    trees = list(_modules())
    returning = _returning_containers(trees)
    writes = container_writes(trees, returning)
    elsewhere = [w for w in writes if ROOT / w.path != TRANSITIONS]
    assert not elsewhere, "Container rows written outside fleet/transitions.py:\n" + "\n".join(map(str, elsewhere))
    # Not vacuous: the finder sees the transitions' own writes.
    assert len([w for w in writes if ROOT / w.path == TRANSITIONS]) >= 10


def test_the_finder_sees_the_ways_a_container_is_written():
    strays = {
        "queryset update": "Container.objects.filter(pk=1).update(state='exited')",
        "create": "def f(host):\n    Container.objects.create(host=host)",
        "related manager": "def f(app):\n    app.containers.filter(state='running').update(health='unknown')",
        "selector": "live_containers(host=1).update(last_seen_at=None)",
        "row of a queryset": "def f():\n    for row in Container.objects.all():\n        row.state = 'lost'",
        "saved row": "def f():\n    for row in Container.objects.all():\n        row.save()",
        "annotated parameter": "def f(container: Container):\n    container.health = 'healthy'",
        "optional parameter": "def f(c: 'Container | None'):\n    pass\n"
        "def g(c: Container | None):\n    c.save(update_fields=['state'])",
        "rows of a dict": "def f():\n    rows = {c.docker_id: c for c in Container.objects.all()}\n"
        "    row = rows.get('x')\n    row.delete()",
        "returned by a function": "def f(**kw):\n    new = start_container(**kw)\n    new.exit_code = 1",
        "setattr": "def f(c: Container):\n    setattr(c, 'state', 'lost')",
        "instance": "Container(name='x').save()",
        "bulk": "Container.objects.bulk_update([], ['state'])",
        "raw SQL": "cursor.execute('UPDATE fleet_container SET state = %s', ['lost'])",
        "admin action": "@admin.register(Container)\nclass A:\n    def act(self, request, queryset):\n"
        "        queryset.update(state='removed')",
    }
    missed = [name for name, source in strays.items() if not writes_in(source)]
    assert not missed, f"stray writes not found: {missed}"


def test_the_finder_leaves_other_models_and_reads_alone():
    fine = """
def f(host, deployment, app):
    DockerHost.objects.filter(pk=host.pk).update(status="down")
    Deployment.objects.filter(pk=deployment.pk).update(state="failed")
    rows = list(Container.objects.filter(app=app).values_list("pk", flat=True))
    live = live_containers(app=app).select_for_update()
    changed = set()
    changed.update({1, 2})
    names = {"a": 1}
    names.update(b=2)
    return rows, live, changed
"""
    assert writes_in(fine) == []


# Metering is part of the transitions that change what the usage ledger reads.
LEDGER_FIELDS = {"state", "started_at", "finished_at"}
# Recorded, not yet metered: the ledger takes a start's StartedAt when container_healthy meters it (a
# deploy's first healthy container does not wait for the ledger), or the periodic pass does.
# Stopping: still running as far as the ledger is concerned, until container_removed or containers_lost.
UNMETERED = {"container_started", "container_stopping"}


def _written_fields(function: ast.FunctionDef) -> set[str]:
    fields = set()
    for node in ast.walk(function):
        if isinstance(node, ast.Call):
            fields |= {k.arg for k in node.keywords if k.arg}
            if isinstance(node.func, ast.Attribute) and node.func.attr == "get_or_create":
                fields |= {
                    k.value for kw in node.keywords if kw.arg == "defaults" for k in getattr(kw.value, "keys", [])
                }
        elif isinstance(node, ast.Dict):
            fields |= {k.value for k in node.keys if isinstance(k, ast.Constant)}
    return fields


def test_each_transition_that_changes_what_the_ledger_reads_meters_usage():
    tree = ast.parse(TRANSITIONS.read_text())
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")]
    unmetered = [
        f.name
        for f in functions
        if _written_fields(f) & LEDGER_FIELDS
        and f.name not in UNMETERED
        and not any(isinstance(n, ast.Name) and n.id == "_usage_sync" for n in ast.walk(f))
    ]
    assert not unmetered, f"transitions that change what the ledger reads without metering: {unmetered}"
    assert {f.name for f in functions} >= UNMETERED
