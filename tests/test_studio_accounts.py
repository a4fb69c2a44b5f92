"""The studio on a shared server (studio.py --auth_file): every route the running app serves is
refused without a session (the table is read from the app itself, so a route added later is
covered too), a user cannot reach another's results, trainings or models, failed sign-ins make
an address (and an account) wait longer and longer, the quota and the training limit hold,
beyond-loopback without accounts or without HTTPS is refused, and HTTPS works with a
self-signed pair made here (its cookies named __Host-). Servers are bound to 127.0.0.1, each
on a port the kernel picks (port 0) and reads back: no gap in which another process could
take it. tests/test_attacks.py has the attacks of a stranger who knows the web."""
import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT, assert_one_line_error, optional, run_here

optional("gradio")
gradio_client = optional("gradio_client")
httpx = optional("httpx")

from singan import SinGANConfig, SinGANError, train_model  # noqa: E402
from singan.studio import (accounts as studio_accounts, gate as studio_gate,  # noqa: E402
                           jobs as studio_jobs)
from singan.studio.page import serve  # noqa: E402
from singan.studio.accounts import (COOKIE, DUMMY_HASH, FIRST_WAIT, FREE_TRIES,  # noqa: E402
                                    MAX_WAIT, Throttle, add_user, check_password, hash_password,
                                    read_accounts)
from singan.studio.jobs import TrainingQueue  # noqa: E402
from singan.studio.space import Workspace, parse_size  # noqa: E402

ROCKET = ROOT / "Input" / "Images" / "rocket.png"
SHARED_MODEL = "rocket/scale_factor=0.750000,alpha=10"
PASSWORDS = {"alice": "alice-password", "bob": "bob-password"}


class Server:
    """serve() in this process with two accounts, on a port of 127.0.0.1 the kernel picks."""

    def __init__(self, folder: Path, **settings):
        self.folder, self.root, self.out = folder, folder / "TrainedModels", folder / "Output"
        self.auth_file = folder / "users.txt"
        if not self.auth_file.exists():
            for name, password in PASSWORDS.items():
                add_user(self.auth_file, name, password)
        self.demo, self.url = serve("127.0.0.1", 0, str(self.root), str(self.out),
                                    device="cpu", accounts=read_accounts(self.auth_file),
                                    **settings)
        self.app = self.demo.server_app       # Gradio's app (mounted in the studio's own)

    def client(self, user: str):
        return gradio_client.Client(self.url, auth=(user, PASSWORDS[user]), verbose=False)

    @contextlib.contextmanager
    def http(self, user=None, **kwargs):
        """An httpx client, signed in as `user` (None: no session)."""
        with httpx.Client(base_url=self.url, timeout=60, **kwargs) as client:
            if user:
                answer = client.post("/login", data={"username": user,
                                                     "password": PASSWORDS[user]})
                assert answer.status_code == 200, answer.text
            yield client

    def close(self):
        self.demo.studio_queue.shutdown(10)
        self.demo.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shared_studio")
    train_model(ROCKET, SinGANConfig(max_size=40, min_size=15, niter=3), device="cpu",
                root=folder / "TrainedModels", show_progress=False, log=lambda line: None)
    server = Server(folder, max_trainings=2)
    yield server
    server.close()


# ---- every route behind the sign-in -------------------------------------------------------------

def app_routes(routes, prefix=""):
    """(path, methods) of every route, routers that FastAPI includes lazily and mounts opened."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from app_routes(included.routes, prefix + route.include_context.prefix)
            continue
        path = getattr(route, "path", None)
        if path is not None:
            yield prefix + path, getattr(route, "methods", None) or {"GET"}  # websockets, mounts
        if getattr(route, "routes", None):
            yield from app_routes(route.routes, prefix + (path or ""))


def route_table(app):
    """(method, path) of every route the app serves, its parameters filled in."""
    table = set()
    for path, methods in app_routes(app.routes):
        filled = re.sub(r"\{[^}:]+:path\}", "some/file.png", path)
        filled = re.sub(r"\{[^}]+\}", "x1", filled)
        table |= {(method, filled or "/") for method in methods}
    return sorted(table)


def test_every_route_refuses_a_request_without_a_session(server):
    table = route_table(server.app)
    paths = {path for _, path in table}
    # the table is the app's own: Gradio's page, API, queue, upload and file routes are in it
    for expected in ("/", "/config", "/gradio_api/queue/join", "/gradio_api/upload",
                     "/gradio_api/file=some/file.png", "/gradio_api/info",
                     "/gradio_api/heartbeat/x1", "/theme.css", "/gradio_api/startup-events"):
        assert expected in paths, expected
    assert len(table) > 60
    with server.http() as anonymous:
        for method, path in table:
            if path.rstrip("/") in ("/login", "/logout"):    # the gate's own, open to all
                continue
            for accept in ("text/html", "application/json"):
                answer = anonymous.request(method, path, headers={"accept": accept})
                if answer.status_code in (301, 302, 303, 307, 308):
                    assert answer.headers["location"].endswith("/login"), (method, path)
                else:
                    assert answer.status_code in (401, 403), (method, path, answer.status_code)
    # a websocket without a session is closed before it opens
    with httpx.Client() as raw:
        answer = raw.get(server.url + "gradio_api/queue/join",
                         headers={"connection": "upgrade", "upgrade": "websocket",
                                  "sec-websocket-version": "13",
                                  "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ=="})
        assert answer.status_code in (401, 403)


def test_the_sign_in_page_and_a_signed_in_session(server):
    """As a browser does it: the form (with its CSRF token and the token's cookie), the post,
    the page; signing out is a POST from the page (a GET changes nothing)."""
    page_headers = {"accept": "text/html", "sec-fetch-site": "same-origin",
                    "origin": server.url.rstrip("/")}
    with server.http() as browser:
        page = browser.get("/", headers={"accept": "text/html"})
        assert page.status_code == 303 and page.headers["location"] == "/login"
        form = browser.get("/login")
        assert form.status_code == 200 and 'name="password"' in form.text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
        assert browser.cookies["singan_signin"] == token
        signed = browser.post("/login", data={"username": "alice", "csrf_token": token,
                                              "password": PASSWORDS["alice"]},
                              headers=page_headers)
        assert signed.status_code == 303 and signed.headers["location"] == "/"
        cookie = signed.headers["set-cookie"]
        assert cookie.startswith(COOKIE) and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert "Secure" not in cookie and "__Host-" not in cookie   # plain HTTP
        assert browser.get("/config").status_code == 200
        assert browser.get("/", headers={"accept": "text/html"}).status_code == 200
        assert browser.get("/logout").status_code == 405     # a link cannot sign anyone out
        assert browser.get("/config").status_code == 200
        assert browser.post("/logout", headers=page_headers).status_code == 303
        assert browser.get("/config").status_code == 401    # the session is gone


def test_a_user_cannot_reach_another_users_work(server):
    alice, bob = server.client("alice"), server.client("bob")
    status = alice.predict("rocket.png", None, "SinGAN", "generation", 40, "15", 3, 0.75, 6, 0,
                           "cpu", api_name="/train")[0]
    assert "finished" in status
    mine = "alice/" + SHARED_MODEL
    trained = server.root / "studio" / "alice" / "rocket" / "scale_factor=0.750000,alpha=10"
    assert (trained / "model.pth").is_file()
    # alice sees the shared model and hers; bob only the shared one
    gallery, _, zip_path = alice.predict(mine, 2, 0, 1.0, 1.0, 0, False, api_name="/samples")
    assert len(gallery) == 2
    with pytest.raises(gradio_client.exceptions.AppError, match="no model"):
        bob.predict(mine, 2, 0, 1.0, 1.0, 0, False, api_name="/samples")
    assert len(bob.predict(SHARED_MODEL, 2, 0, 1.0, 1.0, 0, False, api_name="/samples")[0]) == 2
    # alice's result files: hers to fetch, refused to bob
    results = sorted((server.out / "studio" / "alice").rglob("*.png"))
    assert results, "alice's samples are under Output/studio/alice/"
    assert not list((server.out / "studio").glob("bob/**/alice*"))
    with server.http("alice") as a, server.http("bob") as b:
        for path in (results[0], trained / "0" / "real_scale.png", trained / "model.pth"):
            url = f"/gradio_api/file={path}"
            assert b.get(url).status_code == 403, path
        assert a.get(f"/gradio_api/file={results[0]}").status_code == 200
        inside = results[0].relative_to(server.out / "studio" / "alice")
        assert b.get(f"/gradio_api/file={server.out}/studio/bob/../alice/{inside}"
                     ).status_code == 403
    # bob's Stop never reaches alice's training
    assert bob.predict(api_name="/stop") == "No training to stop."
    # nor does bob read alice's result stream by naming her Gradio session
    with server.http("alice") as a, server.http("bob") as b:
        for client, status in ((b, 403), (a, 200)):
            for url in (f"/gradio_api/queue/data?session_hash={alice.session_hash}",
                        f"/gradio_api/heartbeat/{alice.session_hash}"):
                with client.stream("GET", url) as answer:
                    assert answer.status_code == status, (url, status)


def test_my_space_shows_and_frees_a_users_own_work(server):
    alice, bob = server.client("alice"), server.client("bob")
    mine = "alice/" + SHARED_MODEL
    if not (server.root / "studio" / "alice" / "rocket").is_dir():
        alice.predict("rocket.png", None, "SinGAN", "generation", 40, "15", 3, 0.75, 6, 0,
                      "cpu", api_name="/train")
    alice.predict(mine, 2, 0, 1.0, 1.0, 0, False, api_name="/samples")
    report, models = alice.predict(api_name="/space")
    assert re.match(r"[\d.]+ [KM]B of 2\.00 GB used: trainings [\d.]+ [KM]B, results [\d.]+ KB, "
                    r"uploads ", report), report
    assert mine in str(models)
    with pytest.raises(gradio_client.exceptions.AppError, match="no model"):
        bob.predict(mine, api_name="/delete_training")          # not his to delete
    assert (server.out / "studio" / "alice").is_dir()
    assert "results are removed" in alice.predict(api_name="/delete_results")
    assert not (server.out / "studio" / "alice").exists()
    assert "is removed" in alice.predict(mine, api_name="/delete_training")
    assert not (server.root / "studio" / "alice" / "rocket" / "scale_factor=0.750000,alpha=10"
                ).exists()
    assert (server.root / "rocket" / "scale_factor=0.750000,alpha=10").is_dir()   # shared stays
    with pytest.raises(gradio_client.exceptions.AppError, match="no model"):
        alice.predict(SHARED_MODEL, api_name="/delete_training")  # the shared ones: read-only


def outputs_until(job, words, seconds=90):
    """The latest outputs of a streaming call once its status has `words` in it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        outputs = job.outputs()
        if outputs and words in outputs[-1][0]:
            return outputs[-1]
        time.sleep(0.2)
    raise AssertionError(f"no {words!r} in {job.outputs()[-1:]}")


def test_the_servers_training_limit_one_per_user(server):
    """max_trainings=2: alice's second training waits while hers runs, though bob's starts at
    once beside it; bob's Stop stops his own only."""
    alice, bob = server.client("alice"), server.client("bob")
    long = ("SinGAN", "generation", 40, "15", 2000, 0.75, 3, 0, "cpu")
    a1 = alice.submit("astronaut.png", None, *long, api_name="/train")
    outputs_until(a1, "iteration")
    a2 = alice.submit("chelsea.png", None, *long, api_name="/train")
    assert "waiting in the queue (1 training ahead)" in outputs_until(a2, "waiting")[0]
    b1 = bob.submit("astronaut.png", None, *long, api_name="/train")
    assert "running" in outputs_until(b1, "iteration")[0]
    assert "waiting in the queue" in a2.outputs()[-1][0]           # still: one per user
    assert "Stop asked" in bob.predict(api_name="/stop")
    assert "stopped" in b1.result()[0]
    assert "running" in a1.outputs()[-1][0] and not a1.done()    # bob's Stop was his own
    alice.predict(api_name="/stop")
    assert "stopped" in a1.result()[0]
    outputs_until(a2, "iteration")                                 # her next one starts
    alice.predict(api_name="/stop")
    assert "stopped" in a2.result()[0]


def test_only_the_user_who_started_a_training_can_stop_it(monkeypatch, tmp_path):
    started = threading.Event()

    def fake_train(image, config, folder, *, should_stop, **_):
        started.set()
        while not should_stop():
            time.sleep(0.01)
        raise studio_jobs.TrainingStopped("stopped")

    monkeypatch.setattr(studio_jobs, "train_model", fake_train)
    jobs = TrainingQueue(tmp_path)
    job = jobs.submit(tmp_path / "a.png", SinGANConfig(max_size=32, niter=3), user="alice")
    assert started.wait(10)
    with pytest.raises(SinGANError, match="another user"):
        jobs.stop(job.id, user="bob")
    assert jobs.stop(user="bob") is None and not job.stop.is_set()
    assert jobs.get(user="bob") is None and jobs.get(user="alice") is job
    jobs.stop(user="alice")
    assert job.stop.is_set()


def test_the_training_limit_and_one_training_per_user(monkeypatch, tmp_path):
    """At most max_running at once, each user at most one; the others wait and say where."""
    release = threading.Event()
    running = []

    def fake_train(image, config, folder, **_):
        running.append(Path(image).name)
        release.wait(20)
        raise SinGANError("done")

    monkeypatch.setattr(studio_jobs, "train_model", fake_train)
    jobs = TrainingQueue(tmp_path, max_running=2)
    cfg = SinGANConfig(max_size=32, niter=3)
    a1 = jobs.submit(tmp_path / "a1.png", cfg, user="alice")
    a2 = jobs.submit(tmp_path / "a2.png", cfg, user="alice")
    b1 = jobs.submit(tmp_path / "b1.png", cfg, user="bob")
    c1 = jobs.submit(tmp_path / "c1.png", cfg, user="carol")
    deadline = time.monotonic() + 60
    while len(running) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    # two worker threads, both held in fake_train: no third can start while they are
    assert sorted(running) == ["a1.png", "b1.png"]        # alice's second waits; so does carol
    assert a2.state == "queued" and c1.state == "queued"
    assert "waiting in the queue (2 trainings ahead" in a2.describe(jobs.ahead(a2))
    assert "waiting in the queue (3 trainings ahead" in c1.describe(jobs.ahead(c1))
    for n in range(studio_jobs.MAX_WAITING_PER_USER - 1):
        jobs.submit(tmp_path / f"a{n + 3}.png", cfg, user="alice")
    with pytest.raises(SinGANError, match="trainings waiting"):
        jobs.submit(tmp_path / "a9.png", cfg, user="alice")
    release.set()
    deadline = time.monotonic() + 60
    while not all(j.done for j in jobs.jobs) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert all(j.state == "failed" for j in (a1, a2, b1, c1))


def test_failed_sign_ins_make_the_address_wait(server, monkeypatch):
    """A wrong password and an unknown user: the same answer, after the same work (one scrypt
    check each, of the same cost: the unknown user's against a dummy hash); after FREE_TRIES
    failures from one address it waits (429 and Retry-After); another address still signs in."""
    # a wait no test is slow enough to outlast: 429 right after the free tries, however slow
    monkeypatch.setattr(studio_accounts, "FIRST_WAIT", 200.0)
    checked = []
    real = studio_gate.check_password
    monkeypatch.setattr(studio_gate, "check_password",
                        lambda password, stored: checked.append(stored) or real(password, stored))

    def attempt(address, user, password):
        with httpx.Client(base_url=server.url, timeout=60,
                          transport=httpx.HTTPTransport(local_address=address)) as c:
            return c.post("/login", data={"username": user, "password": password})

    wrong = [attempt("127.0.0.9", "alice", "not-her-password") for _ in range(2)]
    unknown = [attempt("127.0.0.9", "mallory", "whatever-password") for _ in range(2)]
    assert {(a.status_code, a.text) for a in wrong + unknown} == \
        {(401, '{"detail": "wrong user name or password"}')}
    accounts = read_accounts(server.auth_file)
    assert checked == [accounts["alice"]] * 2 + [DUMMY_HASH] * 2
    assert {h.split("$")[:4] == accounts["alice"].split("$")[:4] for h in checked} == {True}
    for _ in range(FREE_TRIES - len(checked)):
        attempt("127.0.0.9", "bob", "not-his-password")
    locked = attempt("127.0.0.9", "alice", PASSWORDS["alice"])
    assert locked.status_code == 429 and "wait" in locked.json()["detail"]
    assert 190 <= int(locked.headers["retry-after"]) <= 201
    assert len(checked) == FREE_TRIES                  # the waiting attempt was not checked
    other = attempt("127.0.0.10", "alice", PASSWORDS["alice"])
    assert other.status_code == 200 and COOKIE in other.headers["set-cookie"]


def test_throttle_waits_longer_after_each_failure_and_forgets():
    """Counted before the check, per address and per account: FREE_TRIES failures are free,
    then the wait doubles from FIRST_WAIT up to MAX_WAIT; a success takes its own attempt
    back; failures are forgotten after FAILURE_WINDOW."""
    now = [0.0]
    throttle = Throttle(clock=lambda: now[0])
    for _ in range(FREE_TRIES - 1):
        assert throttle.begin("1.2.3.4", "alice") == 0
    assert throttle.wait_left("1.2.3.4") == 0
    assert throttle.begin("1.2.3.4", "alice") == 0            # the FREE_TRIES-th
    assert throttle.begin("1.2.3.4", "bob") == FIRST_WAIT     # the address waits...
    assert throttle.begin("5.6.7.8", "alice") == FIRST_WAIT   # ...and so does the account
    assert throttle.begin("5.6.7.8", "bob") == 0              # not others
    waits = []
    for _ in range(12):
        now[0] += throttle.wait_left("1.2.3.4", "alice")
        assert throttle.begin("1.2.3.4", "alice") == 0
        waits.append(throttle.wait_left("1.2.3.4", "alice"))
    assert waits[:4] == [2 * FIRST_WAIT, 4 * FIRST_WAIT, 8 * FIRST_WAIT, 16 * FIRST_WAIT]
    assert max(waits) == MAX_WAIT                            # growing, never a lockout
    now[0] += MAX_WAIT
    assert throttle.begin("9.9.9.9", "carol") == 0
    throttle.succeeded("9.9.9.9", "carol")                   # a success takes itself back
    assert throttle.records[("address", "9.9.9.9")][0] == 0
    now[0] += studio_accounts.FAILURE_WINDOW + 1
    assert throttle.wait_left("1.2.3.4", "alice") == 0       # forgotten


def test_forwarded_for_is_believed_from_trusted_proxies_only(tmp_path, monkeypatch):
    """X-Forwarded-For names the client only when a --trusted_proxies address sends it; from
    anyone else (loopback included) the connection's own address counts."""
    proxied = Server(tmp_path, trusted_proxies=["127.0.0.3"])
    try:
        def attempt(address, user, forwarded):
            with httpx.Client(base_url=proxied.url, timeout=60,
                              transport=httpx.HTTPTransport(local_address=address)) as c:
                return c.post("/login", data={"username": user, "password": "wrong-password"},
                              headers={"x-forwarded-for": forwarded})
        monkeypatch.setattr(studio_accounts, "FIRST_WAIT", 200.0)   # a wait no test outlasts
        for n in range(FREE_TRIES):
            attempt("127.0.0.3", f"user{n}", "203.0.113.5")
        assert "from 203.0.113.5" in attempt("127.0.0.3", "x", "203.0.113.5").json()["detail"]
        assert attempt("127.0.0.3", "y", "203.0.113.6").status_code == 401   # another client
        for n in range(FREE_TRIES):     # not a trusted proxy: its own address, whatever it says
            attempt("127.0.0.4", f"other{n}", f"198.51.100.{n}")
        assert "from 127.0.0.4" in attempt("127.0.0.4", "z", "198.51.100.99").json()["detail"]
    finally:
        proxied.close()


def test_the_quota_refuses_with_one_line_and_keeps_nothing(server, tmp_path):
    small = Server(tmp_path, quota_bytes=20_000)
    shutil.copytree(server.root / "rocket", small.root / "rocket")
    try:
        alice = small.client("alice")
        with pytest.raises(gradio_client.exceptions.AppError, match="past its quota"):
            alice.predict(SHARED_MODEL, 64, 0, 1.0, 1.0, 0, False, api_name="/samples")
        assert not [p for p in (small.out / "studio").rglob("*") if p.is_file()]
        assert len(alice.predict(SHARED_MODEL, 1, 0, 1.0, 1.0, 0, False,
                                 api_name="/samples")[0]) == 1   # a small one still fits
        # Gradio's own upload route counts too
        with small.http("alice") as a:
            big = a.post("/gradio_api/upload", files={"files": ("x.png", b"0" * 30_000)})
            assert big.status_code == 413 and "quota" in big.json()["detail"]
    finally:
        small.close()


def test_workspace_stages_results_and_relocates_paths(tmp_path):
    space = Workspace(tmp_path / "m", tmp_path / "o", tmp_path / "u", quota_bytes=100)
    final = space.results("alice") / "s"

    def make(out):
        (out / "a").mkdir(parents=True)
        (out / "a" / "f.png").write_bytes(b"x" * 60)
        return [str(out / "a" / "f.png")]
    assert space.staged("alice", final, make) == [str(final / "a" / "f.png")]
    assert (final / "a" / "f.png").read_bytes() == b"x" * 60
    with pytest.raises(SinGANError, match="past its quota"):
        space.staged("alice", final / "2", make)            # 60 more would make 120 > 100
    assert not (final / "2").exists() and space.usage("alice") == 60
    assert space.usage("bob") == 0
    assert parse_size("2GB") == 2 * 10 ** 9 and parse_size("1 MiB") == 2 ** 20
    with pytest.raises(SinGANError):
        parse_size("lots")


def test_account_file(tmp_path):
    path = tmp_path / "users.txt"
    add_user(path, "alice", "a long password")
    assert (path.stat().st_mode & 0o777) == 0o600
    stored = read_accounts(path)["alice"]
    assert check_password("a long password", stored) and not check_password("wrong", stored)
    assert hash_password("same", b"0" * 16) == hash_password("same", b"0" * 16)
    assert hash_password("same") != hash_password("same")           # a random salt each time
    for name, password, words in (("alice", "another password", "already"),
                                  ("a b", "a long password", "user name"),
                                  ("carol", "short", "8 characters")):
        with pytest.raises(SinGANError, match=words):
            add_user(path, name, password)
    path.write_text("alice:plain-text-password\n")
    with pytest.raises(SinGANError, match="line 1"):
        read_accounts(path)
    with pytest.raises(SinGANError, match="--add_user"):
        read_accounts(tmp_path / "missing.txt")


def test_beyond_loopback_without_accounts_or_https_is_refused(tmp_path, monkeypatch):
    def studio(*args, stdin=""):
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        return run_here("studio.py", *args, cwd=tmp_path, monkeypatch=monkeypatch)

    for host in ("0.0.0.0", "192.0.2.7", "::"):
        done = studio("--host", host, "--port", 0)
        assert done.returncode == 2
        assert_one_line_error(done, "beyond this machine", "--add_user")
    installed = subprocess.run([sys.executable, "-m", "singan", "studio", "--host", "0.0.0.0"],
                               capture_output=True, text=True, timeout=120, cwd=tmp_path,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert installed.returncode == 2                   # the installed command: the same line
    assert_one_line_error(installed, "beyond this machine", "--add_user")
    users = tmp_path / "users.txt"
    added = studio("--auth_file", users, "--add_user", "dana",
                   stdin="dana-password\ndana-password\n")
    assert added.returncode == 0 and "dana" in read_accounts(users)
    differ = studio("--auth_file", users, "--add_user", "erin",
                    stdin="erin-password\nerin-passw0rd\n")
    assert differ.returncode == 2 and "differ" in differ.stderr
    assert "erin" not in read_accounts(users)
    for many in ("0", "64000"):                 # 1000x the most: refused before any thread
        done = studio("--max_trainings", many, "--port", 0)
        assert done.returncode == 2
        assert_one_line_error(done, "--max_trainings", "from 1 to 64")
    # accounts beyond loopback, but passwords in clear text: refused, saying why and how
    done = studio("--host", "0.0.0.0", "--auth_file", users, "--port", 0)
    assert done.returncode == 2
    assert_one_line_error(done, "clear text", "--ssl_certfile", "--behind_tls_proxy")
    done = studio("--host", "0.0.0.0", "--auth_file", users, "--behind_tls_proxy")
    assert done.returncode == 2
    assert_one_line_error(done, "--behind_tls_proxy needs --trusted_proxies")
    done = studio("--auth_file", users, "--trusted_proxies", "127.0.0.1,the-proxy")
    assert done.returncode == 2
    assert_one_line_error(done, "--trusted_proxies", "'the-proxy' is not an IP address")
    damaged = tmp_path / "damaged.txt"
    damaged.write_text("not an account line\n")
    done = studio("--host", "0.0.0.0", "--auth_file", damaged, "--ssl_certfile", "c.pem",
                  "--ssl_keyfile", "k.pem")
    assert done.returncode == 2
    assert_one_line_error(done, "c.pem does not exist")


def test_https_with_a_self_signed_pair(server, tmp_path):
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    secure = Server(server.folder, ssl_certfile=str(cert), ssl_keyfile=str(key))
    try:
        assert secure.url.startswith("https://")
        with httpx.Client(base_url=secure.url, verify=str(cert), timeout=60) as c:
            assert c.get("/config").status_code == 401
            form = c.get("/login")
            assert form.headers["set-cookie"].startswith("__Host-singan_signin=")
            token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
            signed = c.post("/login", data={"username": "bob", "password": PASSWORDS["bob"],
                                            "csrf_token": token})
            cookie = signed.headers["set-cookie"]
            assert signed.status_code == 200 and "Secure" in cookie
            # __Host-: only this host, over HTTPS, with Path=/ and no Domain, may set it (a
            # page of a sibling host cannot plant or overwrite it)
            assert cookie.startswith(f"__Host-{COOKIE}=") and "Path=/" in cookie
            assert "domain" not in cookie.lower()
            assert c.get("/config").json()["version"]
        with pytest.raises(httpx.HTTPError):                  # not plain HTTP on that port
            httpx.get(secure.url.replace("https", "http") + "config", timeout=10)
    finally:
        secure.close()
