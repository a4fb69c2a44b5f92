"""SinGAN's losses as small pure functions (arXiv 1905.01164, section 2.2, eq. 1-3)."""
import torch
import torch.nn.functional as F


def critic_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """WGAN critic loss: -E[D(x)] + E[D(G(z))] (the critic maximises the difference)."""
    return -d_real.mean() + d_fake.mean()


def generator_adversarial_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """WGAN generator loss: -E[D(G(z))]."""
    return -d_fake.mean()


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, weight: float,
                     generator: torch.Generator = None) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017), as the reference computes it:

        x  = a * real + (1 - a) * fake,  one a ~ U(0, 1) for the whole image
        gp = weight * mean over pixels of (|| dD(x)/dx ||_2 over channels - 1)^2

    The graph is kept (create_graph) so that gp.backward() reaches the critic's weights
    (methods/singan/penalty.py computes the same gradients layer by layer, from the same two helpers).
    """
    x = penalty_point(real, fake, generator).requires_grad_(True)
    d_x = critic(x)
    (grad,) = torch.autograd.grad(d_x, x, torch.ones_like(d_x), create_graph=True)
    return penalty_of(grad, weight)


def penalty_point(real: torch.Tensor, fake: torch.Tensor,
                  generator: torch.Generator = None) -> torch.Tensor:
    """The penalty's x = a * real + (1 - a) * fake, one a ~ U(0, 1) drawn from `generator`."""
    a = torch.rand(1, 1, 1, 1, device=real.device, generator=generator)
    return a * real + (1 - a) * fake.detach()


def penalty_of(grad: torch.Tensor, weight: float) -> torch.Tensor:
    """weight * mean over pixels of (|| grad ||_2 over channels - 1)^2, grad = dD(x)/dx."""
    return weight * ((grad.norm(2, dim=1) - 1) ** 2).mean()


def reconstruction_loss(reconstruction: torch.Tensor, real: torch.Tensor, alpha: float):
    """alpha * || G(z_opt, prev_rec) - x_n ||^2, as a mean over pixels (eq. 3)."""
    return alpha * F.mse_loss(reconstruction, real)
