"""Precision and recall of found items against a script's expected ones, by shared content words."""

from __future__ import annotations

import json
from pathlib import Path

from workers.summaries.text import content_words

EXPECTED = json.loads((Path(__file__).resolve().parent / "expected.json").read_text())


def same_item(found: str, expected: str) -> bool:
    """A found item is the expected one when it has at least half of its content words."""
    wanted = content_words(expected)
    return len(wanted & content_words(found)) >= max(1, len(wanted) / 2)


def precision_recall(found: list[str], expected: list[str]) -> tuple[float, float]:
    true_found = sum(1 for f in found if any(same_item(f, e) for e in expected))
    recalled = sum(1 for e in expected if any(same_item(f, e) for f in found))
    precision = true_found / len(found) if found else 1.0
    recall = recalled / len(expected) if expected else 1.0
    return precision, recall
