"""Invariants of the code's shape: only workers/sessions.py writes a session's state."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app.py", "config.py", "models", "webhooks", "bot", "portal", "workers", "vault",
            "integrations", "demo")
OWNER = ROOT / "workers" / "sessions.py"


def our_modules():
    for name in PACKAGES:
        path = ROOT / name
        yield from ([path] if path.suffix == ".py" else sorted(path.rglob("*.py")))


def state_writes(tree: ast.AST) -> list[int]:
    """Lines that assign `<x>.state`, pass `state=` to a model or an UPDATE, or setattr it."""
    lines = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for target in targets:
            parts = target.elts if isinstance(target, ast.Tuple) else [target]
            lines += [node.lineno for p in parts if isinstance(p, ast.Attribute) and p.attr == "state"]
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("CoachingSession", "values") and any(k.arg == "state" for k in node.keywords):
                lines.append(node.lineno)
            if called == "setattr" and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) \
                    and node.args[1].value == "state":
                lines.append(node.lineno)
    return lines


def test_only_the_state_machine_writes_a_sessions_state():
    found = {}
    for path in our_modules():
        if path == OWNER:
            continue
        lines = state_writes(ast.parse(path.read_text(), str(path)))
        if lines:
            found[str(path.relative_to(ROOT))] = lines
    assert found == {}, f"CoachingSession.state written outside workers/sessions.py: {found}"


def test_the_check_finds_each_kind_of_write():
    source = ("s.state = 'x'\ns.state, s.error = 'x', None\nCoachingSession(state='x')\n"
              "update(CoachingSession).values(state='x')\nsetattr(s, 'state', 'x')\n"
              "s.status = 'fine'\nfoo(state=1)\n")
    assert state_writes(ast.parse(source)) == [1, 2, 3, 4, 5]
    assert state_writes(ast.parse(OWNER.read_text()))  # the owner does write it


SCOPES = {"record", "transcribe", "summarise", "share_with_client"}


def consent_checks(tree: ast.AST) -> list[int]:
    """Lines that test a consent scope by hand (`"transcribe" in scopes`, `{...} <= scope_set`)."""
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        left, ops = node.left, node.ops
        if isinstance(left, ast.Constant) and left.value in SCOPES and isinstance(ops[0], (ast.In, ast.NotIn)):
            lines.append(node.lineno)
        elif any(isinstance(side, ast.Attribute) and side.attr == "scope_set"
                 for side in [left, *node.comparators]) and isinstance(ops[0], (ast.LtE, ast.GtE, ast.In, ast.NotIn)):
            lines.append(node.lineno)
    return lines


def test_only_the_consent_policy_decides_what_a_scope_allows():
    # workers/consent.py owns what a consent record may hold (transcribe needs record), not
    # what a step may do; it is the one other place that reads scope names.
    found = {}
    for path in our_modules():
        if path in (OWNER, ROOT / "workers" / "consent.py"):
            continue
        lines = consent_checks(ast.parse(path.read_text(), str(path)))
        if lines:
            found[str(path.relative_to(ROOT))] = lines
    assert found == {}, f"consent scopes checked outside workers/sessions.py: {found}"
    assert consent_checks(ast.parse('ok = "transcribe" in scopes\nx = {"record"} <= c.scope_set\n')) == [1, 2]


# --- the import graph ------------------------------------------------------------------------

def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(sources: dict[str, str]) -> dict[str, set[str]]:
    """module → the modules of ours it imports, anywhere in it (a function's lazy import
    counts: it is a dependency all the same). `from pkg import mod` names the module."""
    def ours(name: str) -> str | None:
        while name and name not in sources:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, source in sources.items():
        deps = set()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                deps |= {ours(a.name) for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                deps |= {ours(f"{node.module}.{a.name}") for a in node.names}
        graph[module] = deps - {None, module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one node (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def our_sources() -> dict[str, str]:
    return {module_name(p): p.read_text() for p in our_modules()}


def test_no_import_cycles_among_our_modules_or_packages():
    graph = import_graph(our_sources())
    assert cycles(graph) == []
    # The packages as wholes, too: workers may use models, never the other way round.
    packages: dict[str, set[str]] = {}
    for module, deps in graph.items():
        top = module.split(".")[0]
        packages.setdefault(top, set()).update(d.split(".")[0] for d in deps if d.split(".")[0] != top)
    assert cycles(packages) == []



# DESIGN.md's map: which of our packages each may import. The entry points (webhooks, the Slack
# command, the pages) call workers/ and read models/, never one another; workers/ orchestrates;
# models/, vault/ and integrations/ stand on their own.
MAY_IMPORT = {
    "models": set(), "vault": set(), "integrations": set(), "config": {"vault"},
    "workers": {"config", "models", "vault", "integrations"},
    "webhooks": {"config", "models", "workers", "integrations"},
    "bot": {"config", "models", "workers", "integrations"},
    "portal": {"config", "models", "workers", "vault", "integrations"},
    "demo": {"config", "models", "workers", "vault", "integrations"},
}
# Web frameworks are for the entry points: the layers below know nothing of a request.
NO_FLASK = ("models", "vault", "integrations", "workers")


def test_each_package_imports_only_the_layers_below_it():
    graph = import_graph(our_sources())
    crossings = sorted(f"{module} -> {dep}" for module, deps in graph.items() for dep in deps
                       if module.split(".")[0] in MAY_IMPORT and dep.split(".")[0] != module.split(".")[0]
                       and dep.split(".")[0] not in MAY_IMPORT[module.split(".")[0]])
    assert crossings == []
    flask_users = sorted(str(p.relative_to(ROOT)) for p in our_modules()
                         if p.relative_to(ROOT).parts[0] in NO_FLASK and "flask" in top_level_imports(p.read_text()))
    assert flask_users == []


def top_level_imports(source: str) -> set[str]:
    """The top-level package of everything a module imports, anywhere in it."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names

def test_the_cycle_check_finds_a_lazy_cycle():
    sources = {"a": "import b\n", "b": "def f():\n    from a import x\n", "a.x": "", "c": "from a import x\n"}
    graph = import_graph(sources)
    assert graph == {"a": {"b"}, "b": {"a.x"}, "a.x": set(), "c": {"a.x"}}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_inbox_job_named_by_string_is_the_dispatcher():
    # The inbox names its job rather than importing it (that would close a loop); the name
    # must stay the function's.
    from workers import inbox, platforms
    module, _, name = inbox.PROCESS_EVENT.rpartition(".")
    assert module == platforms.__name__ and getattr(platforms, name) is platforms.process_event


def test_each_platform_keeps_one_event_table():
    from integrations import google
    from workers.platforms import PLATFORMS, meet, zoom
    assert set(PLATFORMS) == {"zoom", "google"}
    assert set(meet.HANDLERS) == set(google.HANDLED_EVENT_TYPES)
    assert set(zoom.PLATFORM.handlers) == set(zoom.EVENTS)


def sleeps(tree: ast.AST) -> list[int]:
    """Lines that call time.sleep (or a bare sleep imported from time)."""
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Call) and (
        (isinstance(node.func, ast.Attribute) and node.func.attr == "sleep"
         and getattr(node.func.value, "id", "") == "time")
        or (isinstance(node.func, ast.Name) and node.func.id == "sleep"))]


def test_no_job_sleeps_to_wait():
    # A wait is the scheduler's (workers/retries.later), never a worker's. Starting the
    # embedded Redis polls for its socket, before any job exists.
    found = {str(p.relative_to(ROOT)): sleeps(ast.parse(p.read_text())) for p in (ROOT / "workers").rglob("*.py")
             if p.name != "embedded_redis.py"}
    assert {k: v for k, v in found.items() if v} == {}
    assert sleeps(ast.parse("import time\ntime.sleep(1)\nfrom time import sleep\nsleep(2)\nx.sleep(3)\n")) == [2, 4]
