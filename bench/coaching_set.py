"""The labelled coaching sessions under bench/coaching/: loading, checking, and their timing.

Each file is one client's engagement (see bench/coaching/README.md). `load(split)` gives the
engagements of `tuning` or `heldout`, checked: a turn index out of range, a ref to nothing or
an unknown field is an error naming the file, so a label cannot silently score as a miss.

    .venv/bin/python bench/coaching_set.py          # check both splits and say what they hold
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent / "coaching"
SPLITS = ("tuning", "heldout")
OWNERS = ("client", "coach")
STATUSES = ("done", "open", "dropped")
_ITEM_FIELDS = {
    "commitments": {"id", "turn", "owner", "what", "due", "tentative"},
    "homework": {"id", "turn", "what", "due"},
    "decisions": {"turn", "what"},
    "open_threads": {"turn", "topic", "keys"},
    "retracted": {"turn", "what", "withdrawn_at"},
    "small_talk": {"turn", "what"},
    "progress": {"ref", "status", "turn"},
}
_GOLD_FIELDS = set(_ITEM_FIELDS) | {"briefing_after", "names"}


class LabelError(ValueError):
    """A labelled file that does not follow the format."""


@dataclasses.dataclass
class Session:
    id: str
    date: dt.date
    turns: list[tuple[str, str]]  # (coach|client, text)
    gold: dict


@dataclasses.dataclass
class Engagement:
    path: Path
    client: str
    coach: str
    style: str
    voices: dict[str, str]
    sessions: list[Session]

    @property
    def name(self) -> str:
        return self.path.stem


def _check_turn(where: str, turn, turns: list) -> None:
    if not isinstance(turn, int) or not 0 <= turn < len(turns):
        raise LabelError(f"{where}: turn {turn!r} is not an index into the {len(turns)} turns")


def _check_session(path: Path, raw: dict, known: set[str]) -> Session:
    sid = raw.get("id")
    where = f"{path.name} {sid}"
    turns = raw.get("turns")
    if not isinstance(turns, list) or not turns:
        raise LabelError(f"{where}: no turns")
    for i, turn in enumerate(turns):
        if (not isinstance(turn, list) or len(turn) != 2 or turn[0] not in OWNERS
                or not isinstance(turn[1], str) or not turn[1].strip()):
            raise LabelError(f"{where}: turn {i} must be [\"coach\"|\"client\", text]")
    gold = raw.get("gold", {})
    unknown = set(gold) - _GOLD_FIELDS
    if unknown:
        raise LabelError(f"{where}: unknown gold field(s) {sorted(unknown)}")
    ids = set()
    for field, allowed in _ITEM_FIELDS.items():
        for item in gold.setdefault(field, []):
            extra = set(item) - allowed
            if extra:
                raise LabelError(f"{where} {field}: unknown key(s) {sorted(extra)}")
            _check_turn(f"{where} {field}", item.get("turn"), turns)
            if field in ("commitments", "homework"):
                if not item.get("id") or item["id"] in ids:
                    raise LabelError(f"{where} {field}: every item needs its own id")
                ids.add(item["id"])
            if field == "commitments" and item.get("owner") not in OWNERS:
                raise LabelError(f"{where}: commitment {item.get('id')} owner must be client or coach")
            if field == "retracted":
                _check_turn(f"{where} retracted withdrawn_at", item.get("withdrawn_at"), turns)
            if field == "open_threads" and not item.get("keys"):
                raise LabelError(f"{where}: open thread at turn {item['turn']} needs keys")
            if field == "progress":
                if item.get("ref") not in known:
                    raise LabelError(f"{where}: progress ref {item.get('ref')!r} names no earlier item")
                if item.get("status") not in STATUSES:
                    raise LabelError(f"{where}: progress status must be one of {STATUSES}")
    mine = {f"{sid}/{i}" for i in ids}
    for ref in gold.setdefault("briefing_after", []):
        if ref not in known | mine:
            raise LabelError(f"{where}: briefing_after ref {ref!r} names no item")
    gold.setdefault("names", [])
    known |= mine
    return Session(sid, dt.date.fromisoformat(raw["date"]), [tuple(t) for t in turns], gold)


def load_file(path: Path) -> Engagement:
    raw = json.loads(path.read_text(encoding="utf-8"))
    known: set[str] = set()
    sessions = [_check_session(path, s, known) for s in raw["sessions"]]
    if len({s.id for s in sessions}) != len(sessions):
        raise LabelError(f"{path.name}: session ids repeat")
    return Engagement(path, raw["client"], raw["coach"], raw.get("style", ""),
                      raw.get("voices") or {}, sessions)


def load(split: str) -> list[Engagement]:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}")
    return [load_file(p) for p in sorted((HERE / split).glob("*.json"))]


def main() -> None:
    total = 0
    for split in SPLITS:
        engagements = load(split)
        sessions = [s for e in engagements for s in e.sessions]
        total += len(sessions)
        counts = {f: sum(len(s.gold[f]) for s in sessions) for f in _ITEM_FIELDS}
        print(f"{split}: {len(engagements)} clients, {len(sessions)} sessions, "
              f"{sum(len(s.turns) for s in sessions)} turns; "
              + ", ".join(f"{n} {f}" for f, n in counts.items()))
        for e in engagements:
            print(f"  {e.name}: {e.style}, {len(e.sessions)} session(s)")
    print(f"{total} labelled sessions")
    if total == 0:
        sys.exit(1)


if __name__ == "__main__":
    main()
