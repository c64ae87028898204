"""The client's journey page: each past session is a link to its page, and the client can mark
an open commitment done. The mark is the client's, audited without the words, and goes into
the memory, so the coach's briefing no longer lists it as open."""

from __future__ import annotations

import re

from sqlmodel import select

from models import AuditEvent, ClientMemory
from tests.portalhelpers import delivered_session
from tests import test_dashboard
from tests.test_dashboard import page, sign_in

FORM = re.compile(r'name="commitment" value="([0-9a-f]{16})"><button type="submit" class="small" '
                  r'aria-label="Mark done: ([^"]+)"')


# The dashboard tests' app: SQLite, the Zoom and SMTP stand-ins, the fast engines.
hs = test_dashboard.hs


def test_the_client_marks_a_commitment_done(hs, zoom_stub, smtp_sink):
    _, path = delivered_session(hs, zoom_stub, smtp_sink, fixture="recording_completed", scopes=None)
    session_page = hs.http.get(path).get_data(as_text=True)
    journey = re.search(r'id="journey" href="([^"]+)"', session_page).group(1)
    html = hs.http.get(journey).get_data(as_text=True)
    # Past sessions are links, and each opens its page.
    (link,) = re.findall(r'<ol class="sessions"><li><a href="(/s/[^"]+)"', html)
    assert hs.http.get(link).status_code == 200
    marks = FORM.findall(html)
    assert marks, "the journey offers no commitment to mark done"
    key, what = marks[0]

    resp = hs.http.post(f"{journey}/done", data={"commitment": key})
    assert resp.status_code == 303 and "marked=1" in resp.headers["Location"]
    after = hs.http.get(resp.headers["Location"]).get_data(as_text=True)
    assert 'id="marked"' in after and key not in [k for k, _ in FORM.findall(after)]
    with hs.db() as db:
        memory = db.exec(select(ClientMemory)).one().data
        (event,) = db.exec(select(AuditEvent).where(AuditEvent.action == "commitment.marked_done")).all()
    (marked,) = [c for c in memory["commitments"] if c["what"] in what or what.endswith(c["what"])]
    assert marked["status"] == "done" and "marked done by the client" in marked["closed_by"]["text"]
    assert event.actor == "client" and what not in str(event.detail)
    # Twice is the same as once; a key that is no commitment of theirs changes nothing.
    assert hs.http.post(f"{journey}/done", data={"commitment": key}).status_code == 303
    assert hs.http.post(f"{journey}/done", data={"commitment": "0" * 16}).status_code == 404
    assert hs.http.post(f"{journey[:-4]}/done", data={"commitment": key}).status_code == 404

    # The coach's briefing no longer lists it as open; the client's page shows it done.
    from models import Coach
    with hs.db() as db:
        coach_id = db.exec(select(Coach)).one().id
        client_id = db.exec(select(ClientMemory)).one().client_id
    coach_view = page(sign_in(hs, coach_id), f"/coach/clients/{client_id}")
    briefing = coach_view[coach_view.index('id="briefing"'):coach_view.index('id="memory"')]
    assert marked["what"] not in briefing
    assert "marked done by the client" in coach_view
