"""ConSinGAN (SPEC section 10): the stage pyramid against hand derivations, the growing
generator's parameter counts, concurrent training (which bodies learn, at which learning
rates), resume, and the scripts end to end for generation, retarget and harmonization with
fine-tuning, with their bad-input behaviour."""
import json
import math

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import assert_one_line_error, run_here, run_script, smooth_image, write_image
from singan import load_model, train_model
from singan.apps.animation import write_gif
from singan.apps.harmonize import inject_with_mask
from singan.methods.consingan import ConSinGAN, ConSinGANConfig
from singan.methods.consingan.augment import augment, shuffle_tiles
from singan.methods.consingan.models import (Discriminator, GrowingGenerator, build_generator,
                                             receptive_field)
from singan.methods.consingan.pyramid import build_stage_reals, plan_stages
from singan.methods.consingan.train import make_stage, train_iteration
from singan.errors import SinGANError
from singan.image_io import read_image

# Tiny runs: 3 stages on a 32 x 40 image (17 x 21, 23 x 29, 32 x 40), 16 channels.
TINY = ["--train_stages", "3", "--max_size", "40", "--min_size", "16", "--nfc", "16",
        "--niter", "6", "--device", "cpu", "--quiet", "--manualSeed", "5"]
SUFFIX = "stages=3,depth=3,lr_scale=0.1,nfc=16,min_size=16,max_size=40,niter=6"
GENERATION = f"TrainedModels/tiny/consingan_generation,{SUFFIX}"
RETARGET = f"TrainedModels/tiny/consingan_retarget,{SUFFIX}"
HARMONIZATION = f"TrainedModels/tiny/consingan_harmonization,{SUFFIX}"


def tiny_config(**kw) -> ConSinGANConfig:
    return ConSinGANConfig(**{"train_stages": 3, "min_size": 16, "max_size": 40, "nfc": 16,
                              "niter": 4, **kw})


# ---- the stage pyramid (SPEC 10) -----------------------------------------------------------------

def hand_shapes(h, w, stages, min_size, max_size, harmonization=False):
    """SPEC 10 written out: scale1 = min(max / max(H, W), 1), real = ceil(H * scale1) x ceil(W *
    scale1); f = (min_size / min(real)) ** (1 / N), N = stages - 1; level i < N resized by
    f ** ((N - 1) / ln N * ln(N - i) + 1) (harmonization: f ** (N - i)), i.e. ceil(real * s)."""
    scale1 = min(max_size / max(h, w), 1)
    rh, rw = math.ceil(h * scale1), math.ceil(w * scale1)
    n = stages - 1
    f = math.pow(min_size / min(rh, rw), 1 / n)
    out = []
    for i in range(n):
        e = (n - i) if harmonization else ((n - 1) / math.log(n) * math.log(n - i) + 1)
        s = math.pow(f, e)
        out.append((math.ceil(rh * s), math.ceil(rw * s)))
    return out + [(rh, rw)]


def test_pyramid_of_a_267_x_400_image_by_hand():
    # scale1 = 250/400 = 0.625: real 166.875 -> 167 x 250; f = (25/167) ** (1/5) = 0.68398;
    # exponents (4 / ln 5) ln(5 - i) + 1 = 5, 4.4454, 3.7304, 2.7227, 1 for i = 0..4, so the
    # factors are 25/167, 0.18483, 0.24246, 0.35553, 0.68398 and the levels (ceil of)
    # 25 x 37.43, 30.86 x 46.2, 40.49 x 60.62, 59.37 x 88.88, 114.23 x 171.0, then 167 x 250.
    plan = plan_stages(267, 400)
    assert plan.real_shape == (167, 250) and plan.stop_scale == 5
    assert plan.scale_factor == pytest.approx(0.683982, abs=1e-6)
    assert plan.shapes == [(25, 38), (31, 47), (41, 61), (60, 89), (115, 171), (167, 250)]
    assert plan.shapes == hand_shapes(267, 400, 6, 25, 250)


@pytest.mark.parametrize("size, args, expected", [
    # 188 x 250 fits: real = the image; f = (25/188) ** (1/5) = 0.66797
    ((188, 250), (6, 25, 250), [(25, 34), (32, 42), (42, 56), (63, 84), (126, 167), (188, 250)]),
    # square 400 px: real 250 x 250, f = 0.1 ** (1/5) = 0.63096
    ((400, 400), (6, 25, 250), [(25, 25), (33, 33), (45, 45), (72, 72), (158, 158), (250, 250)]),
    # portrait, 4 stages: exponents (2 / ln 3) ln(3 - i) + 1 = 3, 2.2619, 1
    ((100, 60), (4, 25, 250), [(42, 25), (52, 32), (75, 45), (100, 60)]),
])
def test_pyramid_shapes_by_hand(size, args, expected):
    assert plan_stages(*size, *args).shapes == expected == hand_shapes(*size, *args)


def test_harmonization_uses_the_geometric_pyramid():
    # the reference's scream example: 3 stages, min_size 120; f = (120/167) ** (1/2) = 0.84768,
    # levels f ** 2 and f ** 1: 120 x 180 and 141.56 x 211.9 -> 142 x 212
    plan = plan_stages(267, 400, 3, 120, 250, harmonization=True)
    assert plan.shapes == [(120, 180), (142, 212), (167, 250)]
    assert plan.shapes == hand_shapes(267, 400, 3, 120, 250, harmonization=True)
    # with 6 stages the geometric levels are f ** (5 - i): 25/167, 0.21886, 0.31999, 0.46784,
    # 0.68398 -> 25 x 38, 36.55 x 54.7, 53.44 x 80.0, 78.13 x 116.96, 114.23 x 171.0
    geometric = plan_stages(267, 400, 6, 25, 250, harmonization=True).shapes
    assert geometric == [(25, 38), (37, 55), (54, 80), (79, 117), (115, 171), (167, 250)]
    assert geometric != plan_stages(267, 400, 6, 25, 250).shapes


def test_stage_reals_have_the_planned_shapes():
    image = torch.rand(1, 3, 67, 90) * 2 - 1
    plan = plan_stages(67, 90, 5, 20, 80)
    reals = build_stage_reals(image, plan)
    assert [tuple(r.shape[2:]) for r in reals] == plan.shapes == hand_shapes(67, 90, 5, 20, 80)
    assert reals[-1].shape[2:] == (60, 80)


@pytest.mark.parametrize("args, words", [
    ((10, 40, 6, 25, 250), ["--min_size"]),                 # image smaller than min_size
    ((40, 40, 1, 25, 250), ["--train_stages", "2"]),
    ((30, 400, 6, 25, 250), ["--min_size", "max_size"]),   # too elongated for max_size
    ((40, 40, 3, 8, 40), ["receptive field"]),             # coarsest below D's 11 px
])
def test_impossible_pyramids_are_refused_clearly(args, words):
    with pytest.raises(SinGANError) as err:
        plan_stages(*args)
    for word in words:
        assert word in str(err.value)


# ---- the networks ------------------------------------------------------------------------------

CONV = 64 * 64 * 9 + 64            # one 3 x 3 conv 64 -> 64 with bias: 36928
HEAD = 3 * 64 * 9 + 64             # 1792
TAIL = 64 * 3 * 9 + 3              # 1731


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_growing_generator_parameter_counts_per_stage():
    G = GrowingGenerator()
    for stage in range(6):
        # head + (stage + 1) bodies of 3 convs + tail
        assert count(G) == HEAD + (stage + 1) * 3 * CONV + TAIL == 3523 + 110784 * (stage + 1)
        G.grow()
    bn = GrowingGenerator(batch_norm=True)
    bn.grow()
    assert count(bn) == HEAD + 128 + 2 * 3 * (CONV + 128) + TAIL   # BN weight + bias, 64 each
    assert count(GrowingGenerator(activation="prelu")) == HEAD + 1 + 3 * (CONV + 1) + TAIL
    assert count(Discriminator()) == HEAD + 3 * CONV + (64 * 9 + 1) == 113153
    assert receptive_field() == 11


def test_a_new_stage_starts_as_a_copy_of_the_previous_one():
    G = GrowingGenerator(batch_norm=True)
    G.grow()
    keys = set(G.state_dict())
    assert {"head.conv.weight", "head.norm.running_mean", "body.1.block2.conv.bias",
            "tail.0.weight"} <= keys and "body.2.block0.conv.weight" not in keys
    for a, b in zip(G.body[0].parameters(), G.body[1].parameters()):
        assert torch.equal(a, b) and a is not b
    with torch.no_grad():
        G.body[1].block0.conv.weight.add_(1)
    assert not torch.equal(G.body[0].block0.conv.weight, G.body[1].block0.conv.weight)


@pytest.mark.parametrize("mode, extra", [("generation", 6), ("retarget", 0)])
def test_noise_and_output_shapes(mode, extra):
    G = build_generator(tiny_config(train_mode=mode), num_stages=3)
    shapes = [(17, 21), (23, 29), (32, 40)]
    noise = [torch.randn(2, *G.noise_shape(k, *s)) for k, s in enumerate(shapes)]
    assert [n.shape[1:] for n in noise] == [(3, 17, 21), (16, 23 + extra, 29 + extra),
                                            (16, 32 + extra, 40 + extra)]
    assert G(noise, shapes, [1.0, 0.1, 0.1]).shape == (2, 3, 32, 40)


def test_batch_norm_normalises_each_sample_on_its_own_when_sampling():
    G = build_generator(tiny_config(batch_norm=True), num_stages=2).eval()
    shapes = [(17, 21), (23, 29)]
    noise = [torch.randn(3, *G.noise_shape(k, *s)) for k, s in enumerate(shapes)]
    batch = G(noise, shapes, [1.0, 0.1])
    one = G([n[1:2] for n in noise], shapes, [1.0, 0.1])
    assert torch.allclose(batch[1:2], one, atol=1e-5)
    G.train()                                    # training mode, one sample: the same maths
    assert torch.allclose(G([n[1:2] for n in noise], shapes, [1.0, 0.1]), one, atol=1e-5)


# ---- concurrent training -------------------------------------------------------------------------

def stage_setup(k, cfg, seed=0):
    """Stage k of a tiny model (untrained earlier stages), ready for train_iteration."""
    torch.manual_seed(seed)
    image = torch.rand(1, 3, 32, 40) * 2 - 1
    plan = plan_stages(32, 40, cfg.train_stages, cfg.min_size, cfg.max_size)
    reals = build_stage_reals(image, plan)
    G = build_generator(cfg, num_stages=k + 1)
    fixed, amps = [reals[0]], [1.0]
    for j in range(1, k):
        fixed.append(torch.randn(1, *G.noise_shape(j, *plan.shapes[j])))
        amps.append(0.05)
    gen = torch.Generator().manual_seed(seed)
    state = make_stage(k, G, Discriminator(cfg.nfc), reals, fixed, amps, cfg, gen,
                       torch.Generator().manual_seed(1))
    return state, G


@pytest.mark.parametrize("k", [1, 4])
def test_only_the_newest_train_depth_bodies_learn_at_scaled_rates(k):
    cfg = tiny_config(train_stages=5, lr_g=1e-3, lr_scale=0.5, niter=10)
    state, G = stage_setup(k, cfg)
    trained = list(range(max(0, k - 2), k + 1))              # train_depth 3
    lrs = [g["lr"] for g in state.opt_g.param_groups]
    expected = [1e-3 * 0.5 ** (k - j) for j in trained]     # bodies, oldest first
    if k < 3:
        expected.append(1e-3 * 0.5 ** k)                   # the head, while k < train_depth
    assert lrs == pytest.approx(expected + [1e-3])          # the tail at lr_g
    assert len(state.opt_g.param_groups[0]["params"]) == 6  # 3 convs: weight + bias
    before = {n: p.detach().clone() for n, p in G.named_parameters()}
    train_iteration(state)
    for name, p in G.named_parameters():
        part = name.split(".")
        learns = (part[0] == "tail" or (part[0] == "head" and k < 3)
                  or (part[0] == "body" and int(part[1]) in trained))
        assert (p.grad is not None) == learns, name
        assert (not torch.equal(p, before[name])) == learns, name


def test_learning_rates_decay_at_four_fifths_of_niter():
    cfg = tiny_config(train_stages=3, niter=5)           # milestone 0.8 * 5 = 4
    state, _ = stage_setup(1, cfg)
    first = [g["lr"] for g in state.opt_g.param_groups]
    for _ in range(3):
        train_iteration(state)
    assert [g["lr"] for g in state.opt_g.param_groups] == first
    train_iteration(state)                               # the 4th iteration's end: decay
    assert [g["lr"] for g in state.opt_g.param_groups] == pytest.approx([
        0.1 * lr for lr in first])
    assert state.opt_d.param_groups[0]["lr"] == pytest.approx(0.1 * cfg.lr_d)


def test_noise_amp_is_a_tenth_of_the_reconstruction_rmse_without_the_new_stage():
    cfg = tiny_config(train_stages=3)
    state, G = stage_setup(2, cfg)
    with torch.no_grad():
        rec = G(state.fixed_noise, state.shapes, state.noise_amp[:2] + [0.0])
    rmse = torch.sqrt(((rec - state.real) ** 2).mean()).item()
    assert state.noise_amp[2] == pytest.approx(0.1 * rmse, rel=1e-5)
    assert state.fixed_noise[2].shape == (1, 16, 32 + 6, 40 + 6)


def test_augmentations_are_seeded_and_keep_the_shape():
    image = torch.rand(1, 3, 17, 21) * 2 - 1
    outs = [augment(image, torch.Generator().manual_seed(s)) for s in (1, 1, 2, 3, 4)]
    assert torch.equal(outs[0], outs[1])
    assert all(o.shape == image.shape and o.min() >= -1 and o.max() <= 1 for o in outs)
    assert any(not torch.equal(o, image) for o in outs)
    tiles = [shuffle_tiles(image, torch.Generator().manual_seed(s)) for s in (7, 7, 8)]
    assert torch.equal(tiles[0], tiles[1]) and tiles[0].shape == image.shape
    # every pixel of a tile-shuffled image is some pixel of the original
    colours = {tuple(v) for v in image[0].flatten(1).t().tolist()}
    assert all(tuple(v) in colours for v in tiles[2][0].flatten(1).t().tolist())


@pytest.mark.slow
def test_resume_after_an_interruption_gives_the_uninterrupted_result(tmp_path):
    image = read_image(write_image(tmp_path / "im.png", smooth_image(32, 40, seed=2)))
    cfg = tiny_config(niter=3)
    full = train_model(image, cfg, tmp_path / "full", seed=4, log=lambda s: None,
                           show_progress=False)

    def stop_at_stage_2(event):
        if event.stage == 2:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train_model(image, cfg, tmp_path / "cut", seed=4, log=lambda s: None,
                        show_progress=False, progress=stop_at_stage_2)
    ckpt = torch.load(tmp_path / "cut" / "model.pth", weights_only=True)
    assert len(ckpt["scales"]) == 2 and "body.2.block0.conv.weight" not in ckpt["generator"]
    assert load_model(tmp_path / "cut").num_scales == 2
    messages = []
    resumed = train_model(image, cfg, tmp_path / "cut", seed=99, log=messages.append,
                              show_progress=False)
    assert "resuming" in messages[0] and "after stage 1" in messages[0]
    assert resumed.noise_amp == full.noise_amp
    for (name, a), b in zip(full.generator.state_dict().items(),
                            resumed.generator.state_dict().values()):
        assert torch.equal(a, b), name
    other = read_image(write_image(tmp_path / "other.png", smooth_image(32, 40, seed=3)))
    with pytest.raises(SinGANError, match="different image.*--force"):
        train_model(other, cfg, tmp_path / "cut", show_progress=False)


def test_harmonize_blends_inside_the_dilated_mask_only():
    cfg = tiny_config(train_mode="harmonization")
    plan = plan_stages(32, 40, 3, 16, 40, harmonization=True)
    reals = build_stage_reals(torch.rand(1, 3, 32, 40) * 2 - 1, plan)
    G = build_generator(cfg, 3)
    fixed = [reals[0]] + [torch.randn(1, *G.noise_shape(k, *plan.shapes[k])) for k in (1, 2)]
    model = ConSinGAN(G, fixed, [1.0, 0.1, 0.1], reals, cfg, plan)
    naive = torch.rand(1, 3, 64, 80) * 2 - 1               # another size: resized
    mask = -torch.ones(1, 3, 32, 40)
    mask[:, :, :3, :3] = 1                                  # a corner
    out, blend, _ = inject_with_mask(model, naive, mask, 0, "harmonization")
    assert out.shape == blend.shape == (1, 3, 32, 40)
    # the blurred mask is rescaled to [0, 1]: 1 at the corner, 0 at the farthest pixel
    assert torch.allclose(blend[..., 0, 0], out[..., 0, 0], atol=1e-6)
    assert torch.allclose(blend[..., -1, -1], reals[-1][..., -1, -1],
                          atol=1e-6)                        # the training image far away
    with pytest.raises(SinGANError, match="stage 0 only"):
        model.generate(naive, 1)
    with pytest.raises(SinGANError, match="harmonization or editing"):
        ConSinGAN(G, fixed, [1.0, 0.1, 0.1], reals, tiny_config(), plan).generate(naive, 0)


# ---- the scripts, end to end ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def work(tmp_path_factory):
    work = tmp_path_factory.mktemp("consingan")
    write_image(work / "Input" / "tiny.png", smooth_image(32, 40))
    naive = smooth_image(32, 40)
    naive[8:20, 10:24] = (250, 30, 30)
    write_image(work / "Input" / "naive.png", naive)
    mask = np.zeros_like(naive)
    mask[8:20, 10:24] = 255
    write_image(work / "Input" / "naive_mask.png", mask)
    return work


@pytest.fixture(scope="module")
def generation(work):
    proc = run_script("main_train.py", "--input_dir", "Input", "--input_name", "tiny.png",
                      "--model", "consingan", *TINY, "--num_samples", "4", cwd=work)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.mark.slow
def test_generation_model_folder_and_checkpoint(work, generation):
    folder = work / GENERATION
    assert f"model: {GENERATION}" in generation.stdout
    for k in range(3):
        for name in ("netG.pth", "netD.pth", "fixed_noise.pth", "real_scale.png",
                     "fake_sample.png", "reconstruction.png", "losses.png"):
            assert (folder / str(k) / name).is_file(), (k, name)
    ckpt = torch.load(folder / "model.pth", weights_only=True)
    assert ckpt["method"] == "consingan" and ckpt["format_version"] == 2
    assert ckpt["config"]["train_mode"] == "generation" and ckpt["config"]["nfc"] == 16
    assert [s["shape"] for s in ckpt["scales"]] == [[17, 21], [23, 29], [32, 40]]
    assert ckpt["scales"][0]["noise_amp"] == 1.0 and 0 < ckpt["scales"][2]["noise_amp"] < 0.2
    assert torch.equal(ckpt["scales"][0]["fixed_noise"], ckpt["reals"][0])  # the real image
    assert ckpt["scales"][2]["fixed_noise"].shape == (1, 16, 38, 46)
    assert json.loads((folder / "config.json").read_text())["seed"] == 5
    # its samples never share SinGAN's folder: the model folder's name is a level of their own
    samples = work / "Output/RandomSamples/tiny" / GENERATION.split("/")[-1] / "gen_start_scale=0"
    images = np.stack([iio.imread(samples / f"{i}.png") for i in range(4)])
    assert images.shape == (4, 32, 40, 3) and images.std(axis=0).mean() > 0.5


@pytest.mark.slow
def test_second_run_with_the_same_settings_does_not_retrain(work, generation, monkeypatch):
    before = (work / GENERATION / "model.pth").stat().st_mtime_ns
    proc = run_here("main_train.py", "--input_dir", "Input", "--input_name", "tiny.png",
                    "--train_mode", "generation", *TINY, "--num_samples", "0",
                    cwd=work, monkeypatch=monkeypatch)
    assert proc.returncode == 0, proc.stderr
    assert "already trained (3 stages)" in proc.stdout and "--force" in proc.stdout
    assert (work / GENERATION / "model.pth").stat().st_mtime_ns == before


@pytest.mark.slow
def test_random_samples_script_takes_a_consingan_folder(work, generation, monkeypatch):
    proc = run_here("random_samples.py", "--model_dir", GENERATION, "--num_samples", "3",
                    "--mode", "random_samples_arbitrary_sizes", "--scale_v", "1",
                    "--scale_h", "2", "--device", "cpu", "--manualSeed", "1",
                    cwd=work, monkeypatch=monkeypatch)
    assert proc.returncode == 0, proc.stderr
    out = (work / "Output/RandomSamples_ArbitrerySizes/tiny" / GENERATION.split("/")[-1]
           / "scale_v=1.000000_scale_h=2.000000")
    assert iio.imread(out / "2.png").shape == (32, 80, 3)
    proc = run_here("random_samples.py", "--model_dir", GENERATION, "--gen_start_scale", "1",
                    "--device", "cpu", cwd=work, monkeypatch=monkeypatch)
    assert_one_line_error(proc, "gen_start_scale", "use 0")


@pytest.mark.slow
def test_retarget_training_and_evaluation(work, monkeypatch):
    proc = run_here("main_train.py", "--input_dir", "Input", "--input_name", "tiny.png",
                    "--train_mode", "retarget", *TINY, "--num_samples", "0",
                    cwd=work, monkeypatch=monkeypatch)
    assert proc.returncode == 0, proc.stderr
    ckpt = torch.load(work / RETARGET / "model.pth", weights_only=True)
    assert ckpt["scales"][2]["fixed_noise"].shape == (1, 16, 32, 40)   # no edge margin
    proc = run_here("evaluate_model.py", "--model_dir", RETARGET, "--num_samples", "2",
                    "--device", "cpu", "--manualSeed", "1", cwd=work, monkeypatch=monkeypatch)
    assert proc.returncode == 0, proc.stderr
    out = work / "Output/ConSinGAN/tiny" / RETARGET.split("/")[-1]
    sizes = {"random_samples": (32, 40), "random_samples_scale_h_1_scale_w_2": (32, 80),
             "random_samples_scale_h_2_scale_w_1": (64, 40),
             "random_samples_scale_h_2_scale_w_2": (64, 80)}
    for name, (h, w) in sizes.items():
        assert sorted(p.name for p in (out / name).iterdir()) == ["0.png", "1.png"]
        assert iio.imread(out / name / "1.png").shape == (h, w, 3), name
    assert iio.imread(out / "reconstruction.png").shape == (32, 40, 3)


@pytest.mark.slow
def test_harmonization_fine_tuning_and_evaluation(work, monkeypatch):
    proc = run_here("main_train.py", "--input_dir", "Input", "--input_name", "tiny.png",
                    "--train_mode", "harmonization", *TINY, cwd=work, monkeypatch=monkeypatch)
    assert proc.returncode == 0, proc.stderr
    trained = work / HARMONIZATION / "model.pth"
    before = trained.read_bytes()
    proc = run_here("evaluate_model.py", "--model_dir", HARMONIZATION, "--device", "cpu",
                    cwd=work, monkeypatch=monkeypatch)
    assert_one_line_error(proc, "--naive_img")
    proc = run_here("main_train.py", "--fine_tune", "--model_dir", HARMONIZATION,
                    "--naive_img", "Input/naive.png", "--niter", "4", "--device", "cpu",
                    "--quiet", "--manualSeed", "1", cwd=work, monkeypatch=monkeypatch)
    assert proc.returncode == 0, proc.stderr
    tuned = f"{HARMONIZATION}_finetuned_naive"
    assert f"fine-tuned model: {tuned}" in proc.stdout
    assert trained.read_bytes() == before                  # the trained model is untouched
    ckpt = torch.load(work / tuned / "model.pth", weights_only=True)
    assert ckpt["fine_tuned"]["niter"] == 4 and ckpt["config"]["niter"] == 4
    original = torch.load(trained, weights_only=True)
    # the last stage trained again; the fixed noise and noise amplitudes are the model's
    assert not torch.equal(ckpt["generator"]["body.2.block0.conv.weight"],
                           original["generator"]["body.2.block0.conv.weight"])
    assert not torch.equal(ckpt["scales"][2]["D"]["tail.weight"],
                           original["scales"][2]["D"]["tail.weight"])
    for new, old in zip(ckpt["scales"], original["scales"]):
        assert new["noise_amp"] == old["noise_amp"]
        assert torch.equal(new["fixed_noise"], old["fixed_noise"])
    proc = run_here("evaluate_model.py", "--model_dir", tuned, "--naive_img",
                    "Input/naive.png", "--device", "cpu", cwd=work, monkeypatch=monkeypatch)
    assert proc.returncode == 0, proc.stderr
    # the SinGAN-style script takes the ConSinGAN folder too, at stage 0 (the only one)
    proc = run_here("harmonization.py", "--input_name", "tiny.png", "--ref_dir", "Input",
                    "--ref_name", "naive.png", "--harmonization_start_scale", "1",
                    "--model_dir", tuned, "--device", "cpu", cwd=work, monkeypatch=monkeypatch)
    assert_one_line_error(proc, "--harmonization_start_scale must be 0")
    proc = run_here("harmonization.py", "--input_name", "tiny.png", "--ref_dir", "Input",
                    "--ref_name", "naive.png", "--model_dir", tuned, "--device", "cpu",
                    cwd=work, monkeypatch=monkeypatch)
    assert proc.returncode == 0, proc.stderr
    harmonized = iio.imread(work / "Output/Harmonization/tiny/naive_out" / tuned.split("/")[-1]
                            / "start_scale=0.png")
    assert harmonized.shape == (32, 40, 3)
    proc = run_here("animation.py", "--model_dir", tuned, "--device", "cpu", cwd=work,
                    monkeypatch=monkeypatch)
    assert_one_line_error(proc, "harmonization model", "--train_mode animation")
    out = work / "Output/ConSinGAN/tiny" / tuned.split("/")[-1] / "naive"
    raw = iio.imread(out / "harmonized_wo_mask.png").astype(float)
    blend = iio.imread(out / "harmonized_w_mask.png").astype(float)
    real = iio.imread(work / "Input/tiny.png").astype(float)
    assert raw.shape == blend.shape == (32, 40, 3)
    # inside the mask the blend is the output; the farthest corner keeps the training image
    # (within 2 levels: the blurred mask is just under 1 inside, and the training image went
    # through the resize's 8-bit steps)
    assert np.abs(blend[12:16, 14:20] - raw[12:16, 14:20]).max() <= 2
    assert np.abs(blend[-1, -1] - real[-1, -1]).max() <= 2


@pytest.mark.slow
@pytest.mark.parametrize("args, words", [
    (["--model", "consingan", "--input_name", "missing.png"], ["image not found"]),
    (["--model", "singan", "--train_stages", "3", "--input_name", "tiny.png"],
     ["--train_stages", "--model consingan"]),
    (["--fine_tune", "--model_dir", "TrainedModels/none"], ["--naive_img"]),
    (["--fine_tune", "--model_dir", "TrainedModels/none", "--naive_img", "Input/naive.png"],
     ["no trained model", "TrainedModels/none"]),
    (["--model", "consingan", "--input_name", "tiny.png", "--min_size", "39", "--max_size",
      "40", "--train_stages", "3"], ["--min_size"]),
])
def test_bad_input_is_one_clear_line(work, args, words, monkeypatch):
    proc = run_here("main_train.py", "--input_dir", "Input", "--device", "cpu", "--quiet",
                    *args, cwd=work, monkeypatch=monkeypatch)
    assert_one_line_error(proc, *words)


def test_animation_walks_around_the_fixed_noise(tmp_path):
    cfg = tiny_config(train_mode="animation")
    plan = plan_stages(32, 40, 3, 16, 40)
    reals = build_stage_reals(torch.rand(1, 3, 32, 40) * 2 - 1, plan)
    G = build_generator(cfg, 3)
    fixed = [torch.randn(1, *G.noise_shape(k, *plan.shapes[k])) for k in range(3)]
    model = ConSinGAN(G, fixed, [1.0, 0.1, 0.1], reals, cfg, plan)
    # alpha = 1: every frame's noise is the fixed noise, so every frame is the reconstruction
    still = model.animate(alpha=1.0, num_frames=3, batch_size=2)
    assert still.shape == (3, 3, 32, 40)
    assert torch.allclose(still, model.reconstruct().expand(3, -1, -1, -1), atol=1e-6)
    frames = model.animate(alpha=0.1, beta=0.9, num_frames=4,
                     generator=torch.Generator().manual_seed(0))
    assert (frames[1:] - frames[:-1]).abs().mean() > 1e-4      # it moves
    write_gif(tmp_path / "walk.gif", frames, fps=10)
    assert iio.imread(tmp_path / "walk.gif", index=None).shape == (4, 32, 40, 3)
    assert iio.immeta(tmp_path / "walk.gif")["duration"] == 100


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_step_stays_close_to_fp32(amp, monkeypatch):
    """--amp for ConSinGAN: the same step under autocast (and fp16 loss scaling) moves the
    weights as fp32 does. Plain SGD, so that a loss scale left in the fp16 gradients would
    show in the updates (Adam's first steps would hide it)."""
    import singan.methods.consingan.train as ctrain
    monkeypatch.setattr(ctrain, "adam", lambda params, lr, beta1, device: torch.optim.SGD(
        params, lr))
    updates = []
    for mode in ("none", amp):
        state, G = stage_setup(1, tiny_config(amp=mode, Dsteps=1, Gsteps=1))
        before = [G.tail[0].weight.clone(), state.D.tail.weight.clone()]
        train_iteration(state)
        updates.append([(G.tail[0].weight - before[0]).flatten(),
                        (state.D.tail.weight - before[1]).flatten()])
        assert state.scaler_g.is_enabled() == (mode == "fp16")
        assert all(torch.isfinite(p).all() for p in G.parameters())
    for fp32, mixed in zip(*updates):
        assert fp32.norm() > 0
        assert 0.8 < mixed.norm() / fp32.norm() < 1.25          # the loss scale was removed
        assert F.cosine_similarity(mixed, fp32, dim=0) > 0.9   # and the direction agrees
