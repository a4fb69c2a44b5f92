"""methods/singan/graphs.py on a machine without CUDA: the replay bookkeeping (a stand-in for torch.cuda
that records what the real one would be asked), and the refusals that every entry point gets.
tests/test_gpu.py checks the graphed step against the eager one on a GPU."""
import contextlib

import pytest
import torch

import singan
from conftest import assert_one_line_error, run_here, smooth_image, write_image
from singan.errors import SinGANError
from singan.methods.singan.graphs import StepGraph
from singan.methods.singan.hparams import SinGANConfig
from singan.methods.singan.models import Discriminator, Generator, init_weights
from singan.methods.singan.model import TrainedPyramid
from singan.methods.singan.train import ScaleTrainer


class Recorder:
    """Enough of torch.cuda for StepGraph: streams, graphs and synchronisation as a log. A
    'capture' runs the iteration (the real capture runs its Python too, without the kernels);
    a 'replay' is logged and runs nothing."""

    def __init__(self):
        self.log = []

    def Stream(self):
        return self

    def current_stream(self):
        return self

    def wait_stream(self, other):
        pass

    def stream(self, s):
        self.log.append("side stream")
        return contextlib.nullcontext()

    def synchronize(self):
        pass

    def CUDAGraph(self):
        recorder = self

        class Graph:
            def register_generator_state(self, generator):
                recorder.log.append(f"register {generator.initial_seed()}")

            def replay(self):
                recorder.log.append("replay")

            def reset(self):
                recorder.log.append("reset")
        return Graph()

    @contextlib.contextmanager
    def graph(self, g):
        self.log.append("capture")
        yield


def test_step_graph_warms_up_eagerly_then_captures_once_per_key_and_replays():
    cuda, calls = Recorder(), []
    graphs = StepGraph([torch.Generator().manual_seed(7)], warmup=2, backend=cuda)

    def iteration(value):
        calls.append(value)
        return torch.tensor([float(value)])

    outputs = [graphs(key, lambda v=it: iteration(v)) for it, key in
               enumerate(["a", "a", "a", "a", "b", "b"])]

    assert calls == [0, 1, 2, 4]     # two warm-ups, and the Python of the two captures only
    assert graphs.captures == 2 and graphs.key == "b"
    assert cuda.log == ["side stream", "side stream",
                        "register 7", "capture", "replay", "replay",
                        "reset", "register 7", "capture", "replay", "replay"]
    # a replay returns the captured outputs (the graph's tensors, rewritten by each replay)
    assert [o.item() for o in outputs] == [0, 1, 2, 2, 4, 4]
    graphs.release()
    assert not graphs.captured and cuda.log[-1] == "reset"


def test_step_graph_needs_a_warmup():
    with pytest.raises(ValueError, match="warmup"):
        StepGraph(warmup=0, backend=Recorder())


def graphed_scale_trainer(amp):
    real = torch.zeros(1, 3, 20, 24)
    pyramid = TrainedPyramid([], [], [], [real], 0.75)
    G, D = Generator(32, 32), Discriminator(32, 32)
    init_weights(G), init_weights(D)
    return ScaleTrainer(0, pyramid, G, D, SinGANConfig(amp=amp), torch.Generator(),
                        cuda_graphs=True)


@pytest.mark.parametrize("amp", ["none", "bf16"])
def test_cuda_graphs_are_refused_off_cuda(amp):
    with pytest.raises(SinGANError, match="--cuda_graphs needs a CUDA device"):
        graphed_scale_trainer(amp)


def test_cuda_graphs_are_refused_for_consingan():
    image = torch.zeros(1, 3, 24, 32)
    with pytest.raises(SinGANError, match="ConSinGAN"):
        singan.train_model(image, singan.ConSinGANConfig(max_size=32, min_size=19, niter=1),
                           "unused", device="cpu", cuda_graphs=True, show_progress=False)


def test_main_train_refuses_cuda_graphs_on_the_cpu(tmp_path, monkeypatch):
    (tmp_path / "Input").mkdir()
    write_image(tmp_path / "Input" / "x.png", smooth_image(24, 32))
    proc = run_here("main_train.py", "--input_dir", "Input", "--input_name", "x.png",
                    "--max_size", "32", "--min_size", "19", "--niter", "1", "--device", "cpu",
                    "--cuda_graphs", "--quiet", cwd=tmp_path, monkeypatch=monkeypatch)
    assert_one_line_error(proc, "--cuda_graphs", "CUDA device", "--device cuda")
    assert not (tmp_path / "TrainedModels").exists()


def test_no_graphs_by_default_off_cuda():
    from singan.methods.singan.train import SinGANTrainer
    trainer = SinGANTrainer(torch.zeros(1, 3, 24, 32), SinGANConfig(max_size=32, min_size=19))
    assert trainer.cuda_graphs is False
    assert trainer.begin_stage(0, 0).graphs is None
