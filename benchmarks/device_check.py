"""The one prepared GPU check: proves singan's CUDA path end to end within a time budget.

On a machine with a CUDA device, from the repository root:

    python benchmarks/device_check.py --budget_s 450 --out Output/device_check

It runs these steps in order, each as a subprocess (this Python, in the repository root),
each with a timeout taken from the budget that is left:

  1. the GPU tests:         python -m pytest -q -m gpu tests/test_gpu.py
  2. the training step:     benchmarks/bench_train.py --size 188x250 --iters 5 --device cuda,
                            then with --amp bf16 and --amp fp16
  3. sampling:              benchmarks/bench_sample.py --size 188x250 --device cuda, then bf16
  4. ConSinGAN's step:      benchmarks/bench_consingan.py --device cuda --iters 2 --warmup 1,
     then one training step at the finest scale of a 512 and a 1024 px image (peak memory:
     bench_train.py --size 768x1024 --max_size 1024 --scales last)
  5. a real training of Input/Images/rocket.png at the paper's settings (main_train.py
     --max_size 250 --niter 2000 --manualSeed 0 --quiet --num_samples 50, plus --force so
     that it never resumes an old model, and --out <out>) with whatever budget is left.

A step that runs out of time gets Ctrl-C (SIGINT: the training keeps its finished scales and
says so), then is killed; the report says how far it got (the training: which scale). A
benchmark option that the script lacks skips that variant. When the budget is spent the
remaining steps are marked skipped. The report, rewritten after every step so that a run cut
short still leaves one: <out>/device_check.json, <out>/device_check.txt (machine, each step's
status, seconds and output tail) and <out>/logs/<step>.log (each step's whole output).

    python benchmarks/device_check.py --dry-run --out /tmp/dc   # the plan, anywhere (no GPU)

Without a CUDA device (and without --dry-run) it says so in one line and exits 2. Exit code:
0 when every step that ran passed (the training may stop at the budget), 1 otherwise.
"""
import argparse
import fnmatch
import json
import os
import platform
import re
import shlex
import signal
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import torch

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BUDGET_S = 450     # under 8 minutes: the device machine allows 10 per command
GRACE_S = 15               # after Ctrl-C, how long a step may take to stop before it is killed
MIN_START_S = 20           # a step is not started with less time than this left
TAIL_CHARS = 3000          # output kept in the report per step
SIZE = "188x250"           # the reference table's image size


@dataclass
class Step:
    """One subprocess of the check: `argv` after the Python interpreter."""
    name: str
    argv: List[str]
    cap_s: Optional[float] = None      # the most it may take (None: whatever is left)
    skip_reason: str = ""              # set: the step is not run (an option the script lacks)
    may_stop_at_budget: bool = False   # the training: running out of time is expected
    result: dict = field(default_factory=dict)
    # decided when the step's turn comes, from the steps before it: a reason not to run it
    # (None: run), and extra arguments
    condition: Optional[Callable[[], Optional[str]]] = None
    extra_args: Optional[Callable[[], List[str]]] = None

    @property
    def command(self) -> str:
        return shlex.join(["python", *self.argv])


# ---- the plan -----------------------------------------------------------------------------------

def script_options(script: str) -> set:
    """The --options a script's argparse defines (read from its source: no interpreter start)."""
    try:
        text = (ROOT / script).read_text()
    except OSError:
        return set()
    return set(re.findall(r"""add_argument\(\s*["'](--[\w-]+)["']""", text))


def option_variant(name, script, argv, option, cap_s) -> Step:
    """A step that needs `option` of `script`: skipped, saying why, when the script lacks it."""
    missing = option not in script_options(script)
    return Step(name, [script, *argv], cap_s,
                skip_reason=f"{script} has no {option} option" if missing else "")


def graphs_proven(work: Path) -> Optional[str]:
    """None when benchmarks/bench_cuda_graphs.py found the graphed fp32 step equal to the eager
    one at every scale and faster over the whole training; else why not."""
    try:
        rows = [r for r in json.loads((work / "cuda_graphs.json").read_text())
                if r.get("amp") == "none"]
    except (OSError, ValueError):
        return "no CUDA-graph results (the benchmark did not finish)"
    if not rows or any("error" in r for r in rows):
        return "the CUDA-graph benchmark failed at some scale"
    if not all(r["equal"] for r in rows):
        return "the graphed step was not equal to the eager one at every scale"
    if sum(r["graph_s"] for r in rows) >= sum(r["eager_s"] for r in rows):
        return "the graphed step was not faster"
    return None


def benchmark_steps(work: Path) -> List[Step]:
    train, sample = "benchmarks/bench_train.py", "benchmarks/bench_sample.py"
    consingan = "benchmarks/bench_consingan.py"
    base_train = ["--size", SIZE, "--iters", "5", "--device", "cuda"]
    base_sample = ["--size", SIZE, "--device", "cuda"]
    few = [f"--{o}" for o in ("iters", "warmup") if f"--{o}" in script_options(consingan)]
    memory = {}   # Large images: peak memory (max allocated) of one step at the finest scale
    for side, size in ((512, "384x512"), (1024, "768x1024")):
        for lean in (False, True):
            memory[side, lean] = Step(
                f"memory {side} px{' lean' if lean else ''}",
                [train, "--size", size, "--max_size", str(side), "--scales", "last", "--iters",
                 "1", "--warmup", "1", "--no_flops", "--device", "cuda",
                 *(["--low_memory"] if lean else [])], 40)
    return [
        Step("bench_train fp32", [train, *base_train], 75),
        Step("bench_consingan", [consingan, "--device", "cuda",
                                 *(["--iters", "2"] if "--iters" in few else []),
                                 *(["--warmup", "1"] if "--warmup" in few else [])], 60),
        Step("bench_sample fp32", [sample, *base_sample], 45),
        memory[512, True], memory[1024, True],
        option_variant("bench_sample bf16", sample, [*base_sample, "--amp", "bf16"], "--amp",
                       45),
        memory[512, False], memory[1024, False],
        *[option_variant(f"bench_train {amp}", train,
                         [*base_train, "--scales", "0,4,8", "--amp", amp], "--amp", 40)
          for amp in ("bf16", "fp16")],
        Step("amp_grid bf16", ["benchmarks/amp_grid.py", "--device", "cuda", "--amp", "bf16",
                               "--max_size", "40", "--niter", "100",
                               "--out", str(work / "amp_grid.png")], 60),
    ]


def build_plan(out: Path, work: Path) -> List[Step]:
    tests = Step("gpu tests", ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0",
                               "-m", "gpu", "tests/test_gpu.py"], 120)
    graphs = Step("cuda graphs", ["benchmarks/bench_cuda_graphs.py", "--size", SIZE, "--amp",
                                  "none,bf16", "--json", str(work / "cuda_graphs.json")], 100)
    # the finest scales are not launch-bound: does cuDNN's own algorithm search help them?
    searched = Step("cuda graphs cudnn.benchmark", [
        "benchmarks/bench_cuda_graphs.py", "--size", SIZE, "--amp", "none,bf16", "--scales",
        "7,8,9", "--iters", "8", "--cudnn_benchmark",
        "--json", str(work / "cuda_graphs_cudnn_benchmark.json")], 70)
    training = [
        "main_train.py", "--input_name", "rocket.png", "--max_size", "250", "--niter", "2000",
        "--device", "cuda", "--manualSeed", "0", "--quiet", "--num_samples", "50", "--force",
        "--out", str(work / "samples")]
    graphed = Step("train rocket graphed", training, 270, may_stop_at_budget=True,
                   condition=lambda: graphs_proven(work), extra_args=lambda: ["--cuda_graphs"])
    eager = Step("train rocket eager", [*training, "--no_cuda_graphs"], 240,
                 may_stop_at_budget=True,
                 condition=lambda: (None if graphed.result.get("status") in ("failed", "skipped")
                                    else "the graphed training ran"))
    return [tests, graphs, graphed, eager, searched, *benchmark_steps(work)]

# ---- running a step -----------------------------------------------------------------------------

def log_path(out: Path, index: int, step: Step) -> Path:
    return out / "logs" / f"{index:02d}_{re.sub(r'[^A-Za-z0-9]+', '_', step.name)}.log"


def stop(process: subprocess.Popen) -> None:
    """Ctrl-C to the step's process group, then, after GRACE_S, kill it."""
    try:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        process.wait()


def run_step(step: Step, timeout: float, log: Path) -> dict:
    """Run one step with a timeout; its output goes to `log`. Returns status, rc, seconds."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    start = time.perf_counter()
    timed_out = False
    if step.extra_args is not None:
        step.argv = [*step.argv, *step.extra_args()]
    with open(log, "w") as sink:
        process = subprocess.Popen([sys.executable, *step.argv], cwd=ROOT, stdout=sink,
                                   stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            stop(process)
    seconds = time.perf_counter() - start
    if timed_out:
        status = "stopped at budget" if step.may_stop_at_budget else "timeout"
    else:
        status = "passed" if process.returncode == 0 else "failed"
    return {"status": status, "rc": process.returncode, "seconds": round(seconds, 1),
            "timeout_s": round(timeout, 1), "log": str(log)}


def read_log(log: Path) -> str:
    """A step's whole output, progress bars' carriage returns made line breaks."""
    try:
        return log.read_text(errors="replace").replace("\r", "\n")
    except OSError:
        return ""


def note_for(step: Step, output: str) -> str:
    """A one-line summary of a step's output: pytest's counts, or how far the training got."""
    if "pytest" in step.argv:
        counts = re.findall(r"^=*\s*(\d+ \w+.* in [\d.]+s)", output, re.M)
        return counts[-1] if counts else ""
    if step.may_stop_at_budget:
        done = re.findall(r"^scale (\d+)/(\d+):.*?([\d.]+) s$", output, re.M)
        if not done:
            return "no scale finished"
        n, last, _ = done[-1]
        times = ", ".join(f"{int(k)}: {s} s" for k, _, s in done)
        return f"finished scales 0..{n} of 0..{last} (seconds per scale {times})"
    return ""


# ---- the report ---------------------------------------------------------------------------------

def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine() -> dict:
    info = {"torch": torch.__version__, "python": platform.python_version(),
            "cpu": cpu_name(), "cpu_cores": os.cpu_count(),
            "cuda_available": torch.cuda.is_available(), "cuda_version": torch.version.cuda}
    if info["cuda_available"]:
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=torch.cuda.get_device_name(0),
                    gpu_memory_gib=round(props.total_memory / 2 ** 30, 1),
                    gpu_capability=f"{props.major}.{props.minor}")
    else:
        info["gpu"] = "none"
    return info


def machine_line(m: dict) -> str:
    gpu = (f"GPU {m['gpu']} ({m['gpu_memory_gib']} GiB, sm {m['gpu_capability']}), "
           f"CUDA {m['cuda_version']}" if m["cuda_available"] else "no CUDA device")
    return (f"{gpu}; torch {m['torch']}, Python {m['python']}; CPU {m['cpu']}, "
            f"{m['cpu_cores']} cores")


def overall(steps: List[Step], dry_run: bool) -> str:
    if dry_run:
        return "planned"
    statuses = [s.result.get("status") for s in steps]
    if any(status in ("failed", "timeout") for status in statuses):
        return "failed"
    return "passed" if all(status in ("passed", "stopped at budget", "skipped")
                           for status in statuses) else "incomplete"


def text_report(report: dict) -> str:
    lines = [f"singan device check, {report['started']}, budget {report['budget_s']} s, "
             f"spent {report['spent_s']} s: {report['result']}",
             f"machine: {machine_line(report['machine'])}", ""]
    for i, s in enumerate(report["steps"], 1):
        seconds = f"{s['seconds']:6.1f} s" if s.get("seconds") is not None else f"{'-':>8}"
        lines.append(f"{i}. {s['name']:<18} {s['status']:<18} {seconds}  {s['command']}")
        if s.get("note"):
            lines.append(f"   {s['note']}")
    for i, s in enumerate(report["steps"], 1):
        if s.get("tail"):
            lines += ["", f"---- {i}. {s['name']}: last output ({s['log']}) ----",
                      s["tail"].rstrip()]
    return "\n".join(lines) + "\n"


def write_report(out: Path, steps: List[Step], meta: dict, dry_run: bool) -> None:
    report = dict(meta, spent_s=round(time.perf_counter() - meta["_t0"], 1),
                  result=overall(steps, dry_run),
                  steps=[{"name": s.name, "command": s.command, "cap_s": s.cap_s,
                          "status": "planned" if dry_run else "pending",
                          **({"note": s.skip_reason} if s.skip_reason else {}),
                          **s.result} for s in steps])
    report.pop("_t0")
    out.mkdir(parents=True, exist_ok=True)
    (out / "device_check.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "device_check.txt").write_text(text_report(report))


# ---- main ---------------------------------------------------------------------------------------

def print_plan(steps: List[Step], budget_s: float) -> None:
    print(f"plan (budget {budget_s:.0f} s; a step gets min(its cap, what is left)):")
    for i, s in enumerate(steps, 1):
        cap = f"cap {s.cap_s:.0f} s" if s.cap_s else "the rest"
        skip = f"  [skipped: {s.skip_reason}]" if s.skip_reason else ""
        print(f"{i:>2}. {s.name:<18} {cap:<9} {s.command}{skip}")


def run_all(steps: List[Step], out: Path, work: Path, budget_s: float, meta: dict,
            only: Sequence[str] = ()) -> None:
    """Run the steps in order within budget_s; `only`: name patterns (fnmatch) of the steps
    to run, the others marked skipped (default: all)."""
    deadline = meta["_t0"] + budget_s
    for i, step in enumerate(steps, 1):
        left = deadline - time.perf_counter() - GRACE_S
        reason = step.condition() if step.condition is not None else None
        if only and not any(fnmatch.fnmatchcase(step.name, pattern) for pattern in only):
            reason = "not among --only"
        if step.skip_reason:
            step.result = {"status": "skipped"}
        elif reason:
            step.result = {"status": "skipped", "note": reason}
        elif left < MIN_START_S:
            step.result = {"status": "skipped",
                           "note": f"budget spent ({max(left, 0):.0f} s left)"}
        else:
            timeout = left if step.cap_s is None else min(step.cap_s, left)
            print(f"{i:>2}. {step.name}: running (timeout {timeout:.0f} s)", flush=True)
            step.result = run_step(step, timeout, log_path(work, i, step))
            text = read_log(Path(step.result["log"]))
            step.result["note"] = note_for(step, text)
            step.result["tail"] = text[-TAIL_CHARS:]
        r = step.result
        print(f"{i:>2}. {step.name}: {r['status']}"
              + (f" in {r['seconds']} s" if "seconds" in r else "")
              + (f"; {r['note']}" if r.get("note") else ""), flush=True)
        write_report(out, steps, meta, dry_run=False)
        pack(out, work)


# ---- what comes back ----------------------------------------------------------------------------

MODEL_LIMIT = 16 * 2 ** 20     # the device tool brings back files of at most 16 MiB
MODELS = ROOT / "TrainedModels" / "rocket"     # where main_train.py puts the rocket model


def pack(out: Path, work: Path) -> None:
    """Everything but the two reports into few files (the device tool brings back 8 at most,
    two folders down): device_check.zip (every log, the CUDA-graph figures, the training's
    samples), the samples' grid, the amp grid and the rocket model.pth if it fits."""
    files = sorted(p for p in work.rglob("*") if p.is_file() and p.suffix != ".pth")
    partial = out / "device_check.zip.part"
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(work))
    partial.replace(out / "device_check.zip")
    grids = sorted((work / "samples").rglob("*grid*.png"))
    if grids:
        shutil.copyfile(grids[0], out / "samples_grid.png")
    if (work / "amp_grid.png").is_file():
        shutil.copyfile(work / "amp_grid.png", out / "amp_grid.png")
    models = sorted(MODELS.glob("*/model.pth"))
    if models and models[0].stat().st_size <= MODEL_LIMIT:
        shutil.copyfile(models[0], out / "model.pth")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan and write the reports with every step 'planned'")
    parser.add_argument("--budget_s", type=float, default=DEFAULT_BUDGET_S,
                        help="total seconds for all the steps")
    parser.add_argument("--out", default="Output/device_check", help="folder of the report")
    parser.add_argument("--work", default=None,
                        help="folder of the logs and the training's samples (default: a new "
                             "temporary folder); packed into <out>/device_check.zip")
    parser.add_argument("--only", default="",
                        help="comma-separated name patterns of the steps to run, e.g. "
                             "'bench_sample*,memory*' (a rerun of what the budget skipped)")
    args = parser.parse_args()
    if not torch.cuda.is_available() and not args.dry_run:
        print(f"error: no CUDA device: torch {torch.__version__} sees none "
              f"(torch.cuda.is_available() is False); run with --dry-run to see the plan",
              file=sys.stderr)
        return 2
    out = Path(args.out).resolve()
    work = Path(args.work).resolve() if args.work else Path(tempfile.mkdtemp(prefix="singan_dc_"))
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    steps = build_plan(out, work)
    meta = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "dry_run": args.dry_run,
            "budget_s": args.budget_s, "machine": describe_machine(), "_t0": time.perf_counter()}
    print(f"singan device check: {machine_line(meta['machine'])}")
    print_plan(steps, args.budget_s)
    if args.dry_run:
        write_report(out, steps, meta, dry_run=True)
    else:
        write_report(out, steps, meta, dry_run=False)
        run_all(steps, out, work, args.budget_s, meta,
                [p.strip() for p in args.only.split(",") if p.strip()])
    print(f"report: {out / 'device_check.txt'}, {out / 'device_check.json'}")
    return 0 if overall(steps, args.dry_run) in ("planned", "passed") else 1


if __name__ == "__main__":
    sys.exit(main())
