"""The client's journey across sessions, shaped for the journey page: sessions, commitments
over time (open / done / dropped), themes across sessions, and a small bar chart."""

from __future__ import annotations

import math

from workers.commitments import key_of


def journey_view(sessions, summaries: dict[str, dict], memory: dict) -> dict:
    ordered = sorted(sessions, key=lambda s: s.started_at or s.created_at)
    # Each date as UTC reads it, and the moment itself: the page shows it in the reader's zone.
    moments = {s.id: s.started_at or s.created_at for s in ordered}
    dates = {sid: at.strftime("%-d %b %Y") for sid, at in moments.items()}
    rows = [{"id": s.id, "date": dates[s.id], "at": moments[s.id], "topic": s.topic,
             "overview": (summaries.get(s.id) or {}).get("overview", "")} for s in ordered]

    commitments = []
    for c in memory.get("commitments") or []:
        made = (c.get("made_in") or {}).get("session_id")
        closed = (c.get("closed_by") or {}).get("session_id")
        commitments.append({"key": key_of(c), "text": c.get("what", ""), "status": c.get("status", "open"),
                            "since": dates.get(made, "an earlier session"),
                            "since_at": moments.get(made), "closed": dates.get(closed) if closed else None,
                            "closed_at": moments.get(closed), "made_in": made,
                            "closed_in": closed})
    themes = sorted(({"name": t.get("name", ""), "count": len(set(t.get("session_ids") or []))}
                     for t in memory.get("themes") or []), key=lambda t: (-t["count"], t["name"]))
    return {"sessions": rows, "commitments": commitments, "themes": themes[:12],
            "chart": _chart(rows, commitments)}


def _chart(rows, commitments, width=320, height=120):
    if not rows:
        return None
    made = {r["id"]: 0 for r in rows}
    done = {r["id"]: 0 for r in rows}
    for c in commitments:
        if c["made_in"] in made:
            made[c["made_in"]] += 1
        if c["status"] == "done" and c["closed_in"] in done:
            done[c["closed_in"]] += 1
    top = max([1, *made.values(), *done.values()])
    slot = width / len(rows)
    bar_w = max(4.0, slot * 0.6)
    plot_h = height - 14
    # A date label is about 44 units wide at 12 units high: with many sessions only every
    # `step`-th bar is labelled, so the labels never overlap (the table beside has them all).
    step = math.ceil(44 / slot)
    bars = []
    for i, r in enumerate(rows):
        h_made, h_done = plot_h * made[r["id"]] / top, plot_h * done[r["id"]] / top
        x = i * slot + (slot - bar_w) / 2
        bars.append({"x": round(x, 1), "w": round(bar_w, 1), "label": r["date"].rsplit(" ", 1)[0], "at": r["at"],
                     "show_label": i % step == 0, "made": made[r["id"]], "done": done[r["id"]],
                     "y_made": round(plot_h - h_made, 1), "h_made": round(h_made, 1),
                     "y_done": round(plot_h - h_done, 1), "h_done": round(h_done, 1)})
    return {"width": width, "height": height, "bars": bars}


def energy_chart(points, duration: float | None, width: int = 320, height: int = 64) -> dict | None:
    """A polyline of valence (-1..1) over the session's time, for an inline SVG."""
    if not points or len(points) < 2:
        return None
    end = max(duration or 0, points[-1][0], 1.0)
    coords = " ".join(f"{round(t / end * width, 1)},{round((1 - v) / 2 * height, 1)}" for t, v in points)
    return {"width": width, "height": height, "points": coords, "mid": height / 2}
