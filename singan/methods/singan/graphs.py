"""CUDA graphs of a training iteration: captured once, replayed with one launch.

At SinGAN's coarse scales an iteration is about a thousand tiny kernels (three critic steps
with the gradient penalty's double backward, three generator steps, the draws up the frozen
pyramid), and launching them costs more than their arithmetic. A CUDA graph records the
kernels of one iteration and replays them all with one launch; the Python that issued them
does not run again.

`StepGraph` runs a training iteration eagerly for its first `warmup` calls (on a side stream,
as capture asks: the optimiser's state, cuDNN's plans, the resize matrices and the folded
drawing copies are all made there), then captures it and replays the graph for every later
call with the same key (the learning rate, which the fused Adam takes as a number when it is
captured: a new learning rate is a new capture). What a replayed iteration needs of Python
must not change between replays: the shapes, the networks, the learning rate. Its randomness
comes from the registered torch.Generator's Philox counter, advanced by each replay as the
eager iteration would have advanced it, so a graphed training draws the same noise as an
eager one. Only CUDA has graphs; the trainer refuses the option elsewhere.
"""
from typing import Callable, Hashable, Optional, Sequence

import torch

from ...errors import SinGANError

WARMUP = 3      # eager iterations before the capture (torch's own examples use 3)


def check_graphable(device: torch.device, amp: str) -> None:
    """CUDA graphs need a CUDA device, and fp16's loss scaler skips steps on the host's word."""
    if torch.device(device).type != "cuda":
        raise SinGANError(f"--cuda_graphs needs a CUDA device (training runs on "
                          f"{torch.device(device).type}); leave it out, or use --device cuda")
    if amp == "fp16":
        raise SinGANError("--cuda_graphs works with --amp none or bf16, not fp16 (its loss "
                          "scaler's skipped steps are not graph-safe); use --amp bf16")


def make_capturable(*optimizers: torch.optim.Optimizer) -> None:
    """Let the optimisers be captured: their step counters live on the device (the fused
    Adam keeps them there already; the flag is what its capture check asks for)."""
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["capturable"] = True


class StepGraph:
    """Calls `iteration()` (no arguments; returns a tensor or a tuple of tensors): eagerly for
    the first `warmup` calls, then through a CUDA graph captured at the first call with a new
    `key` and replayed for each later call with that key.

    After a replay the returned tensors are the graph's own outputs, overwritten by the next
    replay: copy what must be kept. `generators`: the torch.Generator's the iteration draws
    from besides the default one (registered with each capture)."""

    def __init__(self, generators: Sequence[torch.Generator] = (), warmup: int = WARMUP,
                 backend=None):
        if warmup < 1:
            raise ValueError("a StepGraph needs at least one warmup iteration before capture")
        self.generators, self.warmup = list(generators), warmup
        self.cuda = backend or torch.cuda    # tests give a stand-in to run the bookkeeping
        self.calls, self.captures = 0, 0
        self.key: Optional[Hashable] = None
        self.graph = None
        self.outputs = None
        self._stream = None

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def __call__(self, key: Hashable, iteration: Callable[[], object]):
        self.calls += 1
        if self.calls <= self.warmup:
            return self._eager(iteration)
        if self.graph is None or key != self.key:
            self._capture(key, iteration)
        self.graph.replay()
        return self.outputs

    def _side_stream(self):
        if self._stream is None:
            self._stream = self.cuda.Stream()
        return self._stream

    def _eager(self, iteration):
        stream, current = self._side_stream(), self.cuda.current_stream()
        stream.wait_stream(current)
        with self.cuda.stream(stream):
            outputs = iteration()
        current.wait_stream(stream)
        return outputs

    def _capture(self, key, iteration) -> None:
        if self.graph is not None:      # a new learning rate: the old graph is not replayed again
            self.graph.reset()
            self.graph = None
        graph = self.cuda.CUDAGraph()
        for generator in self.generators:
            if not hasattr(graph, "register_generator_state"):
                raise SinGANError("--cuda_graphs needs a torch whose CUDA graphs take a "
                                  "torch.Generator (register_generator_state, torch >= 2.5); "
                                  f"this is torch {torch.__version__}")
            graph.register_generator_state(generator)
        self.cuda.synchronize()
        with self.cuda.graph(graph):
            outputs = iteration()
        self.graph, self.key, self.outputs = graph, key, outputs
        self.captures += 1

    def release(self) -> None:
        """Free the graph (its memory pool goes once its outputs are no longer referenced)."""
        if self.graph is not None:
            self.graph.reset()
        self.graph = self.outputs = None
