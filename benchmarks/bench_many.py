"""Models per hour for a folder of small images on Ray: one training at a time with every CPU,
against trainings packed side by side (singan.cluster.many, as main_train.py --input_dir runs them).

    python benchmarks/bench_many.py                      # Input/Images at --max_size 48
    python benchmarks/bench_many.py --images 4 --niter 60 --json many.json
    python benchmarks/bench_many.py --gpus_per_model 1,0.25     # on a GPU machine

Each layout trains the same --images models from scratch (force) into a temporary folder on
one local Ray runtime started once; a short warm-up run first starts the worker processes.
CPU layouts: "one at a time" gives each task all CPUs (threads = CPUs), "packed" one CPU
each. With --gpus_per_model each value is a GPU layout (1: one training per GPU; 0.25: four).

Each task is watched from outside (TaskWatch: every second, the CPU time of every Ray worker
process running a training, from /proc): a task keeps to its reservation when it uses at
most its CPUs, and no more trainings run at once than the runtime's CPUs allow.
"""
import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import ROOT, describe_machine, write_json  # noqa: E402
from singan.cluster import many  # noqa: E402
from singan.cluster.settings import Cluster  # noqa: E402
from singan.cluster.ray_runner import ray_runtime  # noqa: E402
from singan.methods.singan.hparams import SinGANConfig  # noqa: E402
from singan.image_io import IMAGES_DIR  # noqa: E402


def layouts(cpus: int, gpus_per_model):
    """(name, cpus_per_model, gpus_per_model) of each layout to time."""
    if gpus_per_model:
        return [(f"{g:g} GPU per model", 1, g) for g in gpus_per_model]
    return [(f"one at a time, {cpus} threads", cpus, 0.0), ("packed, 1 thread each", 1, 0.0)]


class TaskWatch:
    """Every second, each Ray worker process running a training task (process title
    ray::_train_task) and the CPU seconds it used in that second (/proc/<pid>/stat)."""
    TITLE = b"ray::_train_task"

    def __init__(self):
        self.seconds = []           # per second: {pid: CPU seconds in it}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @classmethod
    def _tasks(cls):
        ticks = {}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if not f.read().startswith(cls.TITLE):
                        continue
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks[int(pid)] = int(fields[11]) + int(fields[12])     # utime + stime
        return ticks

    def _run(self):
        hz, last = os.sysconf("SC_CLK_TCK"), {}
        while not self._stop.wait(1.0):
            now = self._tasks()
            self.seconds.append({pid: (t - last[pid]) / hz for pid, t in now.items()
                                 if pid in last})
            last = now

    def summary(self) -> dict:
        """The most trainings running in one second, and each task's CPU seconds per second
        while it ran (mean over its seconds; the highest task's)."""
        per_task = {}
        for second in self.seconds:
            for pid, used in second.items():
                per_task.setdefault(pid, []).append(used)
        busy = [sum(v) / len(v) for v in per_task.values() if v]
        return {"most_at_once": max((len(s) for s in self.seconds), default=0),
                "cpu_per_second_max_task": round(max(busy, default=0.0), 2),
                "cpu_per_second_mean": round(sum(busy) / len(busy), 2) if busy else 0.0}


def time_layout(images, cfg, cluster, root, device):
    """(seconds, TaskWatch summary) of training `images` in this layout."""
    started = time.perf_counter()
    with TaskWatch() as watch:
        run = many.train_folder(images, cfg, cluster=cluster, device=device, force=True,
                                root=root, show_progress=False)
    seconds = time.perf_counter() - started
    failed = [row for row in run.rows if not row["status"].startswith("trained")]
    if failed:
        raise SystemExit(f"bench_many.py: a training failed: {failed[0]['status']}")
    return seconds, watch.summary()


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input_dir", default=str(ROOT / IMAGES_DIR))
    parser.add_argument("--images", type=int, default=4, help="how many of its images")
    parser.add_argument("--max_size", type=int, default=48)
    parser.add_argument("--min_size", type=int, default=25)
    parser.add_argument("--niter", type=int, default=60, help="iterations per scale")
    parser.add_argument("--num_cpus", type=int, default=os.cpu_count(),
                        help="CPUs of the local Ray runtime")
    parser.add_argument("--gpus_per_model", default="",
                        help="comma-separated GPU fractions to time instead of the CPU layouts")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()

    images = many.list_images(args.input_dir)[:args.images]
    cfg = SinGANConfig(max_size=args.max_size, min_size=args.min_size, niter=args.niter)
    gpus = [float(g) for g in args.gpus_per_model.split(",") if g]
    device = "cuda" if gpus else "cpu"
    print(f"{len(images)} images at max_size {args.max_size}, {args.niter} iterations per "
          f"scale; {args.num_cpus} CPUs; {describe_machine()}")
    results = []
    with tempfile.TemporaryDirectory() as tmp, \
            ray_runtime(Cluster(num_cpus=args.num_cpus)):
        warm = SinGANConfig(max_size=args.max_size, min_size=args.min_size, niter=2)
        time_layout(images[:2], warm, Cluster(cpus_per_model=1,
                                                   gpus_per_model=gpus[-1] if gpus else 0.0),
                    Path(tmp) / "warm", device)
        for name, cpus_per_model, gpus_per_model in layouts(args.num_cpus, gpus):
            cluster = Cluster(cpus_per_model=cpus_per_model, gpus_per_model=gpus_per_model)
            seconds, tasks = time_layout(images, cfg, cluster,
                                         Path(tmp) / name.replace(" ", "_"), device)
            per_hour = len(images) / seconds * 3600
            allowed = max(1, int(args.num_cpus // cpus_per_model))
            print(f"{name:>28}: {seconds:7.1f} s, {per_hour:6.1f} models per hour; at most "
                  f"{tasks['most_at_once']} trainings at once (the reservation allows "
                  f"{allowed}), each using {tasks['cpu_per_second_mean']:.2f} CPU s per s "
                  f"(the busiest {tasks['cpu_per_second_max_task']:.2f}; reserved "
                  f"{cpus_per_model})", flush=True)
            results.append({"layout": name, "cpus_per_model": cpus_per_model,
                            "gpus_per_model": gpus_per_model, "seconds": round(seconds, 2),
                            "models_per_hour": round(per_hour, 1), **tasks,
                            "trainings_allowed_at_once": allowed})
    write_json(args.json, {"machine": describe_machine(), "images": len(images),
                           "max_size": args.max_size, "min_size": args.min_size,
                           "niter": args.niter, "num_cpus": args.num_cpus, "results": results})


if __name__ == "__main__":
    main()
