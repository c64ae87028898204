"""The coach's client work done in the browser, at 1366 and 390 px: add a client and email the
consent request, record a verbal consent with the attestation, revoke a client's links, and
delete a client through the confirmation page; each leaves the state it says it does."""

from __future__ import annotations

import pytest
from sqlmodel import select

from models import Client, Consent, DeletionReceipt, Link
from portal.coach import login_link
from tests.browser.pages import WIDTHS
from tests.browser.support import coach_after_a_delivery
from tests.portalhelpers import body_of
from tests.zoomhelpers import CLIENT_EMAIL, COACH_EMAIL

NEW_EMAIL = "sam.new@client.test"


@pytest.mark.parametrize("width", sorted(WIDTHS))
def test_clients_added_consented_revoked_and_deleted(hs, zoom_stub, smtp_sink, browse, width):
    coach_id, robin = coach_after_a_delivery(hs, zoom_stub, smtp_sink)
    tab = browse(viewport=WIDTHS[width])
    page = tab.page
    tab.goto(login_link(hs.rt, coach_id))

    # Add a client and ask for consent in one go.
    page.fill("#new-client-name", "Sam New")
    page.fill("#new-client-email", NEW_EMAIL)
    assert page.is_checked("#new-client-ask")
    with page.expect_navigation():
        page.click("#add-client-go")
    assert "/coach/clients/" in page.url and page.locator("h1").inner_text().startswith("Sam New")
    sam = page.url.rsplit("/", 1)[1]
    hs.drain()
    (request,) = smtp_sink.to(NEW_EMAIL)
    assert "consent" in request["Subject"] and "/c/" in body_of(request)

    # Sam agrees aloud, without downloads: the browser will not record it unattested.
    page.uncheck("#verbal-share_with_client")
    page.click("#verbal-go")
    assert not page.evaluate("document.getElementById('verbal-attest').validity.valid")
    page.check("#verbal-attest")
    with page.expect_navigation():
        page.click("#verbal-go")
    with hs.db() as db:
        (consent,) = db.exec(select(Consent).where(Consent.client_id == sam)).all()
    assert consent.method == "verbal_attested" and "share_with_client" not in consent.scope_set
    assert "record" in consent.scope_set
    assert "(verbal attested)" in page.inner_text("main")

    # Robin's links, revoked from Robin's page: none works any more.
    tab.goto(f"/coach/clients/{robin}")
    with page.expect_navigation():
        page.click("#revoke-client-links")
    with hs.db() as db:
        live = [ln for ln in db.exec(select(Link).where(Link.client_id == robin)) if ln.revoked_at is None]
    assert live == []

    # Sam deleted through the confirmation page: gone, with a receipt emailed.
    tab.goto(f"/coach/clients/{sam}")
    with page.expect_navigation():
        page.click("#delete-client")
    page.click("#confirm-delete-client-button")
    assert "/delete" in page.url  # the confirmation box is required
    page.check("#confirm-delete-client")
    with page.expect_navigation():
        page.click("#confirm-delete-client-button")
    assert page.url.endswith("/coach")
    hs.drain()
    with hs.db() as db:
        (receipt,) = db.exec(select(DeletionReceipt)).all()
        gone, kept = db.get(Client, sam), db.get(Client, robin)
    assert receipt.completed_at is not None and gone.email is None and gone.name is None
    assert kept.email == CLIENT_EMAIL and kept.erasing_at is None
    assert any("Deletion receipt" in m["Subject"] for m in smtp_sink.to(COACH_EMAIL))
    tab.goto("/coach")
    assert "Sam New" not in page.locator("#clients").inner_text()
