"""What every browser test of a page can ask: axe-core's verdict on it (WCAG 2.2 A and AA
rules, axe-core vendored from its npm package in tests/fixtures/browser/axe/) and a full-page
screenshot in var/screenshots/ for a reviewer to look at after `make test`.

axe is evaluated through the DevTools protocol, not added as a <script>: the pages' own
Content-Security-Policy allows no script but ours, and the check must not loosen it."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "tests" / "fixtures" / "browser" / "axe" / "axe.min.js"
SCREENSHOTS = ROOT / "var" / "screenshots"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
WIDTHS = {"desktop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}


@lru_cache(maxsize=1)
def _axe_source() -> str:
    return AXE.read_text(encoding="utf-8")


def axe_violations(page) -> list[str]:
    """Each rule the page breaks, with the elements that break it (empty when none)."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(_axe_source())
    result = page.evaluate(
        "async (tags) => { const r = await axe.run(document, {runOnly: {type: 'tag', values: tags},"
        " resultTypes: ['violations']});"
        " return r.violations.map(v => v.id + ': ' + v.help + ' → ' +"
        " v.nodes.slice(0, 4).map(n => n.target.join(' ')).join(' | ')); }", WCAG_TAGS)
    return list(result)


def screenshot(page, name: str) -> Path:
    """The whole page, as `var/screenshots/<name>-<width>.png`."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")
    path = SCREENSHOTS / f"{safe}-{page.viewport_size['width']}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def looked_at(tab, name: str, *, narrowest: int | None = None, widths=()) -> None:
    """The page now in the tab passes axe, fits its width (and `narrowest`, when given), and is
    photographed; with `widths` (viewport sizes), at each of those in turn."""
    page = tab.page
    page.wait_for_load_state("load")
    assert page.evaluate("() => document.documentElement.lang") == "en", name
    assert page.title().strip(), name
    size = page.viewport_size
    for viewport in widths or [size]:
        page.set_viewport_size(viewport)
        assert axe_violations(page) == [], name
        assert tab.overflow() <= 0, f"{name} scrolls sideways by {tab.overflow()} px"
        screenshot(page, name)
    if narrowest:
        page.set_viewport_size({"width": narrowest, "height": size["height"]})
        assert tab.overflow() <= 0, f"{name} scrolls sideways at {narrowest} px"
        screenshot(page, name)
    page.set_viewport_size(size)
