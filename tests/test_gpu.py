"""The CUDA path: the same maths on the GPU as on the CPU, reproducible, and mixed precision.

Every test needs a CUDA device and is skipped (with the reason) where there is none. Run them
on a GPU machine with

    python -m pytest -q -m gpu tests/test_gpu.py

(benchmarks/device_check.py runs them first). Comparisons at 1e-4 and tighter are made in true
float32: TF32 convolutions and matmuls (on by default for cuDNN on Ampere and later) carry a
10-bit mantissa and are switched off for these tests.
"""
import copy
import os

# cuBLAS is deterministic only with a fixed workspace; it reads this when CUDA starts (no
# effect where another test has already started it, and cuDNN needs nothing of the sort).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import pytest  # noqa: E402
import torch  # noqa: E402

import singan  # noqa: E402
from conftest import smooth_image  # noqa: E402
from singan.methods.singan.models import (BatchNorm2d, Discriminator, Generator,  # noqa: E402
                                          channels_at_scale, init_weights)
from singan.methods.singan.pyramid import build_reals, plan_pyramid  # noqa: E402
from singan.methods.singan.model import TrainedPyramid  # noqa: E402
from singan.methods.singan.train import ScaleTrainer  # noqa: E402

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

CUDA = "cuda"
# A 24 x 32 image trains 3 scales of SinGAN in a few seconds.
TINY = dict(max_size=32, min_size=19, niter=20)


def quiet(line: str) -> None:
    """train_model's log: nothing (pytest would capture it anyway)."""


def image_tensor(h: int = 24, w: int = 32, seed: int = 0) -> torch.Tensor:
    """conftest's smooth test image as a [1, 3, h, w] tensor in [-1, 1], on the CPU."""
    pixels = torch.from_numpy(smooth_image(h, w, seed)).permute(2, 0, 1)[None].float()
    return pixels / 127.5 - 1


def explicit_noise(model, num: int, seed: int = 0) -> list:
    """One unpadded noise tensor per scale, [num, C, h_n, w_n] (one channel at scale 0), on the
    CPU: the `noise` list that sample() takes instead of drawing its own."""
    g, p = torch.Generator().manual_seed(seed), model.pad
    return [torch.randn(num, 1 if n == 0 else 3, z.shape[2] - 2 * p, z.shape[3] - 2 * p,
                        generator=g) for n, z in enumerate(model.z_opt)]


def train_tiny(folder, config, progress=None):
    return singan.train_model(image_tensor(), config, folder, device=CUDA, seed=0,
                              show_progress=False, progress=progress, log=quiet)


@pytest.fixture(autouse=True)
def true_float32():
    """TF32 off for the test (restored after it)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.fixture
def deterministic():
    """cuDNN's deterministic algorithms (some of its fastest backward kernels add with atomics,
    in no fixed order), and torch's, for the test (restored after it)."""
    saved = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
             torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled())
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    torch.use_deterministic_algorithms(True, warn_only=True)
    yield
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[:2]
    torch.use_deterministic_algorithms(saved[2], warn_only=saved[3])


def assert_finite(name, tensor):
    assert torch.isfinite(tensor).all(), f"{name} holds nan or inf"


# ---- (a) BatchNorm normalises each sample of a batch alone -------------------------------------

def test_batchnorm_normalises_each_sample_as_if_alone():
    torch.manual_seed(0)
    batched = BatchNorm2d(8).to(CUDA).train()
    with torch.no_grad():
        batched.weight.normal_(1.0, 0.1)
        batched.bias.normal_(0.0, 0.1)
    single = copy.deepcopy(batched)
    x = torch.randn(3, 8, 11, 13, device=CUDA) * 2 + 0.5

    out = batched(x)
    alone = torch.cat([single(x[i:i + 1]) for i in range(3)])

    assert (out - alone).abs().max().item() <= 1e-5
    # and the running statistics were updated once per sample, in batch order
    for name in ("running_mean", "running_var"):
        diff = (getattr(batched, name) - getattr(single, name)).abs().max().item()
        assert diff <= 1e-5, name
    assert int(batched.num_batches_tracked) == int(single.num_batches_tracked) == 3


# ---- (b) the batched training step is the one-image step ---------------------------------------

def tiny_pyramid():
    """A two-scale pyramid of the test image on the GPU, its scale 0 frozen at random weights
    (as benchmarks/common.py's random_pyramid): scale 1 can be trained against it."""
    image = image_tensor().to(CUDA)
    plan = plan_pyramid(image.shape[2], image.shape[3], TINY["min_size"], TINY["max_size"])
    reals = build_reals(image, plan)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        g0 = Generator(*channels_at_scale(0))
        init_weights(g0)
    h, w = reals[0].shape[2:]
    z0 = torch.zeros(1, 3, h + 10, w + 10)
    return TrainedPyramid([g0], [z0], [1.0], reals, plan.scale_factor).to(CUDA)


def test_batched_training_step_equals_one_image_step(monkeypatch):
    # Plain SGD instead of Adam on both sides (as tests/test_train_step.py): Adam's first steps
    # have size lr whatever the gradient, so float noise in a near-zero gradient element would
    # flip a whole step of 5e-4 and hide what is compared.
    monkeypatch.setattr(torch.optim, "Adam",
                        lambda params, lr, betas, **kw: torch.optim.SGD(params, lr))
    pyramid = tiny_pyramid()
    torch.manual_seed(1)
    G, D = Generator(*channels_at_scale(1)), Discriminator(*channels_at_scale(1))
    init_weights(G), init_weights(D)
    G_init = copy.deepcopy(G)
    cfg = singan.SinGANConfig(**TINY, lr_g=1e-3, lr_d=1e-3)

    generators = []
    for batched in (True, False):
        g, d = copy.deepcopy(G).to(CUDA), copy.deepcopy(D).to(CUDA)
        trainer = ScaleTrainer(1, pyramid, g, d, cfg,
                               torch.Generator(device=CUDA).manual_seed(5), batched=batched)
        assert trainer.batched is batched
        for it in range(3):
            trainer.step(it)
        generators.append(g)

    one_pass, one_image = generators
    for (name, x), (_, y) in zip(one_pass.state_dict().items(),
                                 one_image.state_dict().items()):
        assert torch.allclose(x.float(), y.float(), atol=1e-4), name
    # the weights did move: the comparison is not between two untouched copies
    moved = (one_pass.tail[0].weight.cpu() - G_init.tail[0].weight).abs().max().item()
    assert moved > 1e-3


# ---- (c) a seeded training on the GPU is reproducible ------------------------------------------

def test_same_seed_trains_the_same_model_twice(tmp_path, deterministic):
    samples, models = [], []
    for run in ("first", "second"):
        model = train_tiny(tmp_path / run / "m", singan.SinGANConfig(**TINY))
        assert model.device.type == "cuda" and model.complete
        generator = torch.Generator(device=CUDA).manual_seed(3)
        samples.append(model.sample(4, generator=generator))
        models.append(model)
    assert samples[0].shape == (4, 3, 24, 32)
    assert torch.equal(samples[0], samples[1]), \
        f"samples differ by up to {(samples[0] - samples[1]).abs().max().item():.3g}"
    for a, b in zip(models[0].generators, models[1].generators):
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            assert torch.equal(x, y), name


# ---- (d) mixed precision trains to finite losses and weights -----------------------------------

@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_training_stays_finite(tmp_path, amp):
    events = []
    model = train_tiny(tmp_path / "m", singan.SinGANConfig(**TINY, amp=amp), events.append)
    assert model.complete
    losses = [value for e in events if e.kind == "iteration" for value in e.losses.values()]
    assert losses, "no iteration was reported"
    assert all(torch.isfinite(torch.tensor(v)) for v in losses), losses
    for n, g in enumerate(model.generators):
        for name, value in g.state_dict().items():
            if value.is_floating_point():
                assert value.dtype == torch.float32, (n, name)   # master weights stay fp32
                assert_finite(f"scale {n} {name}", value)
    generator = torch.Generator(device=CUDA).manual_seed(0)
    assert_finite("samples", model.sample(4, generator=generator))


# ---- (e) a model samples the same on the CPU and on the GPU ------------------------------------

def test_model_samples_alike_on_cpu_and_cuda(tmp_path):
    folder = train_tiny(tmp_path / "m", singan.SinGANConfig(**TINY)).folder
    on_cpu = singan.load_model(folder, device="cpu")
    on_gpu = singan.load_model(folder, device=CUDA)
    assert on_cpu.device.type == "cpu" and on_gpu.device.type == "cuda"
    noise = explicit_noise(on_cpu, 4)

    # The coarsest scale alone (no resize between scales): the same to float rounding.
    coarse = [m.synthesize(4, noise=noise[:1], end_scale=0, exact=True).cpu()
              for m in (on_cpu, on_gpu)]
    assert (coarse[0] - coarse[1]).abs().max().item() <= 1e-4

    # The whole pyramid. Between scales the reference truncates to uint8 levels (imresize),
    # so a value within float rounding of a level boundary may land one level (2/255) apart
    # on the two devices, and that step spreads through the finer scales: nearly every value
    # agrees within 1e-4, and none differs by more than a few levels.
    cpu, gpu = (m.sample(4, noise=noise).cpu() for m in (on_cpu, on_gpu))
    assert cpu.shape == gpu.shape == (4, 3, 24, 32)
    diff = (cpu - gpu).abs()
    close = (diff <= 1e-4).float().mean().item()
    assert close >= 0.99, f"only {100 * close:.2f}% of the values agree within 1e-4"
    assert diff.max().item() < 0.05


# ---- (f) ConSinGAN trains on the GPU -----------------------------------------------------------

def test_consingan_trains_on_cuda(tmp_path):
    events = []
    cfg = singan.ConSinGANConfig(train_stages=3, niter=20, max_size=32, min_size=19)
    model = train_tiny(tmp_path / "m", cfg, events.append)
    assert model.method == "consingan" and model.complete and model.num_scales == 3
    assert model.device.type == "cuda"
    losses = [value for e in events if e.kind == "iteration" for value in e.losses.values()]
    assert losses and all(torch.isfinite(torch.tensor(v)) for v in losses), losses
    samples = model.sample(4, generator=torch.Generator(device=CUDA).manual_seed(0))
    assert samples.shape[:2] == (4, 3) and samples.shape[2:] == model.reals[-1].shape[2:]
    assert_finite("samples", samples)
    assert samples.abs().max().item() <= 1.0


# ---- (g) the training step replayed from CUDA graphs is the eager step -------------------------

def test_graphed_training_step_equals_the_eager_step(deterministic):
    pyramid = tiny_pyramid()
    torch.manual_seed(1)
    G, D = Generator(*channels_at_scale(1)), Discriminator(*channels_at_scale(1))
    init_weights(G), init_weights(D)
    # the learning rate decays from iteration 5 on: the graph is captured twice (3 and 5)
    cfg = singan.SinGANConfig(**TINY, lr_milestone=6)
    runs = []
    for graphs in (False, True):
        g, d = copy.deepcopy(G).to(CUDA), copy.deepcopy(D).to(CUDA)
        trainer = ScaleTrainer(1, pyramid, g, d, cfg,
                               torch.Generator(device=CUDA).manual_seed(5), cuda_graphs=graphs)
        for it in range(8):
            trainer.step(it)
        runs.append(trainer)
    eager, graphed = runs
    assert eager.graphs is None and graphed.graphs.captures == 2
    for key in eager.history:     # the same noise, so the same losses at every iteration
        a, b = torch.stack(eager.history[key]), torch.stack(graphed.history[key])
        assert a.shape == b.shape == (8,)
        assert (a - b).abs().max().item() <= 1e-5, key
    for net in ("G", "D"):
        for (name, x), (_, y) in zip(getattr(eager, net).state_dict().items(),
                                     getattr(graphed, net).state_dict().items()):
            assert torch.allclose(x.float(), y.float(), atol=1e-5), (net, name)
    moved = (graphed.G.tail[0].weight.cpu() - G.tail[0].weight).abs().max().item()
    assert moved > 1e-3


def test_graphed_training_trains_the_eager_model(tmp_path, deterministic):
    cfg = singan.SinGANConfig(**TINY, lr_milestone=15)
    eager, graphed = (singan.train_model(image_tensor(), cfg, tmp_path / name / "m",
                                         device=CUDA, seed=0, show_progress=False, log=quiet,
                                         cuda_graphs=graphs)
                      for name, graphs in (("eager", False), ("graphed", True)))
    assert graphed.complete and graphed.num_scales == eager.num_scales == 3
    for a, b in zip(eager.generators, graphed.generators):
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            assert torch.allclose(x.float(), y.float(), atol=1e-4), name
    for a, b in zip(eager.z_opt, graphed.z_opt):   # scale 0's is drawn inside the graph
        assert torch.allclose(a, b, atol=1e-6)
    reloaded = singan.load_model(graphed.folder, device=CUDA)
    noise = explicit_noise(reloaded, 2)
    assert torch.allclose(reloaded.sample(2, noise=noise), eager.sample(2, noise=noise),
                          atol=0.05)


def test_graphs_are_the_default_for_the_plain_fp32_step_only():
    from singan.methods.singan.train import SinGANTrainer
    image = image_tensor().to(CUDA)
    default = SinGANTrainer(image, singan.SinGANConfig(**TINY))
    assert default.cuda_graphs is True and default.begin_stage(0, 0).graphs is not None
    assert SinGANTrainer(image, singan.SinGANConfig(**TINY, amp="bf16")).cuda_graphs is False
    assert SinGANTrainer(image, singan.SinGANConfig(**TINY), low_memory=True).cuda_graphs is False
    assert SinGANTrainer(image, singan.SinGANConfig(**TINY), cuda_graphs=False).cuda_graphs is False
    assert SinGANTrainer(image, singan.SinGANConfig(**TINY, amp="bf16"),
                         cuda_graphs=True).cuda_graphs is True
