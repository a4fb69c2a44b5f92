"""The lean training step's passes through SinGAN's critic (train.py's ScaleTrainer,
low_memory), one layer at a time: the gradient penalty's gradients by a hand-written,
block-wise double backward (penalty_gradients), and the G steps' gradient into G's output
through the frozen critic (critic_input_gradient, sweeps A and B below).

    gp = weight * mean((|| dD(x)/dx ||_2 over channels - 1)^2),  x = a real + (1 - a) fake

autograd's `gp.backward()` keeps the critic's forward activations, its first backward's
(create_graph) and the double backward's temporaries alive at once: about 25 images of the
critic's width at the finest scale, the peak of the whole training step. Here the same
computation runs one layer at a time, in four sweeps, keeping per block only its conv output
c_k (the block's other activations are recomputed from it: BatchNorm and LeakyReLU are cheap)
and the first backward's gradient at its input g_k:

    A  forward, x_0 -> c_0 -> x_1 -> ... -> c_{B-1} -> x_B -> D(x)   (BatchNorm's running
       statistics updated here, once, as in D(x); the recomputations leave them alone)
    B  the first backward, down: g_B = dD/dx_B, ..., g_0 = dD/dx (the penalty's input)
    C  the double backward of the first backward, up: the adjoint of g_k, into the weights
       (conv and BatchNorm weight) and into each conv output c_k (kept for D)
    D  the double backward through the forward, down: each block's adjoint at c_k is its
       part from C plus its part from above, then into the conv's weight, bias and input

Every local gradient is the kernel autograd's engine would call for that node, with the same
inputs (convolution_backward, _convolution_double_backward, leaky_relu_backward, and
BatchNorm's own backward and double backward through a one-node local graph), and every
tensor that receives two contributions sums them as the engine does (a sum of two is exact
in either order; a received zero is added, so that a -0.0 becomes +0.0 there too). So the
gradients are bit-identical to `gp.backward()`'s (tests/test_penalty.py checks it).
"""
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F

from ...losses import penalty_of, penalty_point
from .models import BatchNorm2d, ConvBlock, batchnorm_stats_from

aten = torch.ops.aten


def supports(critic) -> bool:
    """Whether `critic` is built as penalty_gradients expects: ConvBlocks (Conv2d, SinGAN's
    BatchNorm2d, in-place LeakyReLU) and a Conv2d tail."""
    blocks = _blocks(critic)
    return (blocks is not None and all(
        isinstance(b, ConvBlock) and isinstance(b.norm, BatchNorm2d) and b.norm.affine
        and b.LeakyRelu.inplace and b.conv.bias is not None and b.conv.groups == 1
        for b in blocks) and isinstance(getattr(critic, "tail", None), torch.nn.Conv2d))


def _blocks(critic) -> Optional[list]:
    head, body = getattr(critic, "head", None), getattr(critic, "body", None)
    if head is None or body is None:
        return None
    return [head, *body]


def _conv_args(conv):
    return (list(conv.stride), list(conv.padding), list(conv.dilation), False, [0, 0],
            conv.groups)


def _conv_vjp(conv, grad, x, mask):
    """ConvolutionBackward0's call: (d input, d weight, d bias) of conv at x for `grad`."""
    return aten.convolution_backward(grad, x, conv.weight, [conv.out_channels],
                                     *_conv_args(conv), mask)


def _slope(block) -> float:
    return block.LeakyRelu.negative_slope


def _activation(block, c):
    """x_{k+1} = LeakyReLU(BatchNorm(c_k)), recomputed without touching running stats."""
    with torch.no_grad(), batchnorm_stats_from(block, []):
        return F.leaky_relu(block.norm(c), _slope(block))


def _norm_graph(block, c):
    """BatchNorm's forward at c_k (running statistics untouched) as a one-node graph: (c leaf,
    output)."""
    leaf = c.detach().requires_grad_(True)
    with torch.enable_grad(), batchnorm_stats_from(block, []):
        return leaf, block.norm(leaf)


def _sum_but_channels(t, keepdim=True):
    """The reduction BatchNorm's double backward uses: over dim 0, then the last dims one by
    one from the end (the order matters for the bits)."""
    r = t.sum(0, keepdim=keepdim)
    for dim in range(r.dim() - 1, 1 if keepdim else 0, -1):
        r = r.sum(dim, keepdim=keepdim)
    return r


def _norm_double_backward(gamma, c, mean, invstd, grad_out, adj):
    """BatchNorm's (training mode) double backward, given the adjoint `adj` of the first
    backward's input gradient: (d grad_out, d c, d gamma), the arithmetic of torch's
    batchnorm_double_backward (FunctionsManual.cpp) op for op, in the same order, so bit
    for bit; but computed in place where it can, with 3 full-size temporaries instead of
    about 8. gamma, mean and invstd are per channel; c, grad_out and adj [N, C, H, W]."""
    C = c.shape[1]
    M = c.numel() // C
    shape = (1, C) + (1,) * (c.dim() - 2)
    mu, s12 = mean.view(shape), invstd.view(shape)
    s1, s32 = s12.pow(2), s12.pow(3)
    centred = c - mu                                                     # full 1
    go_c_sum = _sum_but_channels(grad_out * centred)
    go_sum = _sum_but_channels(grad_out)
    adj_sum = _sum_but_channels(adj)
    adj_c_sum = _sum_but_channels(adj * centred)
    all_sub = ((adj_sum * go_sum).div_(M)).sub_(_sum_but_channels(grad_out * adj)).add_(
        (s1 * go_c_sum * adj_c_sum).mul_(3. / M))
    d_c = (centred * s32).mul_(all_sub).div_(M)                           # full 2: gI_0t
    t = (go_sum.div(M) - grad_out).mul_((adj_c_sum * s32).div_(M))          # full 3: gI_1t
    d_c.add_(t)
    t = torch.sub(adj_sum.div(M), adj, out=t).mul_((go_c_sum * s32).div_(M))   # gI_2t
    d_c.add_(t).mul_(gamma.view(shape))

    def first_back(g, g_sum, g_c_sum, h0, out):
        """The first backward's input gradient for g (h0 the per-channel factor)."""
        h1 = torch.mul(g, M, out=out).sub_(g_sum)
        h1.sub_(centred.mul(s1).mul_(g_c_sum))
        return h1.mul_(h0)

    ones = torch.ones((), dtype=s12.dtype, device=s12.device)
    t = first_back(grad_out, go_sum, go_c_sum, (ones * s12).div_(M), t).mul_(adj)
    d_gamma = _sum_but_channels(t, keepdim=False)
    d_grad_out = first_back(adj, adj_sum, adj_c_sum, (gamma.view(shape) * s12).div_(M), t)
    return d_grad_out, d_c, d_gamma


def _forward(blocks, tail, x0):
    """The critic's forward at x0, updating BatchNorm's running statistics as D(x0) does:
    (each block's conv output c_k, D(x0))."""
    with torch.no_grad():
        convs, x = [], x0
        for block in blocks:
            c = block.conv(x)
            convs.append(c)
            x = block.LeakyRelu(block.norm(c))
        return convs, tail(x)


def _input_gradients(blocks, tail, convs, x0, grad_out, keep: bool):
    """The critic's first backward, down from grad_out = dL/dD(x0): g[k] = dL/dx_k for every
    block input (keep) or only g[0] = dL/dx0, the others (and the conv outputs) freed as soon
    as they are used."""
    n = len(blocks)
    with torch.no_grad():
        x_above = _activation(blocks[-1], convs[-1])                 # x_n
        g = [None] * (n + 1)
        g[n] = _conv_vjp(tail, grad_out, x_above, [True, False, False])[0]
        for k in range(n - 1, -1, -1):
            block = blocks[k]
            grad_norm = aten.leaky_relu_backward(g[k + 1], x_above, _slope(block), True)
            x_above = None
            if not keep:
                g[k + 1] = None
            leaf, out = _norm_graph(block, convs[k])
            if not keep:
                convs[k] = None
            (grad_conv,) = torch.autograd.grad(out, leaf, grad_norm)
            del leaf, out, grad_norm
            below = x0 if k == 0 else _activation(blocks[k - 1], convs[k - 1])   # x_k
            g[k] = _conv_vjp(block.conv, grad_conv, below, [True, False, False])[0]
            del grad_conv
            x_above, below = below, None
    return g


def critic_input_gradient(critic, x: torch.Tensor, loss_fn):
    """(loss_fn(critic(x)), its gradient with respect to x) with the critic's weights frozen,
    as autograd gives them through loss_fn(critic(x)).backward() into x, bit for bit, keeping
    one conv output per block instead of the critic's graph (the lean G step's adversarial
    term: G's graph stays alive meanwhile)."""
    blocks, tail = _blocks(critic), critic.tail
    x = x.detach()
    convs, out = _forward(blocks, tail, x)
    leaf = out.requires_grad_(True)
    with torch.enable_grad():
        loss = loss_fn(leaf)
        (grad_out,) = torch.autograd.grad(loss, leaf)
    del leaf, out
    return loss.detach(), _input_gradients(blocks, tail, convs, x, grad_out, keep=False)[0]


def penalty_gradients(critic, real: torch.Tensor, fake: torch.Tensor, weight: float,
                      generator: torch.Generator = None
                      ) -> Tuple[torch.Tensor, List[Optional[torch.Tensor]]]:
    """(gp, the gradient of gp for each of critic.parameters(), None where it has none), as
    singan.losses.gradient_penalty(...) followed by gp.backward() gives them, bit for bit,
    with the same draw from `generator` and the same update of the running statistics."""
    blocks, tail = _blocks(critic), critic.tail
    n = len(blocks)
    x0 = penalty_point(real, fake, generator)
    # A: the forward, keeping each block's conv output c_k; B: the first backward, down,
    # keeping g[k] = dD/dx_k (g[n] at the tail's input)
    convs, out = _forward(blocks, tail, x0)
    ones = torch.ones_like(out)
    del out
    g = _input_gradients(blocks, tail, convs, x0, ones, keep=True)
    with torch.no_grad():
        # the penalty and its gradient at g_0
        with torch.enable_grad():
            g0 = g[0].requires_grad_(True)
            gp = penalty_of(g0, weight)
            (adj,) = torch.autograd.grad(gp, g0)
        g[0] = None
        del g0

        # C: the double backward of the first backward, up
        grads = {}                      # parameter -> its part from C
        conv_adj = [None] * n            # the part from C of each c_k's adjoint
        x_here = x0
        for k, block in enumerate(blocks):
            x_next = _activation(block, convs[k])
            grad_norm = aten.leaky_relu_backward(g[k + 1], x_next, _slope(block), True)
            g[k + 1] = x_next = None                 # x_{k+1} is recomputed below
            leaf, out = _norm_graph(block, convs[k])
            stats = out.grad_fn._saved_result1, out.grad_fn._saved_result2   # mean, 1/std
            (grad_conv,) = torch.autograd.grad(out, leaf, grad_norm)
            del out, leaf
            adj_gc, _, grads[block.conv.weight] = aten._convolution_double_backward(
                adj, None, None, grad_conv, block.conv.weight, x_here,
                *_conv_args(block.conv), [True, True, True])
            del grad_conv, adj, x_here
            adj_norm, conv_adj[k], grads[block.norm.weight] = _norm_double_backward(
                block.norm.weight, convs[k], *stats, grad_norm, adj_gc)
            del grad_norm, adj_gc, stats
            x_here = _activation(block, convs[k])
            adj = aten.leaky_relu_backward(adj_norm, x_here, _slope(block), False)
            del adj_norm
        _, _, grads[tail.weight] = aten._convolution_double_backward(
            adj, None, None, ones, tail.weight, x_here, *_conv_args(tail), [False, True, True])
        del adj

        # D: down through the forward. x_n's adjoint: the zero from block n-1's
        # leaky_relu_backward (the tail's double backward gives its input nothing)
        x_above = x_here
        adj_x = torch.zeros_like(x_above)
        for k in range(n - 1, -1, -1):
            block = blocks[k]
            below = x0 if k == 0 else _activation(blocks[k - 1], convs[k - 1])
            adj_b = aten.leaky_relu_backward(adj_x, x_above, _slope(block), True)
            del adj_x
            leaf, out = _norm_graph(block, convs[k])
            adj_c, d_gamma, d_beta = torch.autograd.grad(
                out, [leaf, block.norm.weight, block.norm.bias], adj_b)
            del leaf, out, adj_b
            adj_c = conv_adj[k] + adj_c
            conv_adj[k] = convs[k] = None
            adj_x, d_w, d_bias = _conv_vjp(block.conv, adj_c, below, [True, True, True])
            del adj_c
            grads[block.conv.weight] = grads[block.conv.weight] + d_w
            grads[block.norm.weight] = grads[block.norm.weight] + d_gamma
            grads[block.norm.bias] = d_beta
            grads[block.conv.bias] = d_bias
            if k > 0:
                adj_x = adj_x + 0.0    # the zero from block k-1's leaky_relu_backward
            x_above = below
    return gp.detach(), [_like(q, grads.get(q)) for q in critic.parameters()]


def _like(param, grad):
    """grad in its parameter's layout, as autograd's AccumulateGrad leaves it (the double
    backward's weight gradients come transposed in memory; the optimiser reads .grad as laid
    out like the parameter)."""
    if grad is None or grad.stride() == param.stride():
        return grad
    return torch.empty_like(param).copy_(grad)
