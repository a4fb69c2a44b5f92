"""The web studio's figures: how long until the page is ready after `python studio.py`, how
long a 16-sample request on a 64 px model takes through Gradio's client, and the idle server's
memory (resident set); then the same studio with accounts under hostile requests: what the
sign-in gate costs a request (a page's /config, a result file, alice's 16 samples), how fast
it refuses bob's attacks (another user's file, session and event; unknown routes), and the
server's peak memory after bob uploads a 22 KB TIFF declaring 12000 x 12000 px.

    python benchmarks/bench_studio.py [--niter 50] [--repeats 5]

Trains the 64 px model once into a temporary folder (not timed), then starts the studio as a
user does and measures.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from singan import SinGANConfig, train_model  # noqa: E402
from singan.studio.accounts import add_user  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))
from test_attacks import tiff_bomb  # noqa: E402


def stop(server: subprocess.Popen) -> None:
    """Stop a studio as Ctrl-C would; one still closing after a minute (a busy machine) is
    killed, so that a slow goodbye never loses the figures measured."""
    server.terminate()
    try:
        server.wait(60)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MiB (from /proc)."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def peak_mb(pid: int) -> float:
    """A process's peak resident memory so far (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start(args, env, log):
    """python studio.py with `args`, its output to `log`: (process, url)."""
    server = subprocess.Popen([sys.executable, str(ROOT / "studio.py"), "--port", "0", *args],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and server.poll() is None:
        found = re.search(r"^singan studio: (\S+)", Path(log.name).read_text(), re.M)
        if found:
            return server, found.group(1)
        time.sleep(0.05)
    sys.exit("the studio did not start:\n" + Path(log.name).read_text())


def timed(call, times: int) -> float:
    """The median milliseconds of `times` calls."""
    took = []
    for _ in range(times):
        t = time.perf_counter()
        call()
        took.append(time.perf_counter() - t)
    return 1000 * statistics.median(took)


def hostile(root: Path, tmp: Path, name: str, env, repeats: int) -> dict:
    """The studio with accounts: the gate's cost, its refusals, and a decoder bomb."""
    import httpx
    from gradio_client import Client, handle_file
    users = tmp / "users.txt"
    for user in ("alice", "bob"):
        add_user(users, user, f"{user}-password")
    with open(tmp / "server.log", "w") as log:
        server, url = start(["--auth_file", str(users), "--root", str(root), "--out",
                             str(tmp / "Output2"), "--device", "cpu"], env, log)
    try:
        alice = Client(url, auth=("alice", "alice-password"), verbose=False)
        sample = lambda: alice.predict(name, 16, 0, 1.0, 1.0, 0, False,  # noqa: E731
                                       api_name="/samples")
        sample()
        result = sorted((tmp / "Output2" / "studio" / "alice").rglob("*.png"))[0]
        figures = {"16 samples through the gate, median ms": timed(sample, repeats)}
        with httpx.Client(base_url=url, timeout=60) as a, httpx.Client(base_url=url,
                                                                       timeout=60) as b:
            for client, user in ((a, "alice"), (b, "bob")):
                client.post("/login", data={"username": user, "password": f"{user}-password"})
            figures["GET /config, median ms"] = timed(lambda: a.get("/config"), 200)
            figures["GET a result file, median ms"] = timed(
                lambda: a.get(f"/gradio_api/file={result}"), 200)
            attacks = [f"/gradio_api/file={result}",
                       f"/gradio_api/queue/data?session_hash=b&session_hash={alice.session_hash}",
                       "/gradio_api/call/samples/0123456789abcdef", "/gradio_api/token"]
            figures["bob's attacks refused, median ms"] = timed(
                lambda: [b.get(attack) for attack in attacks], 50) / len(attacks)
        bomb = tmp / "bomb.tif"
        bomb.write_bytes(tiff_bomb(12000, 12000))
        figures["peak MiB before the bomb"] = peak_mb(server.pid)
        bob = Client(url, auth=("bob", "bob-password"), verbose=False)
        t = time.perf_counter()
        try:
            bob.predict(None, handle_file(str(bomb)), "SinGAN", "generation", 32, "15", 2,
                        0.75, 6, 0, "cpu", api_name="/train")
            figures["bomb"] = "accepted"
        except Exception as err:
            figures["bomb"] = str(err).strip().splitlines()[0][:160]
        figures["bomb answered after s"] = time.perf_counter() - t
        figures["peak MiB after the bomb"] = peak_mb(server.pid)
    finally:
        stop(server)
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--niter", type=int, default=50, help="iterations per scale of the model")
    parser.add_argument("--repeats", type=int, default=5, help="16-sample requests timed")
    args = parser.parse_args()
    from gradio_client import Client

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "TrainedModels"
        cfg = SinGANConfig(max_size=64, niter=args.niter)
        model = train_model(ROOT / "Input" / "Images" / "rocket.png", cfg, device="cpu",
                            root=root, show_progress=False, log=lambda line: None)
        name = f"rocket/{model.folder.name}"
        env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
        started = time.perf_counter()
        server = subprocess.Popen([sys.executable, str(ROOT / "studio.py"), "--port", "7899",
                                   "--root", str(root), "--out", str(Path(tmp) / "Output"),
                                   "--device", "cpu"], cwd=ROOT, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            url = None
            for line in server.stdout:
                if line.startswith("singan studio: "):
                    url = line.split()[2]
                    break
            if url is None:
                sys.exit("the studio did not start")
            urllib.request.urlopen(url, timeout=60).read()    # the page itself
            ready = time.perf_counter() - started
            client = Client(url, verbose=False)
            times = []
            for _ in range(args.repeats + 1):                  # the first also loads the model
                t = time.perf_counter()
                client.predict(name, 16, 0, 1.0, 1.0, 0, False, api_name="/samples")
                times.append(time.perf_counter() - t)
            time.sleep(2)
            memory = rss_mb(server.pid)
        finally:
            stop(server)
        with tempfile.TemporaryDirectory() as more:
            figures = hostile(root, Path(more), name, env, args.repeats)
    h, w = model.trained_real.shape[2:]
    print(f"page ready after start:            {ready:.1f} s")
    print(f"16 samples of {w} x {h} px, first:    {times[0]:.2f} s (opens the model)")
    print(f"16 samples, median of {args.repeats}:        {statistics.median(times[1:]):.2f} s")
    print(f"idle server memory (RSS):          {memory:.0f} MiB")
    print("with accounts (the sign-in gate), alice and bob signed in:")
    for label, value in figures.items():
        print(f"  {label}: {value:.2f}" if isinstance(value, float) else f"  {label}: {value}")


if __name__ == "__main__":
    main()
