"""singan.resources' arithmetic and messages, each from a fact stated here (units, the
formulas in the module's docstring, the figures a user reads)."""
import pytest

from singan import resources
from singan.resources import human, parse_bytes


@pytest.mark.parametrize("text, value", [("8GB", 8_000_000_000), ("512 MB", 512_000_000),
                                         ("2e9", 2_000_000_000), ("1.5 kb", 1500),
                                         ("3TB", 3_000_000_000_000), ("7B", 7), ("42", 42),
                                         ("1 000 MB", 1_000_000_000), (" 2 GB ", 2e9)])
def test_parse_bytes_reads_decimal_units(text, value):
    assert parse_bytes(text) == value


@pytest.mark.parametrize("n, text", [(0, "0 B"), (999, "999 B"), (1000, "1.0 kB"),
                                     (12_345, "12 kB"), (450e6, "450 MB"), (2.14e9, "2.1 GB"),
                                     (310e9, "310 GB"), (9.96e12, "10.0 TB"), (3e15, "3.0 PB")])
def test_human_gives_two_figures_below_ten_and_whole_numbers_above(n, text):
    assert human(n) == text


@pytest.mark.parametrize("unit, size", [("kB", 1e3), ("MB", 1e6), ("GB", 1e9), ("TB", 1e12),
                                        ("PB", 1e15)])
def test_human_switches_unit_at_exactly_one_of_it(unit, size):
    assert human(size) == f"1.0 {unit}"
    assert human(10 * size) == f"10 {unit}" and human(9.96 * size).endswith(f".0 {unit}")
    assert human(10.6 * size) == f"11 {unit}"


# ---- what there is -------------------------------------------------------------------------------

class FakeFiles:
    """resources.Path with the given files' texts (others missing: OSError)."""

    def __init__(self, files):
        self.files = files

    def __call__(self, name):
        files = self.files

        class P:
            def read_text(self):
                if name not in files:
                    raise FileNotFoundError(name)
                return files[name]
        return P()


def _files(monkeypatch, files):
    monkeypatch.setattr(resources, "Path", FakeFiles(files))


def test_cgroup_v2_limit_minus_usage(monkeypatch):
    _files(monkeypatch, {"/sys/fs/cgroup/memory.max": "1000\n",
                         "/sys/fs/cgroup/memory.current": "300\n"})
    assert resources._cgroup_free() == 700
    _files(monkeypatch, {"/sys/fs/cgroup/memory.max": "1000", "/sys/fs/cgroup/memory.current": "1200"})
    assert resources._cgroup_free() == 0                       # over the limit: nothing left


def test_cgroup_without_a_limit_is_none(monkeypatch):
    _files(monkeypatch, {"/sys/fs/cgroup/memory.max": "max\n",
                         "/sys/fs/cgroup/memory.current": "300\n"})
    assert resources._cgroup_free() is None
    _files(monkeypatch, {"/sys/fs/cgroup/memory/memory.limit_in_bytes": str(2 ** 60),
                         "/sys/fs/cgroup/memory/memory.usage_in_bytes": "5"})
    assert resources._cgroup_free() is None                    # v1's "no limit" is huge
    _files(monkeypatch, {})
    assert resources._cgroup_free() is None
    # v2 saying "max" is the answer: a v1 hierarchy mounted beside it is not asked
    _files(monkeypatch, {"/sys/fs/cgroup/memory.max": "max\n",
                         "/sys/fs/cgroup/memory.current": "300\n",
                         "/sys/fs/cgroup/memory/memory.limit_in_bytes": "1000",
                         "/sys/fs/cgroup/memory/memory.usage_in_bytes": "10"})
    assert resources._cgroup_free() is None


def test_cgroup_v1_when_there_is_no_v2(monkeypatch):
    _files(monkeypatch, {"/sys/fs/cgroup/memory/memory.limit_in_bytes": str(2 ** 60 - 1),
                         "/sys/fs/cgroup/memory/memory.usage_in_bytes": "1"})
    assert resources._cgroup_free() == 2 ** 60 - 2
    _files(monkeypatch, {"/sys/fs/cgroup/memory.max": "garbage",
                         "/sys/fs/cgroup/memory/memory.limit_in_bytes": "100",
                         "/sys/fs/cgroup/memory/memory.usage_in_bytes": "40"})
    assert resources._cgroup_free() == 60                      # v2 unreadable: v1


def test_meminfo_available_is_in_kibibytes(monkeypatch):
    _files(monkeypatch, {"/proc/meminfo": "MemTotal: 16 kB\nMemFree: 3 kB\n"
                                          "MemAvailable:    2048 kB\nBuffers: 1 kB\n"})
    assert resources._meminfo_available() == 2048 * 1024


def test_meminfo_missing_falls_back_to_sysconf(monkeypatch):
    _files(monkeypatch, {})
    values = {"SC_AVPHYS_PAGES": 10, "SC_PAGE_SIZE": 4096}
    monkeypatch.setattr(resources.os, "sysconf", lambda name: values[name])
    assert resources._meminfo_available() == 40960
    _files(monkeypatch, {"/proc/meminfo": "MemAvailable: lots kB\n"})
    assert resources._meminfo_available() == 40960             # unparsable: sysconf

    def no_sysconf(name):
        raise ValueError(name)
    monkeypatch.setattr(resources.os, "sysconf", no_sysconf)
    assert resources._meminfo_available() is None


def test_free_memory_is_the_lower_of_ram_and_cgroup_then_the_cap(monkeypatch):
    monkeypatch.delenv("SINGAN_MAX_MEMORY", raising=False)
    monkeypatch.setattr(resources, "_meminfo_available", lambda: 8000)
    monkeypatch.setattr(resources, "_cgroup_free", lambda: 5000)
    assert resources.free_memory("cpu") == 5000
    monkeypatch.setattr(resources, "_cgroup_free", lambda: None)
    assert resources.free_memory("cpu") == 8000
    assert resources.free_memory() == 8000                     # the CPU by default
    monkeypatch.setenv("SINGAN_MAX_MEMORY", "3kB")
    assert resources.free_memory("cpu") == 3000
    monkeypatch.setenv("SINGAN_MAX_MEMORY", "30kB")
    assert resources.free_memory("cpu") == 8000
    monkeypatch.setattr(resources, "_meminfo_available", lambda: None)
    assert resources.free_memory("cpu") == 30000               # unknown RAM: the cap
    monkeypatch.delenv("SINGAN_MAX_MEMORY")
    assert resources.free_memory("cpu") is None


def test_free_memory_on_cuda_counts_the_unused_cache(monkeypatch):
    monkeypatch.delenv("SINGAN_MAX_MEMORY", raising=False)
    import torch
    gpu = torch.device("cuda:1")

    def of(value):
        return lambda device: value if device == gpu else pytest.fail(f"asked {device}")
    monkeypatch.setattr(torch.cuda, "mem_get_info", of((1000, 9000)))
    monkeypatch.setattr(torch.cuda, "memory_reserved", of(700))
    monkeypatch.setattr(torch.cuda, "memory_allocated", of(200))
    assert resources.free_memory("cuda:1") == 1000 + 700 - 200
    monkeypatch.setenv("SINGAN_MAX_MEMORY", "2kB")
    assert resources.free_memory("cuda:1") == 1000 + 700 - 200          # below the cap
    monkeypatch.setenv("SINGAN_MAX_MEMORY", "1kB")
    assert resources.free_memory("cuda:1") == 1000                      # capped
    monkeypatch.delenv("SINGAN_MAX_MEMORY")

    def broken(device):
        raise RuntimeError("no driver")
    monkeypatch.setattr(torch.cuda, "mem_get_info", broken)
    assert resources.free_memory("cuda") is None


def test_free_disk_asks_the_nearest_existing_folder(tmp_path, monkeypatch):
    seen = []

    def usage(path):
        seen.append(path)
        return type("U", (), {"free": 1234})()
    monkeypatch.setattr(resources.shutil, "disk_usage", usage)
    assert resources.free_disk(tmp_path / "a" / "b") == 1234 and seen == [tmp_path]

    def broken(path):
        raise OSError("no statfs")
    monkeypatch.setattr(resources.shutil, "disk_usage", broken)
    assert resources.free_disk(tmp_path) is None


# ---- the refusals' words -------------------------------------------------------------------------

def test_require_memory_refuses_beyond_the_headroom_only(monkeypatch):
    monkeypatch.setattr(resources, "free_memory",
                        lambda device: {"cpu": 1_000_000_000, "cuda": 1_000_000_000}[device])
    resources.require_memory(900_000_000, "cpu", "x", "--y")        # 0.9 of 1 GB: fits
    with pytest.raises(resources.SinGANError) as err:
        resources.require_memory(900_000_001, "cpu", "training at 9 x 9 px", "--max_size",
                                 "needs")
    assert str(err.value) == ("training at 9 x 9 px needs about 900 MB of memory; 1.0 GB is "
                              "free: lower --max_size")
    with pytest.raises(resources.SinGANError) as err:
        resources.require_memory(5e9, "cuda", "5 samples", "--num_samples")
    assert str(err.value) == ("5 samples need about 5.0 GB of GPU memory; 1.0 GB is free: "
                              "lower --num_samples")
    _free_on(monkeypatch, "cpu", 3e9)
    with pytest.raises(resources.SinGANError, match="; 3.0 GB are free: lower"):
        resources.require_memory(5e9, "cpu", "x", "y")
    _free_on(monkeypatch, "cpu", 2e9)
    with pytest.raises(resources.SinGANError, match="; 2.0 GB are free: lower"):
        resources.require_memory(5e9, "cpu", "x", "y")
    _free_on(monkeypatch, "cpu", None)
    resources.require_memory(1e30, "cpu", "x", "y")                 # cannot tell: allowed


def test_require_disk_refuses_what_does_not_fit(tmp_path, monkeypatch):
    monkeypatch.setattr(resources, "free_disk", lambda folder: 1000)
    resources.require_disk(1000, tmp_path, "x", "y")
    with pytest.raises(resources.SinGANError) as err:
        resources.require_disk(1001, tmp_path, "3 files of about 12 kB", "--num_samples",
                               "needs")
    assert str(err.value) == (f"3 files of about 12 kB needs about 1.0 kB of disk in "
                              f"{tmp_path}; 1.0 kB is free: lower --num_samples")
    with pytest.raises(resources.SinGANError) as err:
        resources.require_disk(2000, tmp_path, "5 files", "--num_samples")
    assert str(err.value).startswith("5 files need about 2.0 kB of disk in ")
    monkeypatch.setattr(resources, "free_disk", lambda folder: None)
    resources.require_disk(1e30, tmp_path, "x", "y")


def test_check_output_files_multiplies_count_by_size(tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr(resources, "require_disk",
                        lambda needed, folder, what, lower: asked.append((needed, what, lower)))
    resources.check_output_files(tmp_path, 7, 12_345)
    assert asked == [(7 * 12_345, "7 files of about 12 kB", "--num_samples (or free some disk)")]


# ---- the arithmetic, from the formulas in the module's docstring -------------------------------

def test_tensor_and_resize_bytes():
    assert resources.tensor_bytes(2, 3, 5) == 4 * 30
    assert resources.tensor_bytes() == 4
    assert resources.resize_bytes((10, 20), (30, 40)) == 12 * 10 * 30 + 12 * 20 * 40


def test_draw_bytes_counts_inputs_outputs_and_three_activations(monkeypatch):
    # batch 2, 8 channels, 10 x 20 out, pad 5: inputs 4 x [2, 3, 20, 30], output [2, 3, 10, 20],
    # activations 3 x [2, 8, 20, 30]
    images = 4 * (4 * 2 * 3 * 20 * 30) + 4 * 2 * 3 * 10 * 20
    activations = 3 * 4 * 2 * 8 * 20 * 30
    assert resources.draw_bytes(2, 8, 10, 20) == images + activations
    assert resources.draw_bytes(2, 8, 10, 20, pad=0) == 4 * (4 * 2 * 3 * 10 * 20) + \
        4 * 2 * 3 * 10 * 20 + 3 * 4 * 2 * 8 * 10 * 20
    monkeypatch.setattr(resources, "DRAW_TILE_BYTES", 1000)
    assert resources.draw_bytes(2, 8, 10, 20) == images + 1000           # a tile's worth
    assert resources.draw_bytes(2, 8, 10, 20, tiled=False) == images + activations
    monkeypatch.setattr(resources, "DRAW_TILE_BYTES", activations)
    assert resources.draw_bytes(2, 8, 10, 20) == images + activations    # fits exactly


def test_draw_tile_is_the_square_whose_activations_fit(monkeypatch):
    monkeypatch.setattr(resources, "DRAW_TILE_BYTES", 3 * 4 * 1 * 2 * 100 * 100)
    # 1 sample, 2 channels: a 100 x 100 padded tile fits exactly, so 100 - 2 * 5 = 90 px out
    assert resources.draw_tile(1, 2, 500, 500) == 90
    assert resources.draw_tile(1, 2, 90, 90) is None                    # fits whole
    assert resources.draw_tile(1, 2, 90, 91) == 90
    assert resources.draw_tile(1, 2, 500, 500, pad=10) == 80
    monkeypatch.setattr(resources, "DRAW_TILE_BYTES", 3 * 4 * 1 * 2 * 20 * 20)
    assert resources.draw_tile(1, 2, 500, 500) == 16                    # never below 16
    # a batch of 3 needs three times the activations: the same budget holds a third of them
    monkeypatch.setattr(resources, "DRAW_TILE_BYTES", 3 * 4 * 3 * 2 * 100 * 100)
    assert resources.draw_tile(3, 2, 90, 90) is None
    assert resources.draw_tile(3, 2, 90, 91) == 90
    assert resources.draw_tile(1, 2, 150, 150) is None                  # 3 x 100 x 100 fits


def test_pyramid_draw_bytes_is_the_worst_scale_with_its_resize():
    shapes, channels = [(10, 12), (20, 24)], [4, 8]
    first = resources.draw_bytes(3, 4, 10, 12)
    second = resources.draw_bytes(3, 8, 20, 24) + 12 * (10 * 20 + 12 * 24) + 2 * 4 * 3 * 3 * 10 * 12
    assert resources.pyramid_draw_bytes(3, shapes, channels) == max(first, second)
    assert resources.pyramid_draw_bytes(3, shapes[:1], channels[:1]) == first
    assert resources.pyramid_draw_bytes(3, [], []) == 0                  # nothing to draw
    assert resources.pyramid_draw_bytes(1, shapes, channels, pad=0) == max(
        resources.draw_bytes(1, 4, 10, 12, 0),
        resources.draw_bytes(1, 8, 20, 24, 0) + 12 * (10 * 20 + 12 * 24) + 2 * 4 * 3 * 10 * 12)


def test_training_step_bytes_in_units_of_one_padded_activation():
    unit = 4 * 32 * (20 + 10) * (30 + 10)
    assert resources.training_step_bytes(20, 30, 32) == 48 * unit
    assert resources.training_step_bytes(20, 30, 32, low_memory=True) == 15 * unit
    assert resources.training_step_bytes(20, 30, 32, batched=True) == 60 * unit
    assert resources.training_step_bytes(20, 30, 32, batched=True, low_memory=True) == 15 * unit
    assert resources.training_step_bytes(20, 30, 32, pad=0) == 48 * 4 * 32 * 20 * 30


def test_conv_macs_counts_head_body_and_tail():
    # 3 x 3 kernels, 4 channels, 5 layers: head 3 -> 4, three 4 -> 4, tail 4 -> 3, per pixel
    per_pixel = 9 * (3 * 4 + 3 * 4 * 4 + 4 * 3)
    assert resources.conv_macs(6, 7, 4) == 6 * 7 * per_pixel
    assert resources.conv_macs(6, 7, 4, layers=3, ker=1, image_channels=1) == 6 * 7 * (
        1 * 4 + 4 * 4 + 4 * 1)


class FakeTrainer:
    """What resources reads of a StageTrainer: its reals, the stages it trains, their steps."""

    def __init__(self, shapes, steps, todo=None, max_size=None):
        import torch
        self.reals = [torch.zeros(1, 3, h, w) for h, w in shapes]
        self.steps, self.todo = steps, todo if todo is not None else list(range(len(shapes)))
        self.device = "cpu"
        self.cfg = type("Cfg", (), {"max_size": max_size})() if max_size else object()

    def stages_to_train(self):
        return self.todo

    def step_bytes(self, k, low_memory):
        return self.steps[k] // (2 if low_memory else 1)


def test_training_peak_is_the_worst_stage_with_the_process_and_twice_the_reals():
    trainer = FakeTrainer([(10, 10), (20, 30), (40, 50)], [100, 5000, 3000])
    reals = 4 * 3 * (100 + 600 + 2000)
    assert resources.training_peak(trainer, False) == (0.75e9 + 5000 + 2 * reals, (20, 30))
    assert resources.training_peak(trainer, True) == (0.75e9 + 2500 + 2 * reals, (20, 30))
    later = FakeTrainer([(10, 10), (20, 30), (40, 50)], [100, 5000, 3000], todo=[2])
    assert resources.training_peak(later, False) == (0.75e9 + 3000 + 2 * reals, (40, 50))
    none = FakeTrainer([(10, 10), (40, 50)], [0, 0], todo=[])
    reals = 4 * 3 * (100 + 2000)
    assert resources.training_peak(none, False) == (0.75e9 + 2 * reals, (40, 50))


def _free_on(monkeypatch, device, free):
    """free_memory answering `free` for `device` only."""
    monkeypatch.setattr(resources, "free_memory",
                        lambda asked: free if asked == device else pytest.fail(f"asked {asked}"))


def test_low_memory_and_graphs_follow_the_free_memory_of_the_trainers_device(monkeypatch):
    trainer = FakeTrainer([(10, 10)], [2_000_000_000])                 # lean: half of that
    trainer.device = "cuda:1"
    plain = resources.training_peak(trainer, False)[0]
    lean = resources.training_peak(trainer, True)[0]
    _free_on(monkeypatch, "cuda:1", plain / 0.9)
    assert resources.choose_low_memory(trainer) is False               # fits exactly
    assert resources.graphs_fit(trainer) is False                      # twice does not
    _free_on(monkeypatch, "cuda:1", (lean + plain) / 2 / 0.9)
    assert resources.choose_low_memory(trainer) is True                # only the lean fits
    _free_on(monkeypatch, "cuda:1", 2 * plain / 0.9)
    assert resources.graphs_fit(trainer) is True
    _free_on(monkeypatch, "cuda:1", (2 * lean + 2 * plain) / 2 / 0.9)
    assert resources.graphs_fit(trainer) is False                      # twice the plain step
    _free_on(monkeypatch, "cuda:1", None)
    assert resources.choose_low_memory(trainer) is False and resources.graphs_fit(trainer)


def test_check_training_names_the_worst_size_and_max_size(monkeypatch):
    asked = []
    monkeypatch.setattr(resources, "require_memory", lambda *a: asked.append(a))
    trainer = FakeTrainer([(10, 10), (20, 30)], [100, 5000], max_size=30)
    resources.check_training(trainer)
    resources.check_training(trainer, low_memory=False)
    resources.check_training(FakeTrainer([(10, 10), (20, 30)], [100, 5000]), low_memory=True)
    lean, plain = (resources.training_peak(trainer, lm)[0] for lm in (True, False))
    lower = "--max_size (the memory grows with the square of the size)"
    assert asked == [(lean, "cpu", "training at 30 x 20 px (--max_size 30)", lower, "needs"),
                     (plain, "cpu", "training at 30 x 20 px (--max_size 30)", lower, "needs"),
                     (lean, "cpu", "training at 30 x 20 px", lower, "needs")]


class FakeModel:
    """What resources reads of a trained model."""

    def __init__(self, shapes, num_scales=None, work=1000, noise=50):
        import torch
        self.reals = [torch.zeros(1, 3, h, w) for h, w in shapes]
        self.num_scales = len(shapes) if num_scales is None else num_scales
        self.device, self.work, self.noise = "cpu", work, noise
        self.asked = []

    def drawing_bytes(self, num, scale_v=1.0, scale_h=1.0, batch=None):
        self.asked.append((num, scale_v, scale_h, batch))
        return self.work

    def noise_values(self):
        return self.noise


def test_scaled_shapes_round_and_never_vanish():
    model = FakeModel([(10, 20), (25, 40), (99, 99)], num_scales=2)
    assert resources.scaled_shapes(model) == [(10, 20), (25, 40)]
    assert resources.scaled_shapes(model, 0.5, 2.5) == [(5, 50), (12, 100)]
    assert resources.scaled_shapes(model, 0.01, 0.001) == [(1, 1), (1, 1)]
    assert resources.sample_shape(model, 2.0, 1.0) == (50, 40)
    three = FakeModel([(10, 20), (25, 40), (50, 80)])
    assert resources.sample_shape(three, 2.0, 0.5) == (100, 40)      # the finest level's


def test_with_outputs_keeps_the_outputs_twice():
    assert resources.with_outputs(1000, 5, (10, 20)) == 1000 + 2 * 4 * 5 * 3 * 10 * 20


def _asked(monkeypatch):
    asked = []
    monkeypatch.setattr(resources, "require_memory", lambda *a: asked.append(a))
    return asked


def test_check_samples_words(monkeypatch):
    asked = _asked(monkeypatch)
    model = FakeModel([(5, 10), (10, 20), (25, 40)])              # the finest is named
    resources.check_samples(model, 50)
    resources.check_samples(model, 7, 0.5, 2.0, batch=3)
    assert model.asked == [(50, 1.0, 1.0, None), (7, 0.5, 2.0, 3)]
    assert asked == [(1000, "cpu", "50 samples of 40 x 25 px", "--num_samples"),
                     (1000, "cpu", "7 samples at scale_v 0.5, scale_h 2 (80 x 12 px each)",
                      "--scale_h / --scale_v (or --num_samples)")]


def test_frames_bytes_from_its_parts():
    frames = 4 * 10 * 3 * 20 * 30
    assert resources.frames_bytes(20, 30, 10, noise_values=100) == \
        2 * frames + 2 * 4 * 11 * 100 + frames // 2
    default_noise = int(3 * 2.3 * 30 * 40)
    assert resources.frames_bytes(20, 30, 10) == 2 * frames + 2 * 4 * 11 * default_noise + \
        frames // 2


def test_frame_checks_words(monkeypatch):
    asked = _asked(monkeypatch)
    resources.check_frame_count(20, 30, 10, "cpu")
    model = FakeModel([(10, 20), (25, 40)], noise=77)
    resources.check_frames(model, 100)
    resources.check_frames(model, 3, batch=2)
    assert model.asked == [(8, 1.0, 1.0, 8), (2, 1.0, 1.0, 2)]
    assert asked == [
        (resources.frames_bytes(20, 30, 10), "cpu", "an animation of 10 frames of 30 x 20 px",
         "--num_frames", "needs"),
        (resources.frames_bytes(25, 40, 100, 77) + 1000, "cpu",
         "an animation of 100 frames of 40 x 25 px", "--num_frames", "needs"),
        (resources.frames_bytes(25, 40, 3, 77) + 1000, "cpu",
         "an animation of 3 frames of 40 x 25 px", "--num_frames", "needs")]


def test_injection_words(monkeypatch):
    asked = _asked(monkeypatch)
    model = FakeModel([(10, 20), (25, 40)])
    resources.check_injection(model)
    resources.check_injection(model, 3)
    assert model.asked == [(1, 1.0, 1.0, 8), (3, 1.0, 1.0, 8)]
    lower = "the number of outputs (or use a smaller model)"
    assert asked == [(1000, "cpu", "1 injected image of 40 x 25 px", lower, "needs"),
                     (1000, "cpu", "3 injected images of 40 x 25 px", lower, "need")]


def test_sr_bytes_from_its_parts(monkeypatch):
    # 10 x 20 by 4 in 2 steps: out ceil(40) + 1 = 41 x 81; step 2, previous int(41/2) + 1 = 21
    # x int(81/2) + 1 = 41
    expected = (resources.draw_bytes(1, 8, 41, 81) + 12 * (21 * 41 + 41 * 81) * 2
                + 8 * 4 * 3 * 41 * 81 + 2 * 4 * 3 * 41 * 81)
    assert resources.sr_bytes(10, 20, 8, 4.0, 2) == expected
    # in 4 steps each is 4 ** (1/4) = 1.414..: the previous step int(41 / 1.414) + 1 = 29 x
    # int(81 / 1.414) + 1 = 58
    assert resources.sr_bytes(10, 20, 8, 4.0, 4) == (
        resources.draw_bytes(1, 8, 41, 81) + 12 * (29 * 41 + 58 * 81) * 2
        + 8 * 4 * 3 * 41 * 81 + 4 * 4 * 3 * 41 * 81)
    asked = _asked(monkeypatch)
    resources.check_sr(10, 20, 8, 4.0, 2, "cpu")
    resources.check_sr(10, 20, 8, 2.5, 3, "cpu", pad=0)
    assert asked == [(expected, "cpu", "super-resolution by --sr_factor 4 (80 x 40 px)",
                      "--sr_factor (or the input's size, --max_size)", "needs"),
                     (resources.sr_bytes(10, 20, 8, 2.5, 3, 0), "cpu",
                      "super-resolution by --sr_factor 2.5 (50 x 25 px)",
                      "--sr_factor (or the input's size, --max_size)", "needs")]
    assert resources.sr_bytes(10, 20, 8, 2.5, 3, 0) != resources.sr_bytes(10, 20, 8, 2.5, 3)


def test_image_pixel_limit_follows_the_memory(monkeypatch):
    _free_on(monkeypatch, "cpu", 32_000)                 # images are decoded in RAM
    assert resources.image_pixel_limit() == int(32_000 * 0.9 / 32)
    assert resources.image_pixel_limit(100) == 100
    _free_on(monkeypatch, "cpu", 0)
    assert resources.image_pixel_limit() == 1
    _free_on(monkeypatch, "cpu", None)
    assert resources.image_pixel_limit() == 250_000_000
    assert resources.image_pixel_limit(77) == 77


def test_image_shape_reads_the_header_only(tmp_path):
    import numpy as np
    import imageio.v3 as iio
    iio.imwrite(tmp_path / "x.png", np.zeros((7, 11, 3), np.uint8))
    assert resources.image_shape(tmp_path / "x.png") == (7, 11)
    assert resources.image_shape(tmp_path / "missing.png") is None


def test_image_file_bytes():
    assert resources.image_file_bytes(10, 20) == int(3.2 * 200 + 1000)
