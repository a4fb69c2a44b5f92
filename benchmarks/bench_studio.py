"""The web studio's figures: how long until the page is ready after `python studio.py`, how
long a 16-sample request on a 64 px model takes through Gradio's client, and the idle server's
memory (resident set).

    python benchmarks/bench_studio.py [--niter 50] [--repeats 5]

Trains the 64 px model once into a temporary folder (not timed), then starts the studio as a
user does and measures.
"""
import argparse
import os
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
            server.terminate()
            server.wait(10)
    h, w = model.trained_real.shape[2:]
    print(f"page ready after start:            {ready:.1f} s")
    print(f"16 samples of {w} x {h} px, first:    {times[0]:.2f} s (opens the model)")
    print(f"16 samples, median of {args.repeats}:        {statistics.median(times[1:]):.2f} s")
    print(f"idle server memory (RSS):          {memory:.0f} MiB")


if __name__ == "__main__":
    main()
