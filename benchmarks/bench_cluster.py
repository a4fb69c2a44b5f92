"""Images per hour on a real two-node Ray cluster on this machine, against its head alone, and
what bringing a model back to the driver costs (singan.cluster.many without shared storage).

    sudo python benchmarks/bench_cluster.py                 # 4 images of Input/Images, 48 px
    python benchmarks/bench_cluster.py --images 6 --niter 100 --json cluster.json

The cluster is tests/loopback_cluster.py's: its own network namespace (loopback only) and
PID namespace, a 1-CPU head beside the driver and, for the second layout, a 1-CPU second node
whose mount namespace hides the project and the driver's folders. Each layout trains the
same --images models from scratch (--force) through main_train.py's path (many.train_folder
with --ray_address), after a warm-up run that starts a worker on every node. Per model: the MB the
driver received and wrote (every save: running stages, finished stages, samples) and the
seconds it spent checking and writing them; then the time a batch of the largest model's
size (and of 50 MB) takes from a task on the second node to the driver's hands. Needs root.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

from common import ROOT, describe_machine, write_json  # noqa: E402
from singan.image_io import IMAGES_DIR  # noqa: E402


def driver(args) -> None:
    """Inside the cluster's namespaces: one layout's training, then the transfer probe;
    prints one JSON line."""
    import ray
    from singan.cluster import many
    from singan.cluster.settings import Cluster
    from singan.cluster.ray_runner import Board, Channel, Link, ray_runtime
    from singan.methods.singan.hparams import SinGANConfig
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    received = {}                                      # image -> [bytes, seconds]
    receive = many._Folders.receive

    def counted(self, image, area, batch, note):
        started = time.perf_counter()
        receive(self, image, area, batch, note)
        entry = received.setdefault(Path(image).name, [0, 0.0])
        entry[0] += sum(len(data) for _, data in batch if data)
        entry[1] += time.perf_counter() - started
    many._Folders.receive = counted

    cfg = SinGANConfig(max_size=args.max_size, min_size=args.min_size, niter=args.niter)
    images = many.list_images(args.images_dir, log=lambda line: None)
    cluster = Cluster(address=args.address, cpus_per_model=1)
    with ray_runtime(cluster):
        nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
        # the warm-up: one image per node, so that every node's worker starts (and unpacks the
        # job's code) before the timing
        many.train_folder(images[:len(nodes)], SinGANConfig(max_size=args.min_size, min_size=args.min_size,
                                                   niter=2),
                          cluster=cluster, device="cpu", force=True, root=args.out + "/warm",
                          out_root=args.out + "/warm_out", show_progress=False)
        received.clear()
        started = time.perf_counter()
        run = many.train_folder(images, cfg, cluster=cluster, device="cpu", force=True,
                                num_samples=args.num_samples, root=args.out + "/TrainedModels",
                                out_root=args.out + "/Output", show_progress=False,
                                checkpoint_minutes=args.checkpoint_minutes)
        seconds = time.perf_counter() - started
        bad = [row["status"] for row in run.rows if row["status"] != "trained"]
        if bad:
            raise SystemExit(f"bench_cluster.py: a training failed: {bad[0]}")
        probe = {}
        here = ray.get_runtime_context().get_node_id()
        other = [node for node in nodes if node != here]
        if other:
            board = ray.remote(Board).options(num_cpus=0, scheduling_strategy=(
                NodeAffinitySchedulingStrategy(here, soft=False))).remote()

            def send(size: int) -> float:
                link = Link(Channel(board, "probe", (("model", "probe-model"),)))
                data = os.urandom(size)
                started = time.perf_counter()
                link.send("model", [("model.pth", data)])
                link.flush()
                return time.perf_counter() - started
            remote = ray.remote(send).options(num_cpus=0, scheduling_strategy=(
                NodeAffinitySchedulingStrategy(other[0], soft=False)))
            largest = max(entry[0] for entry in received.values())
            for size in (largest, 50 << 20):
                ray.get(remote.remote(size))                       # warm
                started = time.perf_counter()
                task_seconds = ray.get(remote.remote(size))
                ray.get(board.take.remote())                       # into the driver's hands
                probe[f"{size / 2**20:.1f} MB"] = {
                    "task send+flush s": round(task_seconds, 3),
                    "round trip s": round(time.perf_counter() - started, 3)}
    per_model = {name: {"MB": round(b / 2**20, 2), "driver write s": round(s, 3)}
                 for name, (b, s) in received.items()}
    print(json.dumps({"seconds": seconds, "images": len(images), "nodes": len(nodes),
                      "node column": sorted({row["node"][:8] for row in run.rows}),
                      "task seconds": {row["image"]: [row["seconds"], row["node"][:8]]
                                       for row in run.rows},
                      "per model": per_model, "transfer": probe}))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input_dir", default=str(ROOT / IMAGES_DIR))
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--max_size", type=int, default=48)
    parser.add_argument("--min_size", type=int, default=25)
    parser.add_argument("--niter", type=int, default=60)
    parser.add_argument("--num_samples", type=int, default=5)
    parser.add_argument("--checkpoint_minutes", type=float, default=0.05,
                        help="running-stage saves (each one travels to the driver)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--driver", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--images_dir", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.driver:
        return driver(args)

    from loopback_cluster import PORT, LoopbackCluster, why_no_namespaces
    why = why_no_namespaces()
    if why:
        raise SystemExit(f"bench_cluster.py: {why}")
    print(describe_machine())
    work = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    images_dir = work / "driver" / "images"
    images_dir.mkdir(parents=True)
    sources = sorted(p for p in Path(args.input_dir).iterdir() if p.is_file())[:args.images]
    for path in sources:
        shutil.copy(path, images_dir / path.name)
    print(f"{len(sources)} images of {args.input_dir} at --max_size {args.max_size}, --niter "
          f"{args.niter}, {args.num_samples} samples each, a running stage saved every "
          f"{args.checkpoint_minutes} min; 1 CPU per node and per model")
    cluster = LoopbackCluster(work)
    results = {}
    try:
        cluster.start_head()
        for layout, second in (("head only (1 node, 1 CPU)", False),
                               ("two nodes (1 CPU each)", True)):
            if second:
                cluster.start_second(hidden=[ROOT, work / "driver"])
            out = work / "driver" / ("two" if second else "one")
            proc = cluster.run(sys.executable, str(HERE / "bench_cluster.py"), "--driver",
                               "--address", f"127.0.0.1:{PORT}", "--images_dir",
                               str(images_dir), "--out", str(out), "--max_size",
                               str(args.max_size), "--min_size", str(args.min_size),
                               "--niter", str(args.niter), "--num_samples",
                               str(args.num_samples), "--checkpoint_minutes",
                               str(args.checkpoint_minutes), timeout=3600)
            if proc.returncode:
                raise SystemExit(f"bench_cluster.py: the {layout} run failed:\n"
                                 + proc.stderr[-3000:])
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            result["images per hour"] = round(3600 * result["images"] / result["seconds"], 1)
            results[layout] = result
            print(f"\n{layout}: {result['seconds']:.1f} s for {result['images']} images = "
                  f"{result['images per hour']} images/hour; node column: "
                  f"{', '.join(result['node column'])}")
            for name, entry in sorted(result["per model"].items()):
                took, node = result["task seconds"][name]
                print(f"  {name}: trained in {took} s on node {node}; {entry['MB']} MB "
                      f"received, {entry['driver write s']} s checked and written by the "
                      "driver")
            for size, entry in result["transfer"].items():
                print(f"  a {size} batch from a task on the second node: "
                      f"{entry['task send+flush s']} s in the task, {entry['round trip s']} s "
                      "until the driver holds it")
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    one, two = results.get("head only (1 node, 1 CPU)"), results.get("two nodes (1 CPU each)")
    if one and two:
        print(f"\ntwo nodes / one: {two['images per hour'] / one['images per hour']:.2f}x "
              "images per hour")
    write_json(args.json, {"machine": describe_machine(), "results": results})


if __name__ == "__main__":
    main()
