"""A real Ray cluster of two nodes on this machine, sharing no storage with the driver.

Everything runs in a network namespace of its own that holds only the loopback interface
(so Ray's nodes are at 127.0.0.1 and nothing can listen beyond it) and in a PID namespace
whose first process the test starts: killing it (by its pid, at the end, even when a test
fails) ends every process of the cluster (tests/loopback_cluster.py). The head node (1 CPU)
runs beside the driver; the second node (1 CPU) runs in a mount namespace of its own where an empty tmpfs lies over the
project folder, over the driver's working folder (its TrainedModels/ and Output/) and over
the head's Ray folder, so that a task there that touched a driver path, or imported code
that did not travel with the job, would fail. Token authentication is on.

Tested: four images train on both nodes (the `node` column) into the driver's folders,
equal to local trainings; a second run whose second node's raylet is killed (kill -9) in
the middle of a stage ends with the same models, the lost tasks continuing on the head from
the driver's copy of their running stage; random_samples.py and evaluate_folder.py on those
models (SIFID with weights only the driver has) write into the driver's Output/; a driver
without the token is refused in one line.
"""
import csv
import importlib.util
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torchvision

from conftest import ROOT, end_process_tree, optional, smooth_image, write_image
from loopback_cluster import HOSTILE_KINDS, PORT, LoopbackCluster, why_no_namespaces

if importlib.util.find_spec("ray") is None:
    optional("ray")   # skipped here, an error in CI

from singan import train_model                                         # noqa: E402
from singan.checkpoint import RUNNING_NAME, read_checkpoint            # noqa: E402
from singan.methods.singan.hparams import SinGANConfig                                # noqa: E402

pytestmark = pytest.mark.slow

STEMS = ("a", "b", "c", "d")
CONFIG = SinGANConfig(max_size=28, min_size=24, niter=40)
ARGS = ("--max_size", "28", "--min_size", "24", "--niter", "40", "--manualSeed", "1",
        "--num_samples", "2", "--cpus_per_model", "1", "--device", "cpu", "--quiet")
@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    why = why_no_namespaces()
    if why:
        pytest.skip(why)
    work = tmp_path_factory.mktemp("cluster")
    driver_dir = work / "driver"
    (driver_dir / "imgs").mkdir(parents=True)
    for i, stem in enumerate(STEMS):
        write_image(driver_dir / "imgs" / f"{stem}.png", smooth_image(28, 28, seed=i))
    cluster = LoopbackCluster(work)
    try:
        cluster.start(hidden=[ROOT, driver_dir])
        yield cluster, driver_dir
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def local_models(cluster, tmp_path_factory):
    """The four models trained here, one by one, without Ray (one thread, as a task)."""
    _, driver_dir = cluster
    started = time.perf_counter()
    root = tmp_path_factory.mktemp("local")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {stem: read_checkpoint(train_model(
                    (driver_dir / "imgs" / f"{stem}.png").resolve(), CONFIG, device="cpu",
                    seed=1, root=root, show_progress=False, log=lambda line: None).folder
                    / "model.pth") for stem in STEMS}
    finally:
        torch.set_num_threads(threads)
        print(f"local trainings: {time.perf_counter() - started:.1f} s")


def train_on_cluster(cluster, out: Path, *extra, env=None, popen=False):
    command = cluster.inside(sys.executable, str(ROOT / "main_train.py"), "--input_dir",
                             "../imgs", *ARGS, "--ray_address", f"127.0.0.1:{PORT}", *extra,
                             cwd=out)
    out.mkdir(exist_ok=True)
    if popen:
        return subprocess.Popen(command, env=env or cluster.env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(command, env=env or cluster.env, capture_output=True,
                          text=True, timeout=600)


def rows_of(out: Path, name: str = "imgs_summary.csv") -> dict:
    with open(out / "Output" / name, newline="") as f:
        return {row["image"]: row for row in csv.DictReader(f)}


def assert_equal_models(out: Path, local: dict) -> None:
    """Every model complete in the driver's folder, its weights, noise maps and pyramid equal
    to the local training's, bit for bit; its samples in the driver's Output/."""
    for stem in STEMS:
        folder = out / "TrainedModels" / stem / CONFIG.folder_name()
        ours, theirs = read_checkpoint(folder / "model.pth"), local[stem]
        assert not (folder / RUNNING_NAME).exists()
        assert len(ours["scales"]) == len(theirs["scales"]) == 3
        assert ours["image"]["path"] == theirs["image"]["path"]   # the driver's image
        for k, (mine, other) in enumerate(zip(ours["scales"], theirs["scales"])):
            assert mine.keys() == other.keys()
            for key in mine:
                if isinstance(mine[key], torch.Tensor):
                    assert torch.equal(mine[key], other[key]), (stem, k, key)
                elif isinstance(mine[key], dict):
                    for name, value in mine[key].items():
                        if isinstance(value, torch.Tensor):
                            assert torch.equal(value, other[key][name]), (stem, k, key, name)
        for k in range(3):
            assert (folder / str(k) / "netG.pth").is_file()
        samples = out / "Output" / "RandomSamples" / stem / "gen_start_scale=0"
        assert sorted(p.name for p in samples.iterdir()) == ["0.png", "1.png"]


@pytest.fixture(scope="module")
def first_run(cluster):
    """The four images trained on the cluster into the driver's run1/: (folder, process)."""
    lc, driver_dir = cluster
    out = driver_dir / "run1"
    return out, train_on_cluster(lc, out)


def test_four_images_train_on_both_nodes_into_the_drivers_folders(first_run, local_models):
    out, proc = first_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = rows_of(out)
    assert sorted(rows) == [f"{stem}.png" for stem in STEMS]
    assert {row["status"] for row in rows.values()} == {"trained"}, rows
    nodes = {row["node"] for row in rows.values()}
    assert len(nodes) == 2 and all(re.fullmatch(r"[0-9a-f]{56}", node) for node in nodes)
    assert_equal_models(out, local_models)
    # nothing the tasks made is left in the node's temporary folders, and nothing else was
    # written beside the driver's folders
    assert sorted(p.name for p in out.iterdir()) == ["Output", "TrainedModels"]


def test_samples_and_evaluation_of_the_models_arrive_in_the_drivers_output(cluster, first_run):
    """random_samples.py and evaluate_folder.py --input_dir with --ray_address: every image's
    samples and rows in the driver's Output/, from both nodes; SIFID measured everywhere with
    a weights file only the driver has (its folder is hidden from the second node)."""
    lc, driver_dir = cluster
    out, trained = first_run
    assert trained.returncode == 0, trained.stdout + trained.stderr
    torch.manual_seed(0)
    weights = driver_dir / "inception.pth"        # random weights: SIFID's values, not quality
    torch.save(torchvision.models.inception_v3(weights=None, aux_logits=True,
                                               init_weights=True).state_dict(), weights)
    common = ("--input_dir", "../imgs", *ARGS, "--ray_address", f"127.0.0.1:{PORT}")
    proc = subprocess.run(lc.inside(sys.executable, str(ROOT / "random_samples.py"), *common,
                                    "--gen_start_scale", "1", cwd=out),
                          env=lc.env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = rows_of(out, "imgs_samples.csv")
    assert {row["status"] for row in rows.values()} == {"done"}, rows
    assert len({row["node"] for row in rows.values()}) == 2, rows
    for stem in STEMS:
        folder = out / "Output" / "RandomSamples" / stem / "gen_start_scale=1"
        assert sorted(p.name for p in folder.iterdir()) == ["0.png", "1.png"]
    proc = subprocess.run(lc.inside(sys.executable, str(ROOT / "evaluate_folder.py"), *common,
                                    "--weights", str(weights), cwd=out),
                          env=lc.env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = rows_of(out, "imgs_evaluation.csv")
    assert {row["status"] for row in rows.values()} == {"done"}, rows
    assert len({row["node"] for row in rows.values()}) == 2, rows
    for row in rows.values():
        for label in ("N", "N-1"):
            assert float(row[f"SIFID {label}"]) > 0 and float(row[f"diversity {label}"]) > 0
    assert sorted(p.name for p in out.iterdir()) == ["Output", "TrainedModels"]


def test_a_lost_node_costs_at_most_the_checkpoint_interval(cluster, local_models):
    lc, driver_dir = cluster
    out = driver_dir / "run2"
    proc = train_on_cluster(lc, out, "--checkpoint_minutes", "0.005", popen=True)
    try:
        # both nodes are mid-stage once two images have a running stage saved at the driver
        deadline, killed = time.monotonic() + 300, None
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list((out / "TrainedModels").glob(f"*/*/{RUNNING_NAME}"))) >= 2:
                killed = lc.kill_node2_raylet()
                break
            time.sleep(0.05)
        assert killed, "the tasks never were mid-stage on both nodes at once"
        output, _ = proc.communicate(timeout=600)
    finally:
        end_process_tree(proc)     # the driver too, not only nsenter: a failed try stops here
    assert proc.returncode == 0, output
    again = re.findall(r"^(\w): its node was lost; running it again \(try 2 of 4\) from the "
                       r"driver's copy \(stage (\d) at iteration (\d+) of 40\)", output, re.M)
    assert again, output
    stem, stage, iteration = again[0]
    assert int(iteration) > 0
    assert f"{stem}: resuming scale {stage} at iteration {iteration} of 40" in output, output
    rows = rows_of(out)
    assert {row["status"] for row in rows.values()} == {"trained"}, rows
    head = rows[f"{stem}.png"]["node"]                 # the retried image ended on the head
    assert sum(row["node"] == head for row in rows.values()) >= 3
    assert_equal_models(out, local_models)


def test_a_driver_without_the_clusters_token_is_refused_in_one_line(cluster):
    lc, driver_dir = cluster
    env = dict(lc.env)
    env.pop("RAY_AUTH_TOKEN")
    proc = train_on_cluster(lc, driver_dir / "run3", env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: the Ray cluster at 127.0.0.1:6379 refused this run"), \
        proc.stderr
    assert "RAY_AUTH_TOKEN is not set" in lines[-1] and "Traceback" not in proc.stderr
    assert not (driver_dir / "run3" / "TrainedModels").exists()


def test_hostile_batches_are_refused_in_one_line_and_every_file_is_kept(cluster):
    """One run whose tasks misbehave, each image its own way (loopback_cluster.HOSTILE_KINDS),
    every image with a finished model of the driver's: the driver files each batch under its
    own record of the ticket it came with, refuses each bad one in one line naming its own
    folder, and no file it had changes (nor appears)."""
    lc, driver_dir = cluster
    images, out = driver_dir / "hostile_imgs", driver_dir / "hostile"
    for i, kind in enumerate(HOSTILE_KINDS):
        write_image(images / f"{kind}.png", smooth_image(28, 28, seed=10 + i))
    out.mkdir()
    proc = lc.run(sys.executable, str(ROOT / "tests" / "loopback_cluster.py"), "hostile",
                  str(out), str(images), f"127.0.0.1:{PORT}", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["after"] == result["before"]           # every file kept, none added
    assert sum(p.endswith("model.pth") for p in result["before"]) == len(HOSTILE_KINDS)
    rows = {row["image"]: row["status"] for row in result["rows"]}
    for kind, words in (("outside", "is not a plain relative path inside it"),
                        ("drop", "may not remove the finished model"),
                        ("replace", "may not replace the finished model"),
                        ("bytes", "more than the 66 kB a run may add per image"),
                        ("area", "is outside RandomSamples/area")):
        status = rows[f"{kind}.png"]
        assert status.startswith("failed: refused") and words in status, (kind, status)
        line = f"{kind}: {status[len('failed: '):]}"
        assert line in proc.stdout.splitlines(), (line, proc.stdout)     # said once, one line
    assert "refused files sent with a ticket this run did not give" in proc.stdout
    assert rows["foreign.png"] == "sent"                 # its files went nowhere
    assert "singan-task" not in proc.stdout + proc.stderr


def test_every_line_names_the_drivers_files_not_a_nodes_copy(cluster, first_run):
    """A rerun of trained images logs "already trained" with the driver's model folder, and
    a damaged image's row names the driver's file: never /tmp/singan-task-* of a node."""
    lc, driver_dir = cluster
    out, trained = first_run
    assert trained.returncode == 0, trained.stdout + trained.stderr
    images = driver_dir / "imgs_again"
    images.mkdir()
    (images / "a.png").write_bytes((driver_dir / "imgs" / "a.png").read_bytes())
    (images / "empty.png").write_bytes(b"")
    (images / "cut.png").write_bytes((driver_dir / "imgs" / "b.png").read_bytes()[:200])
    proc = subprocess.run(lc.inside(sys.executable, str(ROOT / "main_train.py"), "--input_dir",
                                    "../imgs_again", *ARGS, "--ray_address",
                                    f"127.0.0.1:{PORT}", cwd=out),
                          env=lc.env, capture_output=True, text=True, timeout=600)
    said = proc.stdout + proc.stderr
    assert proc.returncode == 2, said
    assert "singan-task" not in said, said
    folder = f"TrainedModels/a/{CONFIG.folder_name()} is already trained"
    assert f"a: {folder}" in said, said
    rows = rows_of(out, "imgs_again_summary.csv")
    assert rows["a.png"]["status"] == "already trained"
    for name in ("empty.png", "cut.png"):
        assert rows[name]["status"].startswith(f"failed: cannot read ../imgs_again/{name}"), rows
