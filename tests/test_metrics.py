"""The paper's diversity measure and SIFID scoring of samples."""
import pytest
import torch

from singan.metrics import diversity, sifid_scores


def test_diversity_of_identical_samples_is_zero_and_scales_with_spread():
    real = torch.linspace(-1, 1, 3 * 8 * 8).reshape(1, 3, 8, 8)
    same = real.expand(4, -1, -1, -1)
    assert diversity(same, real) == 0.0
    # two samples at real +- d: per-pixel std (unbiased, n = 2) is d * sqrt(2)
    d = 0.1
    pair = torch.cat([real + d, real - d])
    assert diversity(pair, real) == pytest.approx(d * 2 ** 0.5 / float(real.std()), rel=1e-5)
    with pytest.raises(ValueError):
        diversity(real, real)


@pytest.fixture(scope="module")
def random_inception(tmp_path_factory):
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    net = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=True)
    path = tmp_path_factory.mktemp("w") / "inception.pth"
    torch.save(net.state_dict(), path)
    return path


def test_sifid_scores_samples_against_the_training_image(random_inception):
    g = torch.Generator().manual_seed(0)
    real = torch.rand(1, 3, 40, 48, generator=g) * 2 - 1
    samples = torch.cat([real, torch.rand(1, 3, 40, 48, generator=g) * 0.2 - 0.1])
    label, values = sifid_scores(samples, real, str(random_inception))
    assert label == "SIFID" and len(values) == 2
    assert abs(values[0]) < 1e-6 < values[1]
