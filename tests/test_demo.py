"""`flask --app app demo` as a user runs it, in a fresh var/ of its own: the links it prints
open, a re-run starts clean and says so, a store holding other data is left alone, and
`--serve` serves the printed links with a worker that delivers what the pages queue."""

from __future__ import annotations

import json
import mailbox
import os
import re
import signal
import subprocess
import sys
import threading
import time
from email import message_from_bytes
from email.policy import default as default_policy
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest
import requests

from tests.services import free_port

ROOT = Path(__file__).resolve().parent.parent
DEMO_COACH = "casey.coach@demo.holdspace.test"
DEMO_CLIENT = "robin@demo.holdspace.test"
# Settings that would point the demo elsewhere than its own var/.
_STORE_SETTINGS = ("DATABASE_URL", "REDIS_URL", "STORAGE_URL", "S3_ENDPOINT_URL", "SMTP_URL",
                   "SECRET_KEY", "VAULT_MASTER_KEY", "KMS_KEY_ID", "PUBLIC_BASE_URL",
                   "TRANSCRIBE_ENGINE", "SUMMARY_ENGINE", "OPENAI_API_KEY", "OPENAI_BASE_URL")


@pytest.fixture
def demo_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in _STORE_SETTINGS}
    env.update(HOLDSPACE_VAR_DIR=str(tmp_path / "var"), HF_HUB_OFFLINE="1",
               PUBLIC_BASE_URL=f"http://127.0.0.1:{free_port()}")
    yield env
    from workers.embedded_redis import stop
    stop(Path(env["HOLDSPACE_VAR_DIR"]))


def flask(env, *args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flask", "--app", "app", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def printed_links(output: str, base: str) -> tuple[str, str]:
    client = re.search(rf"{re.escape(base)}/s/\S+", output)
    sign_in = re.search(rf"{re.escape(base)}/coach/auth/\S+", output)
    assert client and sign_in, output
    return client.group(0), sign_in.group(0)


def mails_to(env, address: str) -> list:
    """The mails to `address` in the demo's Maildir, oldest first, as `flask outbox` opens
    them (they are kept there sealed)."""
    run = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "outbox", "--mbox",
                          "--to", address], cwd=ROOT, env=env, capture_output=True, timeout=120)
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    box = Path(env["HOLDSPACE_VAR_DIR"]).parent / "opened.mbox"
    box.write_bytes(run.stdout)
    return [message_from_bytes(m.as_bytes(), policy=default_policy) for m in mailbox.mbox(box)]


def wait_for_mail(env, address: str, more_than: int, timeout: float = 30):
    """The mails to `address` written after the first `more_than`, once there is one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        mails = mails_to(env, address)
        if len(mails) > more_than:
            return mails[more_than:]
        time.sleep(0.5)
    raise AssertionError(f"no new email to {address} within {timeout}s")


_GET_IN_ORDER = """
import json, sys
from urllib.parse import urlparse
from app import create_app
http = create_app().test_client()
answers = [http.get(urlparse(url).path) for url in sys.argv[1:]]
print(json.dumps([[a.status_code, a.headers.get("Location")] for a in answers]))
"""


def get_in_order(env, *urls) -> list[tuple[int, str | None]]:
    """GET each URL's path in turn, one client (so its cookies) for all, in the app `make run`
    would serve from this environment."""
    done = subprocess.run([sys.executable, "-c", _GET_IN_ORDER, *urls], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [tuple(a) for a in json.loads(done.stdout.strip().splitlines()[-1])]


class Browser:
    """requests keeping its own cookies: the server sets their expiry by its clock, and the
    suite may run this process on a moved one (HOLDSPACE_TEST_CLOCK_SHIFT_DAYS), where a
    cookie jar would drop them as expired."""

    def __init__(self):
        self.cookies: dict[str, str] = {}

    def get(self, url: str, **kwargs) -> requests.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs) -> requests.Response:
        return self.request("POST", url, **kwargs)

    def request(self, method: str, url: str, **kwargs) -> requests.Response:
        for _ in range(10):
            cookie = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
            resp = requests.request(method, url, headers={"Cookie": cookie} if cookie else {},
                                    allow_redirects=False, timeout=10, **kwargs)
            for header in resp.raw.headers.getlist("Set-Cookie"):
                jar = SimpleCookie()
                jar.load(header)
                for name, morsel in jar.items():
                    self.cookies[name] = morsel.value
            if resp.status_code not in (301, 302, 303, 307, 308):
                return resp
            url, method = urljoin(url, resp.headers["Location"]), "GET"
            kwargs.pop("data", None)
        raise AssertionError(f"too many redirects from {url}")


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_a_rerun_starts_clean_and_its_links_open(demo_env):
    base = demo_env["PUBLIC_BASE_URL"]
    first = flask(demo_env, "demo")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Starting clean" not in first.stdout
    second = flask(demo_env, "demo")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Starting clean: an earlier demo run left 2 clients, 2 sessions, " in second.stdout
    assert "Audit chain: intact (" in second.stdout
    old_client, old_sign_in = printed_links(first.stdout, base)
    client, sign_in = printed_links(second.stdout, base)

    # What `make run` would serve: the same var/, read from the same environment (in a process
    # of its own, on the real clock, like the demo that issued the links).
    old_page, page, signed_in, dashboard, old_signed_in = get_in_order(
        demo_env, old_client, client, sign_in, f"{base}/coach", old_sign_in)
    assert page == (200, None) and old_page[0] == 404  # the earlier run is gone
    assert signed_in[0] == 303 and signed_in[1].endswith("/coach") and dashboard[0] == 200
    assert old_signed_in[0] == 401
    # Only this run's emails are left: one session email for the client.
    assert len(mails_to(demo_env, DEMO_CLIENT)) == 1


def test_a_store_with_other_data_is_left_alone(demo_env):
    assert flask(demo_env, "init-db").returncode == 0
    added = flask(demo_env, "coach", "add", "--email", "real.coach@example.com", "--name", "Real Coach")
    assert added.returncode == 0, added.stderr
    result = flask(demo_env, "demo")
    assert result.returncode == 1
    assert "not the demo's (auditevent: 1 row, coach: 1 row)" in result.stdout
    assert "POST /webhooks/zoom" not in result.stdout
    import sqlite3
    with sqlite3.connect(Path(demo_env["HOLDSPACE_VAR_DIR"]) / "holdspace.db") as db:
        assert db.execute("SELECT email FROM coach").fetchall() == [("real.coach@example.com",)]


class Served:
    """`flask --app app demo --serve` in a subprocess, its output collected as it comes."""

    def __init__(self, env):
        self.lines: list[str] = []
        self.proc = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "demo", "--serve"],
                                     cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            assert self.proc.poll() is None, f"the demo exited ({self.proc.returncode}):\n{self.output}"
            assert time.monotonic() < deadline, f"no {text!r} within {timeout}s:\n{self.output}"
            time.sleep(0.2)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def test_serve_serves_the_printed_links_and_delivers_what_they_queue(demo_env):
    base = demo_env["PUBLIC_BASE_URL"]
    served = Served(demo_env)
    try:
        served.wait_for("press Ctrl-C to stop", timeout=300)
        client, sign_in = printed_links(served.output, base)
        session_id = re.search(r"session (\w{32}): state = delivered", served.output).group(1)

        page = requests.get(client, timeout=10)
        assert page.status_code == 200 and "Robin" in page.text

        coach = Browser()
        dashboard = coach.get(sign_in)
        assert dashboard.status_code == 200 and dashboard.url == f"{base}/coach"

        # "Email me a sign-in link" is delivered by the worker that --serve keeps running.
        before = len(mails_to(demo_env, DEMO_COACH))
        login = Browser()
        form = login.get(f"{base}/coach/login")
        sent = login.post(f"{base}/coach/login", data={"email": DEMO_COACH, "csrf_token": csrf_of(form.text)})
        assert sent.status_code == 200
        mail = wait_for_mail(demo_env, DEMO_COACH, before)
        assert any("/coach/auth/" in m.get_body(("plain",)).get_content() for m in mail)

        # The coach turns the client's link off: the client's "email me a fresh link" sends
        # nothing for it; once the coach shares the session again, the new link opens.
        view = coach.get(f"{base}/coach/sessions/{session_id}")
        revoked = coach.post(f"{base}/coach/sessions/{session_id}/revoke",
                             data={"csrf_token": csrf_of(view.text)})
        assert revoked.status_code == 200 and "Revoked 1 link" in revoked.text and "final" in revoked.text
        assert requests.get(client, timeout=10).status_code == 410
        before = len(mails_to(demo_env, DEMO_CLIENT))
        requests.post(f"{base}/links/fresh", timeout=10,
                      data={"token": urlparse(client).path.rsplit("/", 1)[-1], "email": DEMO_CLIENT})
        time.sleep(5)  # the worker answers a fresh-link request within a second here
        assert len(mails_to(demo_env, DEMO_CLIENT)) == before
        view = coach.get(f"{base}/coach/sessions/{session_id}")
        shared = coach.post(f"{base}/coach/sessions/{session_id}/resend",
                            data={"csrf_token": csrf_of(view.text)})
        assert shared.status_code == 200 and "fresh link" in shared.text
        again = [m for m in wait_for_mail(demo_env, DEMO_CLIENT, before)
                 if "/s/" in m.get_body(("plain",)).get_content()]
        assert again, "no email for the session shared again"
        link = re.search(rf"{re.escape(base)}/s/\S+", again[0].get_body(("plain",)).get_content()).group(0)
        assert requests.get(link, timeout=10).status_code == 200
    finally:
        code = served.stop()
    assert code == 0, served.output
