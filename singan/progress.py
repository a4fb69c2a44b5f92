"""What training reports while it runs: structured events for programs (the web studio, a
cluster task) and the terminal's progress bar, which is one consumer of those events."""
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import torch


@dataclass
class ProgressEvent:
    """One report from a training run (singan.train_model's `progress` callback).

    kind "iteration": every LOG_EVERY iterations and at a stage's last one; "stage": a stage
    (SinGAN: a scale) has finished and is saved, `images` holds its training image ("real"),
    its last fake sample and its reconstruction ([1, 3, h, w] in [-1, 1], on the CPU).
    """
    kind: str                     # "iteration" | "stage"
    method: str                   # "singan" | "consingan"
    stage: int                    # the stage (scale) being trained, 0 = coarsest
    num_stages: int               # how many the model will have
    iteration: int                # iterations done in this stage
    total: int                    # iterations per stage
    losses: Dict[str, float]      # the latest errD, errG, rec, D_real, D_fake
    elapsed: float                # seconds since this call of train_model started
    folder: str = ""              # the model folder
    images: Optional[Dict[str, torch.Tensor]] = field(default=None, repr=False)
    work: Optional[float] = None          # the share of the whole training's work done, 0..1
    seconds_left: Optional[float] = None  # estimated from this run's own rate (None: not yet)
    noise_amp: Optional[float] = None     # "stage" events: the finished stage's noise amplitude
    unit: str = "stage"                   # what the method calls a stage: "scale" | "stage"

    @property
    def gradient_penalty(self) -> Optional[float]:
        """The last critic step's gradient penalty: errD = D_fake - D_real + penalty."""
        losses = self.losses
        if not all(k in losses for k in ("errD", "D_real", "D_fake")):
            return None
        return losses["errD"] - losses["D_fake"] + losses["D_real"]

    @property
    def fraction(self) -> float:
        """How much of the whole training is done, 0..1: by work, each stage weighted by its
        cost (WorkClock), when the driver measured it; else by iterations."""
        if self.work is not None:
            return self.work
        return (self.stage + self.iteration / max(self.total, 1)) / max(self.num_stages, 1)

    def summary(self) -> str:
        """One line for people: 'scale 8/9 · 31% of the work · about 14 h left'."""
        left = ("estimating the time left" if self.seconds_left is None
                else f"about {format_seconds(self.seconds_left, rough=True)} left")
        done = f"{100 * self.fraction:.0f}% of the work"
        return f"{self.unit} {self.stage}/{self.num_stages - 1} · {done} · {left}"


def format_seconds(seconds: float, rough: bool = False) -> str:
    """'42 s', '3 min 05 s', '2 h 10 min'; rough: one unit ('42 s', '3 min', '14 h')."""
    seconds = int(round(max(seconds, 0)))
    if rough:
        if seconds < 90:
            return f"{seconds} s"
        if seconds < 90 * 60:
            return f"{round(seconds / 60)} min"
        return f"{seconds / 3600:.1f} h" if seconds < 10 * 3600 else f"{round(seconds / 3600)} h"
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class WorkClock:
    """How much of a training's work is done, and how long the rest will take.

    costs: {stage: the work of one of its iterations} for every stage of the training (the
    trainer's stage_cost: multiply-adds of its convolutions, from its shapes and channels);
    niter iterations each. The work done counts every earlier stage whole. The time left
    comes from this run's own measurements: each stage's seconds per iteration so far,
    fitted as a + b * cost (a fixed per-iteration overhead, which rules the small stages,
    plus the arithmetic, which rules the large ones; weighted least squares on relative
    error), predicted for the iterations left, plus the stages' measured overhead outside
    their iterations (building, saving) for each stage left."""

    def __init__(self, costs: Dict[int, float], niter: int):
        self.costs, self.niter = dict(costs), niter
        self.order: List[int] = sorted(self.costs)
        self.total = sum(self.costs.values()) * niter
        self.rates: Dict[int, tuple] = {}     # stage -> (iterations timed, seconds)
        self.overheads: List[float] = []      # seconds outside the iterations, per stage

    def work_done(self, stage: int, iteration: int) -> float:
        done = sum(self.costs[j] for j in self.order if j < stage) * self.niter
        return min(1.0, (done + self.costs[stage] * iteration) / max(self.total, 1e-30))

    def timed(self, stage: int, iterations: int, seconds: float) -> None:
        """Stage `stage` has run `iterations` iterations in `seconds` in this run."""
        if iterations > 0 and seconds > 0:
            self.rates[stage] = (iterations, seconds)

    def stage_overhead(self, seconds: float) -> None:
        self.overheads.append(max(seconds, 0.0))

    def per_iteration(self):
        """(a, b) of seconds per iteration = a + b * cost, from the stages timed so far."""
        points = [(self.costs[j], s / n, n) for j, (n, s) in self.rates.items()]
        if not points:
            return None
        weights = [n / t ** 2 for _, t, n in points]
        sw = sum(weights)
        sc = sum(w * c for w, (c, _, _) in zip(weights, points))
        st = sum(w * t for w, (_, t, _) in zip(weights, points))
        scc = sum(w * c * c for w, (c, _, _) in zip(weights, points))
        sct = sum(w * c * t for w, (c, t, _) in zip(weights, points))
        det = sw * scc - sc * sc
        if det > 1e-12 * sw * scc:
            a, b = (st * scc - sc * sct) / det, (sw * sct - sc * st) / det
            if a >= 0 and b >= 0:
                return a, b
        if scc > 0 and len({c for c, _, _ in points}) > 1:
            return 0.0, sct / scc             # the fit wanted a < 0 (or b < 0): rate alone
        c, t, _ = max(points, key=lambda p: p[2])
        return 0.0, t / c                     # one stage timed: its rate

    def seconds_left(self, stage: int, iteration: int) -> Optional[float]:
        fit = self.per_iteration()
        if fit is None:
            return None
        a, b = fit
        later = [j for j in self.order if j > stage]
        left = (self.niter - iteration) * (a + b * self.costs[stage])
        left += sum(self.niter * (a + b * self.costs[j]) for j in later)
        if self.overheads:
            left += len(later) * sum(self.overheads) / len(self.overheads)
        return left


class RunLine:
    """The whole run's line under the stage's progress bar (ProgressEvent.summary)."""

    def __init__(self, enabled: bool = True):
        self.bar = None
        if enabled:
            from tqdm import tqdm
            self.bar = tqdm(total=0, position=1, bar_format="{desc}", leave=False,
                            dynamic_ncols=True)

    def show(self, event: ProgressEvent) -> None:
        if self.bar is not None:
            self.bar.set_description_str(event.summary())

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


ProgressCallback = Callable[[ProgressEvent], None]


class ProgressBar:
    """A tqdm bar for one scale or stage, showing the latest losses; silent when disabled."""

    def __init__(self, desc: str, niter: int, enabled: bool = True, initial: int = 0):
        self.bar = None
        if enabled:
            from tqdm import tqdm
            self.bar = tqdm(total=niter, desc=desc, leave=False, dynamic_ncols=True,
                            initial=initial)
        self.done = initial

    def update_to(self, it: int, losses: dict) -> None:
        if self.bar is not None:
            self.bar.update(it - self.done)
            self.bar.set_postfix(D=f"{losses['errD']:.3f}", G=f"{losses['errG']:.3f}",
                                 rec=f"{losses['rec']:.4f}", refresh=False)
        self.done = it

    def close(self):
        if self.bar is not None:
            self.bar.close()
