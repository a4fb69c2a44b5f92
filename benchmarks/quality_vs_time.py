"""Sample quality against training time: SinGAN and ConSinGAN along a ladder of settings
(issue #20).

    python benchmarks/quality_vs_time.py --dry-run          # the plan and its rough time
    python benchmarks/quality_vs_time.py                    # the default ladder (many hours)
    python benchmarks/quality_vs_time.py --workers 8        # on Ray's local runtime, 8 at once
    python benchmarks/quality_vs_time.py --ladder smoke --root /tmp/q --out /tmp/q   # seconds
    python benchmarks/quality_vs_time.py --report           # the tables of what is finished

Every point of the ladder (method, --max_size, --niter, ConSinGAN's train_stages) is trained
on every image with every seed, each into its own model folder,
<root>/<image stem>/<method>_<max_size>_<niter>[_<stages>][_min<min_size>]_seed<k>, and
measured: the training seconds on this machine, SIFID (the offline `fid-inception` backbone,
64 dims; mean and spread over --num_samples samples) and the paper's diversity.

SIFID at different sizes cannot be compared, so every point is scored at ONE size per image:
that of the ladder's largest --max_size. The real image is the training image resized as the
largest point trains on it (its longer side that max_size); samples of smaller models are
enlarged to it bicubically (singan.imresize.imresize_to_shape). Diversity is measured on the
same enlarged samples.

Resumable: a point's result is a JSON file beside its model folder (<folder>.json, written
atomically after every finished stage and once scored). A rerun skips a point whose model is
complete and whose row is in its JSON file (for the same score size, sample count and SIFID
availability; otherwise it is scored again, not retrained); a stopped training resumes after
its last finished stage. The outputs, in --out:

    quality_vs_time.csv          one row per point, image and seed
    quality_vs_time_summary.csv  mean and std over the seeds of each point and image
    quality_vs_time.md           the same as the README's table (and what is still to run)
    quality_vs_time.png          SIFID (and diversity) against training minutes, one line per
                                 method and image, error bars over the seeds; log x

Figures are printed and written, never judged here: the training time depends on the machine
(its CPU features are printed), the estimate before a run comes from the per-iteration times
the ladder's trainings took on the project's 2-core AVX2 machine.
"""
import argparse
import csv
import importlib
import importlib.util
import io
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import List, Optional

import torch

from common import ROOT, cpu_label, describe_machine
from singan.api import load_model, train_model
from singan.methods.consingan.hparams import ConSinGANConfig
from singan.methods.consingan.pyramid import plan_stages
from singan.errors import SinGANError
from singan.methods.singan.hparams import SinGANConfig
from singan.image_io import IMAGES_DIR, atomic_write_bytes, read_image
from singan.imresize import imresize, imresize_to_shape
from singan.metrics import SIFIDOptions, sample_quality, sifid_unavailable
from singan.methods.singan.models import channels_at_scale
from singan.methods.singan.pyramid import plan_pyramid

SIFID_OPTIONS = SIFIDOptions(backbone="fid-inception")   # offline: nothing is downloaded


@dataclass(frozen=True)
class Point:
    """One setting of the ladder."""
    method: str                    # "singan" | "consingan"
    max_size: int
    niter: int
    stages: Optional[int] = None   # ConSinGAN's train_stages
    min_size: int = 25
    amp: str = "none"              # --amp: none (fp32) or bf16
    images: Optional[tuple] = None  # the ladder's images it is trained on (None: all of them)

    @property
    def name(self) -> str:
        stages = f"_{self.stages}" if self.stages else ""
        low = f"_min{self.min_size}" if self.min_size != 25 else ""
        amp = f"_{self.amp}" if self.amp != "none" else ""
        return f"{self.method}_{self.max_size}_{self.niter}{stages}{low}{amp}"

    def config(self):
        if self.method == "singan":
            return SinGANConfig(max_size=self.max_size, min_size=self.min_size, niter=self.niter,
                                amp=self.amp)
        return ConSinGANConfig(max_size=self.max_size, min_size=self.min_size, niter=self.niter,
                               train_stages=self.stages, amp=self.amp)

    def trains_on(self, image: str) -> bool:
        return self.images is None or Path(image).name in self.images

    def shapes(self, height: int, width: int):
        """The (h, w) of every level this point trains on a height x width image."""
        if self.method == "singan":
            return plan_pyramid(height, width, self.min_size, self.max_size).shapes
        return plan_stages(height, width, self.stages, self.min_size, self.max_size).shapes


# The default ladder: the quick settings of both methods, and the README's recipe: the
# largest SinGAN whose samples are at least 128 px on their shorter side (192 px on the
# longer side of these 3:2 photos) that trains in under an hour on a 2-core CPU (250
# iterations per level: 47 min). Left out, for the time they take there (--dry-run's
# estimates): SinGAN 96/1000 (48 min) and 128/500 (43 min), whose samples are 65 and 86 px
# tall; 128/1000 (1.5 h) and 192/500 (1.6 h); ConSinGAN 128/1000/6 (56 min, 86 px tall) and
# 250/1000/6 (2.6 h); the paper's settings (250 px, 2000 iterations: 20 h for SinGAN, 5.3 h
# for ConSinGAN).
#
# Grown on a CPU with native bfloat16 (issue #39), on rocket only, two seeds each: SinGAN's
# two points under --amp bf16, ConSinGAN at two more settings, and SinGAN at the paper's size
# (250 px, 10 scales) with as many iterations as train within an hour in bf16 there. Every
# point is still scored at the recipe's size (score_size 192: 129 x 192 for these photos),
# so the rows compare with the first ones: the 250 px samples are shrunk to it, as the
# smaller points' are enlarged.
ROCKET = ("rocket.png",)
LADDERS = {
    "default": dict(points=[Point("singan", 64, 500), Point("singan", 192, 250),
                            Point("consingan", 64, 1000, 5),
                            Point("singan", 64, 500, amp="bf16", images=ROCKET),
                            Point("singan", 192, 250, amp="bf16", images=ROCKET),
                            Point("consingan", 128, 1000, 6, amp="bf16", images=ROCKET),
                            Point("consingan", 192, 500, 6, amp="bf16", images=ROCKET),
                            Point("singan", 250, 150, amp="bf16", images=ROCKET)],
                    images=["rocket.png", "chelsea.png"], seeds=[0, 1], num_samples=50,
                    min_size=25, score_size=192),
    # bf16 against fp32 over seeds (issue #39): the same setting trained with three seeds in
    # each, scored at its own size
    "amp": dict(points=[Point("singan", 96, 500), Point("singan", 96, 500, amp="bf16")],
                images=["rocket.png"], seeds=[0, 1, 2], num_samples=50, min_size=25,
                prefix="amp_seeds"),
    "smoke": dict(points=[Point("singan", 32, 10), Point("consingan", 48, 10, 3)],
                  images=["rocket.png"], seeds=[0, 1], num_samples=4, min_size=16),
}

# Seconds per training iteration of one level, measured by the ladder's own trainings on the
# project's 2-core AVX2 machine (fp32, 2 threads; 15-50% above the "Speed" table's rates,
# which time the bare step): SinGAN about 0.1 + pixels * K[channels], ConSinGAN about
# 0.025 + 1.3e-4 * pixels (its 64 px point: 1.26 s per iteration of 5 stages). Rough, for
# the plan only.
SINGAN_BASE_S = 0.1
SINGAN_S_PER_PIXEL = {32: 5.8e-5, 64: 1.75e-4, 128: 5.9e-4}
CONSINGAN_BASE_S, CONSINGAN_S_PER_PIXEL = 0.025, 1.3e-4
SAMPLE_S_PER_PIXEL = 26.0 / 50 / (188 * 250)    # 50 SinGAN samples at 188 x 250: 26 s


# bf16 against fp32 per iteration on a CPU with native bf16 (AVX512_BF16: bench_train.py's
# 2.1x at 128 channels; less at the small levels); emulated elsewhere, many times slower.
BF16_FACTOR = 0.55


def estimate_seconds(point: Point, height: int, width: int) -> float:
    """Rough training seconds of `point` on a height x width image (the 2-core machine; bf16
    points as on a CPU with native bf16)."""
    total = 0.0
    for n, (h, w) in enumerate(point.shapes(height, width)):
        if point.method == "singan":
            per_iter = SINGAN_BASE_S + h * w * SINGAN_S_PER_PIXEL[channels_at_scale(n)[0]]
        else:
            per_iter = CONSINGAN_BASE_S + CONSINGAN_S_PER_PIXEL * h * w
        total += per_iter * point.niter
    return total * (BF16_FACTOR if point.amp == "bf16" else 1.0)


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# ---- one job: a point trained on one image with one seed, then scored ------------------------

@dataclass(frozen=True)
class Job:
    image: str          # the image file
    point: Point
    seed: int
    root: str

    @property
    def folder(self) -> Path:
        return Path(self.root) / Path(self.image).stem / f"{self.point.name}_seed{self.seed}"

    @property
    def result_file(self) -> Path:
        return self.folder.with_name(self.folder.name + ".json")

    @property
    def label(self) -> str:
        return f"{Path(self.image).stem} {self.point.name} seed {self.seed}"


@dataclass(frozen=True)
class Scoring:
    """How every point of an image is scored (the same for all of them)."""
    shape: tuple           # (h, w): the largest point's training size
    scale1: float          # the resize factor that takes the image to it
    num_samples: int
    sifid: bool            # whether SIFID can be measured (the weights are here)

    def key(self) -> dict:
        return {"score_size": f"{self.shape[0]}x{self.shape[1]}",
                "num_samples": self.num_samples, "sifid_measured": self.sifid}


def read_result(job: Job) -> dict:
    try:
        return json.loads(job.result_file.read_text())
    except (OSError, ValueError):
        return {}


def write_result(job: Job, result: dict) -> None:
    atomic_write_bytes(job.result_file, (json.dumps(result, indent=1) + "\n").encode())


def complete_model(job: Job):
    """The point's trained model when its folder holds a complete one, else None."""
    if not (job.folder / "model.pth").exists():
        return None
    try:
        model = load_model(job.folder, device="cpu")
    except SinGANError:
        return None
    return model if model.complete else None


def job_state(job: Job, scoring: Scoring) -> str:
    """"finished": the model is complete and its row, scored as now, is in the result file;
    "score": the model is complete and its training time recorded, the row missing or scored
    otherwise (another size, sample count, SIFID availability); "train": anything else."""
    result = read_result(job)
    row = result.get("row")
    model = complete_model(job)
    if model is None or len(result.get("stage_seconds", {})) < model.planned_stages:
        return "train"
    if not row or any(str(row.get(k)) != str(v) for k, v in scoring.key().items()):
        return "score"
    return "finished"


_EXTRACTOR = {}


def sifid_extractor():
    """The fid-inception feature network, loaded once per process."""
    if "net" not in _EXTRACTOR:
        from SIFID import load_extractor
        _EXTRACTOR["net"] = load_extractor(SIFID_OPTIONS.dims, SIFID_OPTIONS.backbone,
                                           SIFID_OPTIONS.weights, "cpu", download=False)
    return _EXTRACTOR["net"]


def score(model, job: Job, scoring: Scoring) -> dict:
    """SIFID and diversity of the model's samples, enlarged to the common size, against the
    image at that size."""
    real = imresize(read_image(job.image), scoring.scale1)
    generator = torch.Generator(device=model.device).manual_seed(10_000 + job.seed)
    with torch.no_grad():
        samples = model.sample(scoring.num_samples, generator=generator).cpu()
    trained = tuple(samples.shape[2:])
    if trained != tuple(scoring.shape):
        samples = imresize_to_shape(samples, scoring.shape)
    report = sample_quality(samples, real, SIFID_OPTIONS if scoring.sifid else None,
                            extractor=sifid_extractor() if scoring.sifid else None)
    values = report.sifid or []
    return {"train_size": f"{trained[0]}x{trained[1]}",
            "sifid": round(statistics.fmean(values), 6) if values else "",
            "sifid_std": round(statistics.pstdev(values), 6) if values else "",
            "diversity": round(report.diversity, 6), "notes": "; ".join(report.notes)}


def run_job(job: Job, scoring: Scoring, device: str = "cpu", log=print,
            show_progress: bool = False) -> dict:
    """Train (or resume) the job's model, time its stages, score it; write and return its
    row. A complete model with its stage times is only scored again."""
    result = read_result(job)
    stage_seconds = {int(k): v for k, v in result.get("stage_seconds", {}).items()}
    model = complete_model(job)
    force = False
    if model is not None and len(stage_seconds) < model.planned_stages:
        log(f"{job.label}: {job.result_file.name} has no record of its training time: "
            "training it again")
        model, force, stage_seconds = None, True, {}
    if model is None:
        state = {"last": 0.0}

        def progress(event):
            if event.kind == "stage":
                stage_seconds[event.stage] = round(event.elapsed - state["last"], 3)
                state["last"] = event.elapsed
                write_result(job, {"stage_seconds": stage_seconds})

        model = train_model(job.image, job.point.config(), job.folder, device=device,
                            seed=job.seed, progress=progress, force=force,
                            show_progress=show_progress,
                            log=lambda line: log(f"  {job.label}: {line}"))
    point = job.point
    notes = []
    if len(stage_seconds) < model.planned_stages:   # its result file was lost mid-training
        notes.append(f"training time of {model.planned_stages - len(stage_seconds)} "
                     f"{model.unit}(s) unknown (not counted)")
    row = {"image": Path(job.image).name, "method": point.method, "max_size": point.max_size,
           "min_size": point.min_size, "niter": point.niter, "stages": point.stages or "",
           "amp": point.amp, "seed": job.seed, "levels": model.planned_stages,
           "train_seconds": round(sum(stage_seconds.values()), 3)}
    row.update(score(model, job, scoring))
    row["notes"] = "; ".join(notes + ([row["notes"]] if row["notes"] else []))
    row.update(scoring.key(), device=str(model.device), folder=str(job.folder),
               threads=torch.get_num_threads(), cpu=cpu_label())
    write_result(job, {"stage_seconds": stage_seconds, "row": row})
    return row


def warm_up() -> None:
    """Import what the first training would import (torch's optimisers pull in torch._dynamo,
    seconds), so that no point's training time includes it."""
    importlib.import_module("torch._dynamo")


def _ray_job(job: Job, scoring: Scoring, device: str) -> dict:
    torch.set_num_threads(1)
    warm_up()
    return run_job(job, scoring, device, log=lambda line: None)


def run_on_ray(jobs: List[Job], scoring: dict, device: str, workers: int):
    """One Ray task per job (1 CPU, 1 torch thread each) on a local runtime of `workers` CPUs,
    bound to 127.0.0.1 (singan.cluster.ray_runner's: ray.init(num_cpus=workers,
    include_dashboard=False, _node_ip_address="127.0.0.1"), with its own token). Yields
    (job, row or error) as they finish."""
    import os
    from singan.cluster.settings import Cluster
    from singan.cluster.ray_runner import ray_runtime
    # the workers inherit this environment: they import singan and common.py as this does
    paths = [str(ROOT), str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH", "")]
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    with ray_runtime(Cluster(num_cpus=workers)) as ray:
        task = ray.remote(_ray_job).options(num_cpus=1, max_retries=0)
        refs = {task.remote(job, scoring[job.image], device): job for job in jobs}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                yield refs[done[0]], ray.get(done[0])
            except ray.exceptions.RayError as err:
                cause = getattr(err, "cause", None) or err
                yield refs[done[0]], cause


# ---- the tables and the plot ---------------------------------------------------------------

COLUMNS = ["image", "method", "max_size", "min_size", "niter", "stages", "amp", "seed",
           "levels", "train_seconds", "train_size", "score_size", "num_samples", "sifid",
           "sifid_std", "diversity", "sifid_measured", "device", "threads", "cpu", "notes",
           "folder"]
SUMMARY = ["image", "method", "max_size", "min_size", "niter", "stages", "amp", "seeds",
           "train_seconds_mean", "train_seconds_std", "sifid_mean", "sifid_std_over_seeds",
           "sifid_std_over_samples", "diversity_mean", "diversity_std_over_seeds", "score_size",
           "cpu"]
# Rows measured before the table said which CPU ran them (issue #20's ladder): the project's
# 2-core AVX2 machine, fp32.
EARLIER_CPU = "AVX2, 2 cores"


def point_of(row: dict) -> Point:
    """The ladder point a table row measured."""
    return Point(row["method"], int(row["max_size"]), int(row["niter"]),
                 int(row["stages"]) if row.get("stages") else None, int(row["min_size"]),
                 row.get("amp") or "none")


def earlier_rows(path: Path, scoring: dict) -> dict:
    """The rows of an earlier run's table (`path`, the CSV this run rewrites), by (image,
    point name, seed), where they were scored as this run scores (same size, sample count
    and SIFID availability): measured figures whose model folders may be gone (they are
    not in git), kept in the tables rather than trained again. Rows written before the
    table had its amp and cpu columns are fp32 rows of the 2-core AVX2 machine."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return {}
    kept = {}
    for row in rows:
        row = {**row, "amp": row.get("amp") or "none", "cpu": row.get("cpu") or EARLIER_CPU}
        image = next((k for k in scoring if Path(k).name == row["image"]), None)
        if image is None or any(str(row.get(k)) != str(v)
                                for k, v in scoring[image].key().items()):
            continue
        for key in ("max_size", "min_size", "niter", "seed", "levels", "threads"):
            row[key] = int(row[key]) if row.get(key) not in (None, "") else ""
        for key in ("train_seconds", "sifid", "sifid_std", "diversity"):
            row[key] = float(row[key]) if row.get(key) not in (None, "") else ""
        row["stages"] = int(row["stages"]) if row["stages"] else ""
        kept[(row["image"], point_of(row).name, row["seed"])] = row
    return kept


def mean_std(values):
    values = [float(v) for v in values if v != "" and v is not None]
    if not values:
        return "", ""
    return (round(statistics.fmean(values), 6),
            round(statistics.stdev(values), 6) if len(values) > 1 else 0.0)


def summarise(rows: List[dict]) -> List[dict]:
    """Mean and (sample) std over the seeds of each point and image, in the rows' order."""
    groups = {}
    for row in rows:
        key = tuple(row.get(k, "none" if k == "amp" else "") for k in SUMMARY[:7])
        groups.setdefault(key, []).append(row)
    out = []
    for key, group in groups.items():
        cpus = sorted({r.get("cpu") or EARLIER_CPU for r in group})
        entry = dict(zip(SUMMARY[:7], key), seeds=len(group), score_size=group[0]["score_size"],
                     cpu=" / ".join(cpus))
        for name, column in (("train_seconds", "train_seconds"), ("sifid", "sifid"),
                             ("diversity", "diversity")):
            mean, std = mean_std(r[column] for r in group)
            entry[f"{name}_mean"] = mean
            entry[f"{name}_std_over_seeds" if name != "train_seconds" else
                  "train_seconds_std"] = std
        entry["sifid_std_over_samples"] = mean_std(r["sifid_std"] for r in group)[0]
        out.append(entry)
    return out


def write_csv(path: Path, rows: List[dict], columns: List[str]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, text.getvalue().encode())
    print(f"wrote {path}")


def shown_path(folder: str) -> str:
    """A model folder as the tables show it: relative to the project when inside it (the
    same on every clone), else as it is."""
    try:
        return Path(folder).resolve().relative_to(ROOT.resolve()).as_posix()
    except ValueError:
        return folder


def pm(mean, std, digits, sign="+-") -> str:
    return "-" if mean == "" else f"{mean:.{digits}f} {sign} {std:.{digits}f}"


def print_summary(summary: List[dict]) -> None:
    print(f"{'image':<10} {'point':<24} {'seeds':>5} {'train minutes':>17} {'SIFID':>19} "
          f"{'diversity':>17}")
    for s in summary:
        name = point_of(s).name
        minutes = (s["train_seconds_mean"] / 60, s["train_seconds_std"] / 60)
        print(f"{Path(s['image']).stem:<10} {name:<24} {s['seeds']:>5} "
              f"{pm(*minutes, 2):>17} {pm(s['sifid_mean'], s['sifid_std_over_seeds'], 4):>19} "
              f"{pm(s['diversity_mean'], s['diversity_std_over_seeds'], 3):>17}")


def over_seeds(mean, std, digits: int, seeds: int) -> str:
    """A table cell: mean +- std over the seeds; one seed has no spread, so its value alone."""
    return pm(mean, std, digits, "±") if seeds > 1 or mean == "" else f"{mean:.{digits}f}"


def write_markdown(path: Path, summary: List[dict], left: int) -> None:
    """The summary as the README's table (mean +- std over the seeds), and how many trainings
    of the ladder are still to run."""
    lines = ["| image | method | --max_size | --niter | stages | seeds | training minutes "
             "| SIFID | diversity | --amp | CPU |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        n = s["seeds"]
        minutes = over_seeds(s["train_seconds_mean"] / 60, s["train_seconds_std"] / 60, 1, n)
        lines.append(f"| {Path(s['image']).stem} | {s['method']} | {s['max_size']} | "
                     f"{s['niter']} | {s['stages'] or '-'} | {n} | {minutes} | "
                     f"{over_seeds(s['sifid_mean'], s['sifid_std_over_seeds'], 2, n)} | "
                     f"{over_seeds(s['diversity_mean'], s['diversity_std_over_seeds'], 3, n)} | "
                     f"{s['amp']} | {s['cpu']} |")
    if left:
        lines.append(f"\n{left} training(s) of the ladder not run yet.")
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
    print(f"wrote {path}")


def plot(summary: List[dict], path: Path) -> None:
    """SIFID and diversity against training minutes: one line per method and image, error
    bars over the seeds (std), log x."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    lines = {}
    for s in summary:
        amp = f" {s['amp']}" if s["amp"] != "none" else ""
        lines.setdefault((s["method"] + amp, Path(s["image"]).stem), []).append(s)
    for ax, name, label in ((axes[0], "sifid", "SIFID (FID-Inception weights), lower is better"),
                            (axes[1], "diversity", "diversity")):
        for k, ((method, stem), group) in enumerate(sorted(lines.items())):
            group = sorted((g for g in group if g[f"{name}_mean"] != ""),
                           key=lambda g: g["train_seconds_mean"])
            if not group:
                continue
            x = [max(g["train_seconds_mean"], 1e-3) / 60 for g in group]
            ax.errorbar(x, [g[f"{name}_mean"] for g in group],
                        yerr=[g[f"{name}_std_over_seeds"] for g in group],
                        xerr=[g["train_seconds_std"] / 60 for g in group],
                        marker="o", capsize=3, label=f"{method}, {stem}")
            for xi, g in zip(x, group):
                ax.annotate(f"{g['max_size']}/{g['niter']}" +
                            (f"/{g['stages']}" if g["stages"] else ""),
                            (xi, g[f"{name}_mean"]), fontsize=7,   # every other line's
                            xytext=(3, 3 if k % 2 == 0 else -9),  # below: points that meet
                            textcoords="offset points")           # keep their labels apart
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))   # 5, 10, 20
        ax.xaxis.set_major_formatter(ticker.ScalarFormatter())                # not 10^1
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel("training minutes (this machine)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "not measured", ha="center", transform=ax.transAxes)
    sizes = sorted({s["score_size"] for s in summary})
    fig.suptitle(f"samples scored at {', '.join(sizes)} (the largest point's size); "
                 "labels: max_size/niter[/stages]; error bars: std over seeds", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    print(f"wrote {path}")


# ---- the run -------------------------------------------------------------------------------

def image_path(name: str) -> str:
    path = Path(name)
    if not path.exists() and not path.is_absolute() and len(path.parts) == 1:
        path = ROOT / IMAGES_DIR / name
    if not path.exists():
        raise SystemExit(f"quality_vs_time.py: image not found: {name}")
    return str(path)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ladder", default="default", choices=sorted(LADDERS),
                        help="the settings to train: default (up to about an hour per point on "
                             "2 cores) or smoke (32-48 px, 10 iterations: seconds)")
    parser.add_argument("--images", default=None,
                        help="comma-separated images (names in Input/Images or paths; default: "
                             "the ladder's, rocket.png,chelsea.png)")
    parser.add_argument("--seeds", default=None,
                        help="comma-separated seeds, at least 2 for a spread (default: 0,1)")
    parser.add_argument("--num_samples", type=int, default=None,
                        help="samples scored per model (default 50; smoke: 4)")
    parser.add_argument("--min_size", type=int, default=None,
                        help="shorter side of the coarsest level (default 25; smoke: 16, for "
                             "its 32 px images)")
    parser.add_argument("--root", default=str(ROOT / "TrainedModels" / "quality_vs_time"),
                        help="where the model folders and their result files go")
    parser.add_argument("--out", default=str(ROOT / "docs"),
                        help="where the CSV files and the plot go")
    parser.add_argument("--workers", type=int, default=1,
                        help="trainings at once: 1 (default) one after another in this process; "
                             "N > 1 on Ray's local runtime, one CPU each (where Ray is installed)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads with --workers 1 (default: torch's)")
    parser.add_argument("--points", dest="points_to_run", default=None,
                        help="comma-separated point names of the ladder to run now (e.g. "
                             "consingan_64_1000_5,singan_192_250; default: all); the others "
                             "are left for a later run, and every point is still scored at "
                             "the whole ladder's common size")
    parser.add_argument("--report", action="store_true",
                        help="train and score nothing: write the tables and the plot of the "
                             "points already finished")
    parser.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true",
                        help="print the plan and its estimated time; train nothing")
    args = parser.parse_args(argv)
    ladder = LADDERS[args.ladder]
    args.images = [image_path(n) for n in (args.images.split(",") if args.images
                                           else ladder["images"])]
    args.seeds = ([int(s) for s in args.seeds.split(",")] if args.seeds else ladder["seeds"])
    args.num_samples = args.num_samples or ladder["num_samples"]
    min_size = args.min_size or ladder["min_size"]
    args.points = [replace(p, min_size=min_size) for p in ladder["points"]]
    args.score_size = ladder.get("score_size")
    args.prefix = ladder.get("prefix", "quality_vs_time")   # the output files' names
    names = {p.name: p for p in args.points}
    args.only = None
    if args.points_to_run:
        args.only = [n.strip() for n in args.points_to_run.split(",") if n.strip()]
        unknown = [n for n in args.only if n not in names]
        if unknown:
            parser.error(f"--points: {', '.join(unknown)} not in the {args.ladder} ladder "
                         f"({', '.join(names)})")
    if args.num_samples < 2:
        parser.error("--num_samples must be at least 2 (diversity needs 2)")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.workers > 1 and args.device != "cpu":
        parser.error("--workers > 1 runs one CPU per training; use --workers 1 with a GPU")
    return args


def plan(args):
    """(jobs, scoring per image, rows kept from the earlier table), after printing the plan
    and its estimate."""
    jobs, scoring, total, left = [], {}, 0.0, 0.0
    print(f"ladder {args.ladder}: {len(args.points)} points x {len(args.seeds)} seeds "
          f"({', '.join(map(str, args.seeds))}) x {len(args.images)} images; "
          f"{args.num_samples} samples per model")
    largest = args.score_size or max(p.max_size for p in args.points)
    for image in args.images:
        h, w = read_image(image).shape[2:]
        scale1 = min(largest / max(h, w), 1)
        shape = (math.ceil(h * scale1), math.ceil(w * scale1))
        scoring[image] = Scoring(shape, scale1, args.num_samples, True)
    earlier = earlier_rows(Path(args.out) / f"{args.prefix}.csv", scoring)
    for image in args.images:
        h, w = read_image(image).shape[2:]
        shape = scoring[image].shape
        print(f"{Path(image).name} ({h} x {w}): every point scored at {shape[0]} x {shape[1]}")
        print(f"  {'point':<26} {'levels':>6} {'size':>9} {'est. per seed':>13}  state")
        for point in (p for p in args.points if p.trains_on(image)):
            try:
                shapes = point.shapes(h, w)
            except (ValueError, SinGANError) as err:
                raise SystemExit(f"quality_vs_time.py: {point.name} on {Path(image).name}: "
                                 f"{str(err).splitlines()[0]}") from None
            seconds = estimate_seconds(point, h, w)
            seconds += args.num_samples * SAMPLE_S_PER_PIXEL * shape[0] * shape[1]
            states = []
            for seed in args.seeds:
                job = Job(image, point, seed, args.root)
                jobs.append(job)
                done = job.result_file.exists() and "row" in read_result(job)
                kept = not done and (Path(image).name, point.name, seed) in earlier
                later = (not done and not kept and args.only is not None
                         and point.name not in args.only)
                states.append("done" if done else "done earlier" if kept
                              else "not now" if later else "to run")
                done = done or kept
                total += seconds
                left += 0 if done or later else seconds
            fh, fw = shapes[-1]
            print(f"  {point.name:<26} {len(shapes):>6} {fh:>4}x{fw:<4} "
                  f"{duration(seconds):>13}  {', '.join(states)}")
    wall = left / min(args.workers, max(1, len(jobs)))
    print(f"estimated time (rough: the 2-core AVX2 machine's rates, training and sampling): "
          f"{duration(total)} for all {len(jobs)} trainings, {duration(left)} of it still to "
          f"run; about {duration(wall)} with {args.workers} worker(s)")
    if earlier:
        print(f"{len(earlier)} row(s) of {Path(args.out) / (args.prefix + '.csv')} kept from "
              f"an earlier run (their CPU in the table's cpu column)")
    return jobs, scoring, earlier


def main(argv=None):
    args = parse_args(argv)
    print(describe_machine())
    jobs, scoring, earlier = plan(args)
    if args.dry_run:
        print("dry run: nothing trained")
        return 0
    missing = sifid_unavailable(SIFID_OPTIONS)
    if missing:
        print(f"SIFID not measured (its column stays empty): {missing.splitlines()[0]}")
        scoring = {k: Scoring(s.shape, s.scale1, s.num_samples, False)
                   for k, s in scoring.items()}
    if args.threads:
        torch.set_num_threads(args.threads)
    rows, failed, todo = {}, [], []
    for job in jobs:
        state = job_state(job, scoring[job.image])
        kept = earlier.get((Path(job.image).name, job.point.name, job.seed))
        if state == "finished":
            print(f"skip {job.label}: already trained and scored ({job.result_file})")
            rows[job] = read_result(job)["row"]
        elif kept and not job.result_file.exists():
            print(f"skip {job.label}: measured earlier ({kept['cpu']}), kept from the table")
            rows[job] = kept
        elif args.report or (args.only is not None and job.point.name not in args.only):
            continue                       # left for a later run
        else:
            if state == "score":
                print(f"score {job.label}: already trained, scoring it again")
            todo.append(job)
    if args.only is not None:              # in the order asked
        todo.sort(key=lambda job: args.only.index(job.point.name))
    if todo:
        warm_up()
    started = time.perf_counter()
    use_ray = args.workers > 1 and len(todo) > 1
    if use_ray and importlib.util.find_spec("ray") is None:
        print("Ray is not installed (pip install -r requirements-ray.txt): running the points "
              "one after another")
        use_ray = False
    if use_ray:
        print(f"running {len(todo)} trainings on Ray, {args.workers} at once")
        results = run_on_ray(todo, scoring, args.device, args.workers)
    else:
        show = sys.stderr.isatty()
        results = ((job, _guarded(run_job, job, scoring[job.image], args.device, print, show))
                   for job in todo)
    for job, row in results:
        if isinstance(row, BaseException):
            failed.append(job)
            print(f"FAILED {job.label}: {type(row).__name__}: {str(row).splitlines()[0]}")
            continue
        rows[job] = row
        sifid = f"{row['sifid']:.4f} +- {row['sifid_std']:.4f}" if row["sifid"] != "" else "-"
        print(f"done {job.label}: trained in {row['train_seconds']:.1f} s at {row['train_size']}"
              f", SIFID {sifid}, diversity {row['diversity']:.3f}", flush=True)
    if todo:
        print(f"{len(todo) - len(failed)} of {len(todo)} points trained or scored in "
              f"{duration(time.perf_counter() - started)}")
    ordered = [dict(rows[job], folder=shown_path(rows[job]["folder"])) for job in jobs
               if job in rows]
    if ordered:
        out = Path(args.out)
        summary = summarise(ordered)
        print_summary(summary)
        write_csv(out / f"{args.prefix}.csv", ordered, COLUMNS)
        write_csv(out / f"{args.prefix}_summary.csv", summary, SUMMARY)
        write_markdown(out / f"{args.prefix}.md", summary, len(jobs) - len(ordered))
        plot(summary, out / f"{args.prefix}.png")
        print_amp_verdict(summary)
    return 1 if failed else 0


def print_amp_verdict(summary: List[dict]) -> None:
    """For each setting trained both in fp32 and under --amp bf16 on the same image: bf16's
    mean SIFID and diversity against fp32's, and whether bf16 is fit to recommend (issue #39:
    mean SIFID within 1.15x of fp32's, mean diversity within 0.85-1.2x)."""
    by_key = {}
    for s in summary:
        key = (s["image"], point_of({**s, "amp": "none"}).name)
        by_key.setdefault(key, {})[s["amp"]] = s
    for (image, name), pair in by_key.items():
        fp32, bf16 = pair.get("none"), pair.get("bf16")
        if not fp32 or not bf16 or "" in (fp32["sifid_mean"], bf16["sifid_mean"]):
            continue
        sifid = bf16["sifid_mean"] / fp32["sifid_mean"]
        div = bf16["diversity_mean"] / fp32["diversity_mean"]
        fit = sifid <= 1.15 and 0.85 <= div <= 1.2
        speed = fp32["train_seconds_mean"] / bf16["train_seconds_mean"]
        print(f"bf16 against fp32, {Path(image).stem} {name} ({fp32['seeds']} and "
              f"{bf16['seeds']} seeds): SIFID {sifid:.2f}x (fit: <= 1.15), diversity "
              f"{div:.2f}x (fit: 0.85-1.2), training {speed:.2f}x faster: "
              f"{'fit to recommend' if fit else 'NOT fit to recommend'}")


def _guarded(fn, *args):
    """fn(*args), or the SinGANError it raised (a failed point does not stop the others)."""
    try:
        return fn(*args)
    except SinGANError as err:
        return err


if __name__ == "__main__":
    sys.exit(main())
