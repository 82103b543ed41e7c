"""IF dynamics and surrogate gradients against values worked out by hand."""
import math

import pytest
import torch

from kdsnn import if_kernels
from kdsnn.errors import KdsnnError
from kdsnn.neurons import IFNeuron, IFParams, if_multistep
from kdsnn.surrogate import spike


def run(x, **kw):
    seq = torch.tensor(x).view(-1, 1)
    s, v = if_multistep(seq, IFParams(**kw))
    return s.view(-1).tolist(), float(v)


def test_hard_reset_by_hand():
    # v: 0.6, 1.2 → spike, reset 0, 0.6, 2.1 → spike, reset 0, -0.2
    spikes, v = run([0.6, 0.6, 0.6, 1.5, -0.2])
    assert spikes == [0, 1, 0, 1, 0]
    assert v == pytest.approx(-0.2)


def test_soft_reset_by_hand():
    # v: 0.6, 1.2 → spike, 0.2; 0.8; 2.3 → spike, 1.3; 1.1 → spike, 0.1
    spikes, v = run([0.6, 0.6, 0.6, 1.5, -0.2], reset="soft")
    assert spikes == [0, 1, 0, 1, 1]
    assert v == pytest.approx(0.1, abs=1e-6)


def test_threshold_is_strict_and_configurable():
    assert run([1.0, 0.0])[0] == [0, 0]          # v = θ exactly does not fire
    assert run([1.0, 1e-6])[0] == [0, 1]
    assert run([0.3, 0.3, 0.3], threshold=0.5)[0] == [0, 1, 0]  # 0.3, 0.6 → spike → 0, 0.3


def test_nonzero_v_reset():
    spikes, v = run([2.0, 0.0], v_reset=0.25)
    assert spikes == [1, 0] and v == pytest.approx(0.25)


def test_single_step_streaming_matches_multistep():
    torch.manual_seed(0)
    x = torch.rand(6, 3, 5) * 1.5
    neuron = IFNeuron()
    full = neuron(x)
    v = None
    steps = []
    for t in range(6):
        s, v = neuron.step(x[t], v)
        steps.append(s)
    assert torch.equal(torch.stack(steps), full)


@pytest.mark.parametrize("name,param,x,expected", [
    ("sigmoid", 4.0, 0.0, 1.0),                                            # 4·σ(0)·(1−σ(0)) = 4·¼
    ("sigmoid", 4.0, 0.5, 4 * (1 / (1 + math.exp(-2))) * (1 - 1 / (1 + math.exp(-2)))),
    ("arctan", 2.0, 0.0, 1.0),                                             # α/2
    ("arctan", 2.0, 0.5, 1 / (1 + (math.pi / 2) ** 2)),                    # 1/(1+(π/2·2·0.5)²)
    ("rectangular", 1.0, 0.3, 1.0),                                        # |x| < ½ → 1/width
    ("rectangular", 1.0, 0.6, 0.0),
    ("rectangular", 0.5, 0.2, 2.0),
])
def test_surrogate_gradients(name, param, x, expected):
    xt = torch.tensor([x], requires_grad=True)
    out = spike(xt, name, param)
    assert out.item() == float(x > 0)
    out.sum().backward()
    assert xt.grad.item() == pytest.approx(expected, rel=1e-5)


def test_detach_reset_changes_gradient_only():
    x = torch.tensor([[0.7], [0.7], [0.7]], requires_grad=True)
    s1, _ = if_multistep(x, IFParams())
    s1.sum().backward()
    g1 = x.grad.clone()
    x.grad = None
    s2, _ = if_multistep(x, IFParams(detach_reset=True))
    s2.sum().backward()
    assert torch.equal(s1, s2)
    assert not torch.allclose(g1, x.grad)


def test_bad_params():
    with pytest.raises(KdsnnError, match="reset"):
        IFParams(reset="partial")
    with pytest.raises(KdsnnError, match="surrogate"):
        IFParams(surrogate="erf")


@pytest.mark.parametrize("reset", ["hard", "soft"])
@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("surrogate", ["sigmoid", "arctan", "rectangular"])
def test_fused_multistep_matches_step_by_step_autograd(reset, detach, surrogate):
    """The fused training path against autograd through :func:`if_step` (a second method)."""
    p = IFParams(reset=reset, detach_reset=detach, surrogate=surrogate)
    torch.manual_seed(1)
    x = (torch.rand(5, 4, 7) * 1.6 - 0.2).requires_grad_()
    w = torch.randn(5, 4, 7)
    s_ref, _ = if_multistep(x, p)
    (s_ref * w).sum().backward()
    g_ref = x.grad.clone()
    x.grad = None
    s = IFNeuron(p)(x)
    (s * w).sum().backward()
    assert torch.equal(s, s_ref)
    assert torch.allclose(x.grad, g_ref, atol=1e-6)


@pytest.mark.parametrize("reset,detach", [("hard", False), ("hard", True), ("soft", False), ("soft", True)])
def test_cpu_and_cuda_backward_strategies_agree(reset, detach):
    """The CUDA strategy (whole sequence at once) runs on any device: hold it to the CPU one
    and to autograd through if_step, so CI checks the code a GPU run takes."""
    from kdsnn.neurons import _backward_step_buffers, _backward_whole_sequence

    p = IFParams(reset=reset, detach_reset=detach)
    torch.manual_seed(2)
    x = (torch.rand(4, 3, 6) * 1.6 - 0.2).requires_grad_()
    w = torch.randn(4, 3, 6)
    s_ref, _ = if_multistep(x, p)
    (s_ref * w).sum().backward()
    # rebuild the saved tensors of the fused forward: pre-reset membranes and spikes
    h, v, hs = None, torch.zeros(3, 6), []
    for t in range(4):
        h = v + x.detach()[t]
        hs.append(h)
        fired = h > p.threshold
        v = torch.where(fired, torch.tensor(p.v_reset), h) if reset == "hard" else h - p.threshold * fired
    h_all, s_all = torch.stack(hs), s_ref.detach()
    a = _backward_step_buffers(h_all, s_all, w, p, 4.0)
    b = _backward_whole_sequence(h_all.clone(), s_all, w, p, 4.0)
    c = if_kernels.if_backward(h_all, w, p.threshold, reset == "hard", p.v_reset, detach, "sigmoid", 4.0)
    d = if_kernels.if_backward(h_all, w, p.threshold, reset == "hard", p.v_reset, detach, "sigmoid", 4.0, summed=True)
    assert torch.allclose(a, x.grad, atol=1e-6) and torch.allclose(b, x.grad, atol=1e-6)
    assert torch.allclose(c, x.grad, atol=1e-6) and torch.allclose(d, x.grad.sum(0), atol=1e-6)


@pytest.mark.parametrize("surrogate,reset,detach", [("sigmoid", "hard", False), ("arctan", "soft", False),
                                                     ("rectangular", "hard", True), ("sigmoid", "soft", True)])
@pytest.mark.parametrize("static", [False, True])
def test_compiled_kernels_on_channels_last_maps_split_over_threads(surrogate, reset, detach, static):
    """The compiled CPU path on what training feeds it: channels-last [T, B, C, H, W] maps large
    enough to be split over two threads at a tile boundary, or one map expanded over T (direct
    encoding), θ and v_reset off their defaults. Against autograd through if_step."""
    p = IFParams(threshold=0.7, v_reset=-0.2, reset=reset, detach_reset=detach, surrogate=surrogate)
    torch.manual_seed(3)
    t, shape = 4, (3, 5, 97, 91)  # 132,405 neurons per step: two threads, an uneven last tile
    if static:
        base = (torch.rand(shape) * 1.2 - 0.2).contiguous(memory_format=torch.channels_last)
        x_ref = base.unsqueeze(0).expand(t, *shape).clone().requires_grad_()
        x = base.clone().contiguous(memory_format=torch.channels_last).requires_grad_()
        x_seq = x.unsqueeze(0).expand(t, *shape)
        s_static = IFNeuron(p)(x, t)  # the gradient summed over steps inside the node
        (s_static * w_of(t, shape)).sum().backward()
        grad_static, x.grad = x.grad.clone(), None
    else:
        flat = (torch.rand(t * shape[0], *shape[1:]) * 1.2 - 0.2).contiguous(memory_format=torch.channels_last)
        x_ref = flat.view(t, *shape).detach().clone().requires_grad_()
        x = flat.requires_grad_()
        x_seq = x.view(t, *shape)
    assert if_kernels.supported(x_seq) and (if_kernels.steps_view(x_seq).shape[0] == 1) == static
    torch.set_num_threads(2)
    w = w_of(t, shape)
    s_ref, _ = if_multistep(x_ref, p)
    (s_ref * w).sum().backward()
    s = IFNeuron(p)(x_seq)
    (s * w).sum().backward()
    assert torch.equal(s, s_ref)
    grad_ref = x_ref.grad.sum(0) if static else x_ref.grad
    assert torch.allclose(x.grad.view(grad_ref.shape), grad_ref, atol=1e-5)
    if static:
        assert torch.equal(s_static, s_ref) and torch.allclose(grad_static, grad_ref, atol=1e-5)


def w_of(t, shape):
    return torch.randn(t, *shape, generator=torch.Generator().manual_seed(5))


def test_compiled_kernels_take_float64():
    p = IFParams()
    torch.manual_seed(4)
    x = (torch.rand(3, 2, 5, dtype=torch.float64) * 1.6 - 0.2).requires_grad_()
    w = torch.randn(3, 2, 5, dtype=torch.float64)
    s_ref, _ = if_multistep(x, p)
    (s_ref * w).sum().backward()
    g_ref, x.grad = x.grad.clone(), None
    (IFNeuron(p)(x) * w).sum().backward()
    assert x.grad.dtype == torch.float64 and torch.allclose(x.grad, g_ref, atol=1e-12)


def test_static_input_outside_the_kernels_sums_its_gradient_too():
    """bfloat16 maps take the PyTorch loop and backward (the compiled kernels take float32/64):
    a static input's gradient is the sum over steps there as well (the path CUDA takes)."""
    p = IFParams()
    torch.manual_seed(6)
    base = torch.rand(3, 5) * 1.4 - 0.2
    x = base.to(torch.bfloat16).requires_grad_()
    assert not if_kernels.supported(x.unsqueeze(0).expand(4, 3, 5))
    w = torch.randn(4, 3, 5).to(torch.bfloat16)
    (IFNeuron(p)(x, 4) * w).sum().backward()
    x_ref = base.to(torch.bfloat16).unsqueeze(0).expand(4, 3, 5).clone().requires_grad_()
    s_ref, _ = if_multistep(x_ref, p)
    (s_ref * w).sum().backward()
    assert torch.allclose(x.grad.float(), x_ref.grad.float().sum(0), atol=0.05)
