"""Generator and critic against the reference's architecture record (SPEC 4)."""
import json

import torch

from singan.checkpoint import load_torch
from singan.methods.singan.models import (Discriminator, Generator, channels_at_scale,
                                          generator_from_state_dict)


def test_state_dict_keys_shapes_and_sizes_match_reference(reference):
    record = json.loads((reference / "models" / "models.json").read_text())
    for s in record["per_scale"]:
        nfc, min_nfc = channels_at_scale(s["scale"])
        assert (nfc, min_nfc) == (s["nfc"], s["min_nfc"])
        for net, key, count in ((Generator(nfc, min_nfc), "G_state_dict", "G_params"),
                                (Discriminator(nfc, min_nfc), "D_state_dict", "D_params")):
            got = [(k, list(v.shape)) for k, v in net.state_dict().items()]
            assert got == [(k, list(shape)) for k, shape, _ in s[key]], (s["scale"], key)
            assert sum(p.numel() for p in net.parameters()) == s[count]
    assert record["total_G_params"] == sum(
        sum(p.numel() for p in Generator(*channels_at_scale(n)).parameters()) for n in range(10))


def test_channels_double_every_four_scales_up_to_128():
    assert [channels_at_scale(n)[0] for n in range(13)] == [32] * 4 + [64] * 4 + [128] * 5


def test_generator_is_residual_over_the_cropped_prev():
    g = Generator(32, 32).eval()
    z = torch.zeros(2, 3, 30, 40)
    prev = torch.randn(2, 3, 30, 40)
    with torch.no_grad():
        out = g(z, prev)
        body = g.tail(g.body(g.head(z)))
    assert out.shape == (2, 3, 20, 30)
    assert torch.allclose(out - body, prev[:, :, 5:25, 5:35])


def test_reference_netG_loads_as_is(reference):
    folder = reference / "tiny_model" / "TrainedModels" / "colusseum" / "scale_factor=0.750000,alpha=10"
    g = generator_from_state_dict(load_torch(folder / "2" / "netG.pth"))
    assert (g.nfc, g.min_nfc, g.num_layer) == (32, 32, 5)
    d = Discriminator(32, 32)
    d.load_state_dict(load_torch(folder / "2" / "netD.pth"))


def test_batchnorm_normalises_each_training_sample_as_if_alone():
    from singan.methods.singan.models import batchnorm_stats_from
    torch.manual_seed(0)
    single, batched = Generator(8, 8).train(), Generator(8, 8).train()
    batched.load_state_dict(single.state_dict())
    z, prev = torch.randn(3, 3, 20, 24), torch.randn(3, 3, 20, 24)
    one_by_one = torch.cat([single(z[i:i + 1], prev[i:i + 1]) for i in range(3)])
    assert torch.allclose(batched(z, prev), one_by_one, atol=1e-5)
    for a, b in zip(single.state_dict().values(), batched.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)   # running stats, in order
    # stats only from sample 1: the same as passing sample 1 alone
    with batchnorm_stats_from(batched, [1]):
        batched(z[:2], prev[:2])
    single(z[1:2], prev[1:2])
    for a, b in zip(single.state_dict().values(), batched.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)
