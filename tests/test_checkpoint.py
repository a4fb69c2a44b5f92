"""Checkpoints: round trips through the real code path, and damaged files."""
import torch
import pytest

from singan import load_model
from singan.checkpoint import CHECKPOINT_NAME, load_torch, save_torch
from singan.errors import SinGANError
from singan.methods.singan.models import Discriminator, Generator, init_weights
from singan.methods.singan.reference import recover_scale_factor
from singan.methods.singan.model import TrainedPyramid, checkpoint_dict


def _random_pyramid(seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = [(12, 16), (15, 20), (19, 25)]
    gens, discs = [], []
    for _ in shapes:
        G, D = Generator(8, 8), Discriminator(8, 8)
        init_weights(G, g), init_weights(D, g)
        gens.append(G), discs.append(D)
    z_opt = [torch.randn(1, 3, h + 10, w + 10, generator=g) for h, w in shapes]
    reals = [torch.rand(1, 3, h, w, generator=g) * 2 - 1 for h, w in shapes]
    return TrainedPyramid(gens, z_opt, [1.0, 0.05, 0.04], reals, 0.8), discs


def test_round_trip_through_model_folder(tmp_path):
    pyramid, discs = _random_pyramid()
    save_torch(tmp_path / CHECKPOINT_NAME,
               checkpoint_dict(pyramid, discs, {"num_layer": 5, "ker_size": 3}, {}, {}))
    raw = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)   # plain data only
    assert raw["format_version"] == 2 and raw["method"] == "singan"
    loaded = load_model(tmp_path)
    assert loaded.num_scales == 3 and loaded.scale_factor == 0.8
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(pyramid.sample(2, generator=g1), loaded.sample(2, generator=g2))
    for a, b in zip(pyramid.generators, loaded.generators):
        for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
            assert ka == kb and torch.equal(va, vb)


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path):
    save_torch(tmp_path / "x.pth", {"a": torch.ones(3)})
    save_torch(tmp_path / "x.pth", {"a": torch.zeros(3)})
    assert [p.name for p in tmp_path.iterdir()] == ["x.pth"]
    assert torch.equal(load_torch(tmp_path / "x.pth")["a"], torch.zeros(3))


@pytest.mark.parametrize("content, words", [
    (b"", "empty"),
    (b"PK\x03\x04 truncated zip", "not a readable"),
    (b"hello, I am not a checkpoint", "not a readable"),
])
def test_damaged_checkpoint_gives_a_clear_error(tmp_path, content, words):
    (tmp_path / CHECKPOINT_NAME).write_bytes(content)
    with pytest.raises(SinGANError, match=words) as err:
        load_model(tmp_path)
    assert CHECKPOINT_NAME in str(err.value)


def test_truncated_checkpoint_gives_a_clear_error(tmp_path):
    pyramid, discs = _random_pyramid()
    save_torch(tmp_path / CHECKPOINT_NAME, checkpoint_dict(pyramid, discs, {}, {}, {}))
    data = (tmp_path / CHECKPOINT_NAME).read_bytes()
    (tmp_path / CHECKPOINT_NAME).write_bytes(data[: len(data) // 2])
    with pytest.raises(SinGANError, match="not a readable"):
        load_model(tmp_path)


def test_pickled_code_is_never_executed(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    torch.save({"format_version": 1, "x": Evil()}, tmp_path / CHECKPOINT_NAME)
    with pytest.raises(SinGANError, match="not a readable"):
        load_model(tmp_path)


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(SinGANError, match="not found"):
        load_model(tmp_path / "nope")
    with pytest.raises(SinGANError, match="holds no trained model"):
        load_model(tmp_path)


def test_incomplete_reference_folder(tmp_path, reference):
    src = reference / "tiny_model" / "TrainedModels" / "colusseum" / "scale_factor=0.750000,alpha=10"
    for name in ("Zs.pth", "NoiseAmp.pth", "reals.pth"):
        (tmp_path / name).write_bytes((src / name).read_bytes())
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / "netG.pth").write_bytes((src / "0" / "netG.pth").read_bytes())
    with pytest.raises(SinGANError, match="missing file"):
        load_model(tmp_path)


def test_scale_factor_recovery_from_shapes():
    # 31 x 40 with min_size 19 over 2 steps: factor (19 / 31) ** 0.5 = 0.78288..
    assert recover_scale_factor([(19, 25), (25, 32), (31, 40)]) == pytest.approx(
        (19 / 31) ** 0.5, abs=1e-15)
    with pytest.raises(SinGANError, match="cannot recover"):
        recover_scale_factor([(10, 10), (25, 32), (31, 40)])
