"""The studio on a shared server (studio.py --auth_file): every route the running app serves is
refused without a session (the table is read from the app itself, so a route added later is
covered too), a user cannot reach another's results, trainings or models, failed sign-ins lock
an address out, the quota and the training limit hold, beyond-loopback without accounts is
refused, and HTTPS works with a self-signed pair made here. Servers are bound to 127.0.0.1."""
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
from singan.apps import studio_accounts, studio_jobs  # noqa: E402
from singan.apps.studio import serve  # noqa: E402
from singan.apps.studio_accounts import (COOKIE, MAX_FAILURES, Throttle, add_user,  # noqa: E402
                                         check_password, hash_password, read_accounts)
from singan.apps.studio_jobs import TrainingQueue  # noqa: E402
from singan.apps.studio_space import Workspace, parse_size  # noqa: E402

ROCKET = ROOT / "Input" / "Images" / "rocket.png"
SHARED_MODEL = "rocket/scale_factor=0.750000,alpha=10"
PASSWORDS = {"alice": "alice-password", "bob": "bob-password"}


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """serve() in this process with two accounts, on a free port of 127.0.0.1."""

    def __init__(self, folder: Path, **settings):
        self.folder, self.root, self.out = folder, folder / "TrainedModels", folder / "Output"
        self.auth_file = folder / "users.txt"
        if not self.auth_file.exists():
            for name, password in PASSWORDS.items():
                add_user(self.auth_file, name, password)
        self.demo, self.url = serve("127.0.0.1", free_port(), str(self.root), str(self.out),
                                    device="cpu", accounts=read_accounts(self.auth_file),
                                    **settings)
        self.app = self.demo.server_app if hasattr(self.demo, "server_app") else self.demo.app

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
    with server.http() as browser:
        page = browser.get("/", headers={"accept": "text/html"})
        assert page.status_code == 303 and page.headers["location"] == "/login"
        form = browser.get("/login")
        assert form.status_code == 200 and 'name="password"' in form.text
        signed = browser.post("/login", data={"username": "alice",
                                              "password": PASSWORDS["alice"]},
                              headers={"accept": "text/html"})
        assert signed.status_code == 303 and signed.headers["location"] == "/"
        cookie = signed.headers["set-cookie"]
        assert cookie.startswith(COOKIE) and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert "Secure" not in cookie                       # plain HTTP: no Secure flag
        assert browser.get("/config").status_code == 200
        assert browser.get("/", headers={"accept": "text/html"}).status_code == 200
        assert browser.get("/logout").status_code == 303
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
    deadline = time.monotonic() + 10
    while len(running) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    assert sorted(running) == ["a1.png", "b1.png"]        # alice's second waits; so does carol
    assert a2.state == "queued" and c1.state == "queued"
    assert "waiting in the queue (2 trainings ahead" in a2.describe(jobs.ahead(a2))
    assert "waiting in the queue (3 trainings ahead" in c1.describe(jobs.ahead(c1))
    for n in range(studio_jobs.MAX_WAITING_PER_USER - 1):
        jobs.submit(tmp_path / f"a{n + 3}.png", cfg, user="alice")
    with pytest.raises(SinGANError, match="trainings waiting"):
        jobs.submit(tmp_path / "a9.png", cfg, user="alice")
    release.set()
    deadline = time.monotonic() + 20
    while not all(j.done for j in jobs.jobs) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert all(j.state == "failed" for j in (a1, a2, b1, c1))


def test_failed_sign_ins_lock_the_address_out(server):
    """A wrong password and an unknown user: the same answer in the same time; five failures
    within a minute make the address wait (another address may still sign in)."""
    def attempt(address, user, password):
        with httpx.Client(base_url=server.url, timeout=30,
                          transport=httpx.HTTPTransport(local_address=address)) as c:
            started = time.monotonic()
            answer = c.post("/login", data={"username": user, "password": password})
            return answer, time.monotonic() - started

    wrong = [attempt("127.0.0.9", "alice", "not-her-password") for _ in range(2)]
    unknown = [attempt("127.0.0.9", "mallory", "whatever-password") for _ in range(2)]
    assert {(a.status_code, a.text) for a, _ in wrong + unknown} == \
        {(401, '{"detail": "wrong user name or password"}')}
    median = lambda xs: sorted(t for _, t in xs)[len(xs) // 2]   # noqa: E731
    assert abs(median(wrong) - median(unknown)) < 0.1
    assert min(t for _, t in wrong + unknown) >= studio_accounts.ANSWER_FLOOR
    attempt("127.0.0.9", "bob", "not-his-password")           # the fifth failure
    locked, _ = attempt("127.0.0.9", "alice", PASSWORDS["alice"])
    assert locked.status_code == 429 and "wait" in locked.json()["detail"]
    assert int(locked.headers["retry-after"]) > 50
    other, _ = attempt("127.0.0.10", "alice", PASSWORDS["alice"])
    assert other.status_code == 200 and COOKIE in other.headers["set-cookie"]


def test_throttle_counts_failures_within_the_window():
    now = [0.0]
    throttle = Throttle(clock=lambda: now[0])
    for _ in range(MAX_FAILURES - 1):
        throttle.failed("a")
        now[0] += 20                      # spread over 80 s: never 5 within a minute
    throttle.failed("a")
    assert throttle.wait_left("a") == 0
    for _ in range(MAX_FAILURES - 1):
        throttle.failed("a")
    assert throttle.wait_left("a") == pytest.approx(60)
    now[0] += 61
    assert throttle.wait_left("a") == 0


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


def test_beyond_loopback_without_accounts_is_refused(tmp_path, monkeypatch):
    def studio(*args, stdin=""):
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        return run_here("studio.py", *args, cwd=tmp_path, monkeypatch=monkeypatch)

    for host in ("0.0.0.0", "192.0.2.7", "::"):
        done = studio("--host", host, "--port", free_port())
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
        done = studio("--max_trainings", many, "--port", free_port())
        assert done.returncode == 2
        assert_one_line_error(done, "--max_trainings", "from 1 to 64")
    damaged = tmp_path / "damaged.txt"
    damaged.write_text("not an account line\n")
    done = studio("--host", "0.0.0.0", "--auth_file", damaged)
    assert done.returncode == 2
    assert_one_line_error(done, "line 1", "--add_user")


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
            signed = c.post("/login", data={"username": "bob", "password": PASSWORDS["bob"]})
            assert signed.status_code == 200 and "Secure" in signed.headers["set-cookie"]
            assert c.get("/config").json()["version"]
        with pytest.raises(httpx.HTTPError):                  # not plain HTTP on that port
            httpx.get(secure.url.replace("https", "http") + "config", timeout=10)
    finally:
        secure.close()
