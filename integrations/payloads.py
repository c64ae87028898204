"""JSON from outside, bounded: a body nested deeper than any real event is refused as
malformed, before it can exhaust the parser's recursion or anything that walks it later; so is
one whose strings hold a lone surrogate escape (`"\\ud800"`), which json.loads accepts but no
UTF-8 encoder (the database driver, a dedupe key) can write."""

from __future__ import annotations

import json

# Zoom's and Google's deepest documented payloads nest about six levels; 32 leaves room.
MAX_DEPTH = 32


class PayloadError(ValueError):
    """The body is not JSON, is nested deeper than MAX_DEPTH, or holds a lone surrogate."""


def load_json(data: bytes | str, *, max_depth: int = MAX_DEPTH):
    """`json.loads(data)`, refusing (PayloadError) bodies that are not JSON, nest too deep or
    hold a string that is not valid Unicode."""
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise PayloadError("body is not JSON") from None
    # Iterative, so the check itself cannot recurse too deep.
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
            continue
        if isinstance(item, dict):
            children = item.values()
            for key in item:
                _check_text(key)
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            raise PayloadError(f"body nests deeper than {max_depth} levels")
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, (dict, list, str)))
    return value


def _check_text(text: str) -> None:
    # A lone surrogate (from a `\udXXX` escape) made a signed Zoom or Google delivery a 500
    # where its id went into the inbox's dedupe key; refused here, it is a 400 like any other
    # malformed body, and nothing downstream has to think about it.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise PayloadError("body holds a string that is not valid Unicode") from None


def is_timestamp(value: str | None, *, digits: int = 12) -> bool:
    """A Unix timestamp header as platforms send it: ASCII digits only, and few of them
    (`str.isdigit` accepts '²', and int() refuses more than 4,300 digits)."""
    return isinstance(value, str) and 0 < len(value) <= digits and value.isascii() and value.isdigit()
