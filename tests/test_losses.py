"""SinGAN's losses (singan.losses) against their formulas, on inputs whose answers are known by
hand: the WGAN critic and generator losses, the reconstruction loss, and the gradient penalty
of a critic whose input gradient is known in closed form (arXiv 1905.01164 eq. 1-3; WGAN-GP,
Gulrajani et al. 2017, eq. 3)."""
import pytest
import torch

from singan.losses import (critic_loss, generator_adversarial_loss, gradient_penalty,
                           penalty_of, penalty_point, reconstruction_loss)


def test_critic_loss_is_the_fake_mean_minus_the_real_mean():
    d_real = torch.tensor([[1.0, 3.0], [5.0, 7.0]])      # mean 4
    d_fake = torch.tensor([[-2.0, 0.0, 8.0]])            # mean 2
    assert critic_loss(d_real, d_fake).item() == pytest.approx(2 - 4)
    assert critic_loss(d_fake, d_real).item() == pytest.approx(4 - 2)


def test_generator_loss_is_minus_the_fake_mean():
    assert generator_adversarial_loss(torch.tensor([1.0, 2.0, 6.0])).item() == pytest.approx(-3)


def test_reconstruction_loss_is_alpha_times_the_mean_squared_error():
    real = torch.zeros(1, 3, 2, 2)
    rec = torch.zeros(1, 3, 2, 2)
    rec[0, 0, 0, 0], rec[0, 1, 1, 1] = 2.0, -1.0          # squared errors 4 and 1 of 12 values
    assert reconstruction_loss(rec, real, 10.0).item() == pytest.approx(10 * 5 / 12)
    assert reconstruction_loss(real, real, 10.0).item() == 0


class LinearCritic(torch.nn.Module):
    """D(x) = sum over channels of w_c * x_c at each pixel: dD/dx = w at every pixel, whose
    norm over the channels is ||w||."""

    def __init__(self, w):
        super().__init__()
        self.w = torch.tensor(w).view(1, -1, 1, 1)

    def forward(self, x):
        return (self.w * x).sum(dim=1, keepdim=True)


@pytest.mark.parametrize("w, weight", [([3.0, 4.0, 0.0], 0.1), ([0.6, 0.0, 0.8], 2.0),
                                       ([1.0, 2.0, 2.0], 0.5)])
def test_gradient_penalty_of_a_critic_with_a_known_gradient(w, weight):
    """weight * (||w|| - 1)^2, whatever the images and the mixing coefficient."""
    real, fake = torch.rand(1, 3, 5, 6) * 2 - 1, torch.rand(1, 3, 5, 6) * 2 - 1
    norm = sum(v * v for v in w) ** 0.5
    gp = gradient_penalty(LinearCritic(w), real, fake, weight, torch.Generator().manual_seed(3))
    assert gp.item() == pytest.approx(weight * (norm - 1) ** 2, rel=1e-5)


def test_gradient_penalty_reaches_the_critics_weights():
    """The penalty keeps its graph (create_graph): its gradient with respect to w is
    weight * 2 (||w|| - 1) * w / ||w||."""
    critic = LinearCritic([3.0, 4.0, 0.0])
    critic.w.requires_grad_(True)
    gp = gradient_penalty(critic, torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4), 0.1)
    gp.backward()
    expected = 0.1 * 2 * (5 - 1) * torch.tensor([3.0, 4.0, 0.0]) / 5
    assert torch.allclose(critic.w.grad.view(-1), expected, rtol=1e-5)


def test_penalty_of_takes_the_norm_over_channels_then_the_mean_over_pixels():
    grad = torch.zeros(1, 2, 1, 2)
    grad[0, :, 0, 0] = torch.tensor([3.0, 4.0])          # norm 5: (5 - 1)^2 = 16
    grad[0, :, 0, 1] = torch.tensor([0.0, 1.0])          # norm 1: 0
    assert penalty_of(grad, 0.5).item() == pytest.approx(0.5 * (16 + 0) / 2)


def test_penalty_point_mixes_real_and_fake_by_one_uniform_draw():
    real, fake = torch.full((1, 3, 2, 2), 1.0), torch.full((1, 3, 2, 2), -1.0)
    a = torch.rand(1, 1, 1, 1, generator=torch.Generator().manual_seed(7)).item()
    x = penalty_point(real, fake, torch.Generator().manual_seed(7))
    assert torch.allclose(x, torch.full_like(x, a * 1 + (1 - a) * -1))
    fake.requires_grad_(True)
    assert not penalty_point(real, fake * 1, torch.Generator()).requires_grad   # detached


def test_penalty_point_draws_its_coefficient_on_the_images_device():
    """x lives where the images live: on the 'meta' device (shapes without data, a device
    other than the CPU that every machine has) a coefficient drawn on the CPU could not be
    mixed with the images at all."""
    real, fake = torch.zeros(2, 3, 4, 5, device="meta"), torch.zeros(2, 3, 4, 5, device="meta")
    x = penalty_point(real, fake)
    assert x.device.type == "meta" and x.shape == (2, 3, 4, 5)
