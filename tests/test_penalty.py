"""methods/singan/penalty.py: the lean step's hand-written double backward of the gradient penalty gives
exactly autograd's gradients (gp.backward()), the same draw and the same BatchNorm update."""
import copy

import pytest
import torch

from singan.losses import gradient_penalty
from singan.methods.singan.models import BatchNorm2d, Discriminator
from singan.methods.singan.penalty import critic_input_gradient, penalty_gradients, supports


def _critic(nfc, min_nfc, seed):
    torch.manual_seed(seed)
    D = Discriminator(nfc, min_nfc)
    for m in D.modules():       # SinGAN's init, with non-trivial BatchNorm weights and biases
        if isinstance(m, torch.nn.Conv2d):
            m.weight.data.normal_(0, 0.02)
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.normal_(1, 0.02)
            m.bias.data.normal_(0, 0.02)
    return D


def same_bits(a, b) -> bool:
    """Equal bit for bit, as the module promises: torch.equal counts -0.0 equal to +0.0, the
    sign of a zero is compared too (the module adds autograd's received zeros for it)."""
    return a.dtype == b.dtype and torch.equal(a.view(torch.int32), b.view(torch.int32))


@pytest.mark.parametrize("nfc, min_nfc, h, w", [(32, 32, 30, 40), (64, 32, 25, 33),
                                                (16, 16, 12, 12), (8, 8, 40, 21)])
def test_penalty_gradients_equal_autograds(nfc, min_nfc, h, w):
    D = _critic(nfc, min_nfc, h * w)
    assert supports(D)
    real, fake = torch.randn(1, 3, h, w), torch.randn(1, 3, h, w)
    D2 = copy.deepcopy(D)
    gp = gradient_penalty(D, real, fake, 0.1, torch.Generator().manual_seed(3))
    gp.backward()
    gp2, grads = penalty_gradients(D2, real, fake, 0.1, torch.Generator().manual_seed(3))
    assert same_bits(gp.detach(), gp2)
    for (name, q), g in zip(D.named_parameters(), grads):
        if q.grad is None:             # the tail's bias: the penalty does not depend on it
            assert g is None, name
        else:
            assert same_bits(q.grad, g), name
    assert D.tail.bias.grad is None
    for (name, a), b in zip(D.state_dict().items(), D2.state_dict().values()):
        assert torch.equal(a, b), name   # running statistics updated once, the same way


def test_supports_only_singans_critic():
    assert supports(_critic(8, 8, 0))
    assert not supports(torch.nn.Sequential(torch.nn.Conv2d(3, 1, 3)))


def test_penalty_gradients_are_laid_out_like_their_parameters():
    """The optimiser reads a gradient as laid out like its parameter (autograd's
    AccumulateGrad guarantees it; the double backward's weight gradients come transposed)."""
    D = _critic(8, 8, 1)
    _, grads = penalty_gradients(D, torch.randn(1, 3, 20, 20), torch.randn(1, 3, 20, 20), 0.1)
    for q, g in zip(D.parameters(), grads):
        assert g is None or g.stride() == q.stride()


def test_critic_input_gradient_equals_autograds():
    """The G step's pass through the frozen critic: the same loss and gradient into G's
    output as backward through D's graph, and the same BatchNorm update."""
    from singan.losses import generator_adversarial_loss
    D = _critic(16, 16, 2).requires_grad_(False)
    D2 = copy.deepcopy(D)
    x = torch.randn(1, 3, 26, 31, requires_grad=True)
    loss = generator_adversarial_loss(D(x))
    loss.backward()
    loss2, grad = critic_input_gradient(D2, x, generator_adversarial_loss)
    assert same_bits(loss.detach(), loss2)
    assert same_bits(x.grad, grad)
    for (name, a), b in zip(D.state_dict().items(), D2.state_dict().values()):
        assert torch.equal(a, b), name


def _altered(change):
    """SinGAN's critic with one thing the hand-written passes do not handle."""
    D = _critic(8, 8, 5)
    change(D)
    return D


@pytest.mark.parametrize("what, change", [
    ("plain BatchNorm", lambda D: setattr(D.body[0], "norm", torch.nn.BatchNorm2d(8))),
    ("BatchNorm without weights", lambda D: setattr(D.body[1], "norm",
                                                    BatchNorm2d(8, affine=False))),
    ("LeakyReLU not in place", lambda D: setattr(D.head, "LeakyRelu",
                                                 torch.nn.LeakyReLU(0.2))),
    ("a conv without bias", lambda D: setattr(D.body[2], "conv",
                                              torch.nn.Conv2d(8, 8, 3, bias=False))),
    ("a grouped conv", lambda D: setattr(D.body[0], "conv", torch.nn.Conv2d(8, 8, 3, groups=2))),
    ("a tail that is no conv", lambda D: setattr(D, "tail", torch.nn.Identity())),
    ("no tail", lambda D: delattr(D, "tail")),
    ("no head", lambda D: setattr(D, "head", None)),
    ("no body", lambda D: setattr(D, "body", None)),
    ("a body block of another kind", lambda D: D.body.__setitem__(
        0, torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3)))),
])
def test_supports_refuses_each_thing_the_lean_passes_do_not_handle(what, change):
    assert supports(_critic(8, 8, 5))
    assert not supports(_altered(change)), what
