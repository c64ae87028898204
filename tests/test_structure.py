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
