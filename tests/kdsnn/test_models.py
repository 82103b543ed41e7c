"""Every registered model: forward and backward at T=1 and T=4, shapes, taps, parameter counts."""
import pytest
import torch

from kdsnn.errors import KdsnnError
from kdsnn.models import STUDENTS, TEACHERS, build_model


@pytest.mark.parametrize("arch", list(TEACHERS))
def test_teacher_forward_backward(arch):
    m = build_model(arch, (1, 8, 8), 10)
    out = m(torch.randn(3, 1, 8, 8))
    assert out.logits.shape == (3, 10)
    assert out.features and all(f.shape[0] == 3 and f.dim() == 4 for f in out.features.values())
    out.logits.sum().backward()
    assert all(p.grad is not None for p in m.parameters() if p.requires_grad)


@pytest.mark.parametrize("timesteps", [1, 4])
@pytest.mark.parametrize("arch", STUDENTS)
def test_student_forward_backward(arch, timesteps):
    m = build_model(arch, (1, 8, 8), 10, timesteps=timesteps)
    out = m(torch.rand(2, 1, 8, 8))
    assert out.logits.shape == (2, 10)
    for f in out.features.values():
        assert f.shape[0] == 2 and f.dim() == 4
        assert float(f.detach().min()) >= 0 and float(f.detach().max()) <= 1  # spike rates
    out.logits.sum().backward()
    grads = [p.grad for p in m.parameters()]
    assert all(g is not None for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)


def test_student_shapes_cifar_and_mnist():
    m = build_model("snn_2conv", (1, 28, 28), 10)
    assert m(torch.rand(2, 1, 28, 28)).logits.shape == (2, 10)
    m = build_model("snn_wrn16_2", (3, 32, 32), 100, timesteps=2)
    assert m(torch.rand(2, 3, 32, 32)).logits.shape == (2, 100)


def test_spike_readout_counts_are_integers_in_0_T():
    m = build_model("snn_2conv", (1, 8, 8), 10, timesteps=4, readout="spike")
    logits = m(torch.rand(5, 1, 8, 8) * 4).logits
    assert torch.equal(logits, logits.round()) and logits.min() >= 0 and logits.max() <= 4


def test_spike_input_and_bernoulli_encoding():
    m = build_model("snn_2conv", (1, 8, 8), 10, timesteps=3, encoding="bernoulli")
    torch.manual_seed(0)
    assert m(torch.rand(2, 1, 8, 8)).logits.shape == (2, 10)
    assert m((torch.rand(3, 2, 1, 8, 8) > 0.5).float()).logits.shape == (2, 10)


@pytest.mark.parametrize("arch,millions", [("resnet18", 11.17), ("wrn28_4", 5.85), ("snn_wrn16_2", 0.69),
                                           ("snn_resnet18", 11.17), ("pyramidnet18", 1.55)])
def test_parameter_counts_match_the_papers(arch, millions):
    m = build_model(arch, (3, 32, 32), 10)
    assert sum(p.numel() for p in m.parameters()) / 1e6 == pytest.approx(millions, abs=0.01)


def test_unknown_names():
    with pytest.raises(KdsnnError, match="unknown architecture"):
        build_model("resnet1000", (1, 8, 8), 10)
    with pytest.raises(KdsnnError, match="encoding"):
        build_model("snn_2conv", (1, 8, 8), 10, encoding="latency")


def test_width_multiplier_scales_every_layer_and_survives_a_checkpoint():
    from kdsnn.checkpoint import build_from_spec

    m = build_model("snn_2conv", (1, 8, 8), 10, width=0.25)
    convs = [mod for mod in m.modules() if isinstance(mod, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 16), (16, 32)]
    # by hand: 1·16·9 + 16·32·9 conv weights, 2·(16 + 32) BN, linear 32·2·2·10 + 10
    assert sum(p.numel() for p in m.parameters()) == 144 + 4608 + 96 + 1290
    r = build_model("snn_resnet14", (1, 8, 8), 10, width=0.5)
    assert max(mod.out_channels for mod in r.modules() if isinstance(mod, torch.nn.Conv2d)) == 32
    spec = {"arch": "snn_2conv", "input_shape": [1, 8, 8], "classes": 10, "timesteps": 4, "encoding": "direct",
            "readout": "membrane", "neuron": {}, "width": 0.25}
    rebuilt = build_from_spec(spec)
    rebuilt.load_state_dict(m.state_dict())  # same shapes
    del spec["width"]  # checkpoints written before --width rebuild at full width
    assert sum(p.numel() for p in build_from_spec(spec).parameters()) == 576 + 73728 + 384 + 5130
    with pytest.raises(KdsnnError, match="width"):
        build_model("snn_2conv", (1, 8, 8), 10, width=0)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("kernel,hw", [(2, (8, 6)), ((4, 3), (4, 3))])
def test_avg_pool_backward_equals_pytorch_in_every_layout(channels_last, kernel, hw):
    """The students' pooling (own backward, one pass) against nn.AvgPool2d's autograd: the same
    values, in the input's memory format, whatever layout the incoming gradient has."""
    from kdsnn.models.spiking import AvgPool

    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    flat = torch.randn(2 * 3, 5, *hw).contiguous(memory_format=fmt)
    x = flat.view(2, 3, 5, *hw).requires_grad_()
    ref_x = flat.clone().requires_grad_()
    y, y_ref = AvgPool(kernel)(x), torch.nn.AvgPool2d(kernel)(ref_x)
    assert torch.equal(y.flatten(0, 1), y_ref)
    w = torch.randn(y_ref.shape)
    (y.flatten(0, 1) * w).sum().backward()
    (y_ref * w).sum().backward()
    assert torch.equal(x.grad.flatten(0, 1), ref_x.grad)
    assert x.grad.flatten(0, 1).is_contiguous(memory_format=fmt)


def test_students_are_a_registry(monkeypatch):
    # one dict, like TEACHERS: a new student is one entry, and build_model / is_student follow it
    from kdsnn.models import is_student
    from kdsnn.models.spiking import Flatten, Readout
    from kdsnn.models.students import STUDENTS as registry

    assert registry is STUDENTS and all(callable(b) for b in STUDENTS.values())

    def linear(input_shape, classes, neuron, readout, width):
        c, h, w = input_shape
        return [Flatten(), Readout(c * h * w, classes, readout, neuron)], {}

    monkeypatch.setitem(STUDENTS, "snn_linear", linear)
    assert is_student("snn_linear")
    m = build_model("snn_linear", (1, 8, 8), 3, timesteps=2)
    assert m(torch.rand(4, 1, 8, 8)).logits.shape == (4, 3)
    assert sum(p.numel() for p in m.parameters()) == 64 * 3 + 3  # one 64 → 3 layer with bias


@pytest.mark.parametrize("cin", [1, 3, 6, 16])
def test_pointwise_strided_conv_equals_the_strided_convolution(cin):
    """PointwiseConv2d (subsample, then a 1×1 stride-1 convolution) gives the values and gradients of
    the strided 1×1 convolution, computed here by PyTorch's native (non-oneDNN) kernel, on the
    channels-last input whose oneDNN AVX2 weight gradient corrupts memory."""
    from kdsnn.models.pointwise import PointwiseConv2d

    torch.manual_seed(cin)
    conv = PointwiseConv2d(cin, 8, stride=2)
    x = torch.randn(4, cin, 9, 10).to(memory_format=torch.channels_last).requires_grad_()
    y = conv(x)
    y.square().sum().backward()
    x_ref = x.detach().contiguous().requires_grad_()
    w_ref = conv.weight.detach().clone().requires_grad_()
    torch.backends.mkldnn.enabled = False
    try:
        y_ref = torch.nn.functional.conv2d(x_ref, w_ref, stride=2)
        y_ref.square().sum().backward()
    finally:
        torch.backends.mkldnn.enabled = True
    assert y.shape == y_ref.shape == (4, 8, 5, 5)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(x.grad, x_ref.grad)
    torch.testing.assert_close(conv.weight.grad, w_ref.grad)
    assert isinstance(conv, torch.nn.Conv2d) and conv.stride == (2, 2) and conv.kernel_size == (1, 1)


def test_ann_2conv_is_the_relu_twin_of_snn_2conv():
    """Same layers and parameter shapes as snn_2conv; its forward, recomputed from the raw weights with
    functional ops, is conv → BN → ReLU → 2×2 mean → conv → BN → ReLU → 2×2 mean → linear."""
    torch.manual_seed(0)
    ann = build_model("ann_2conv", (1, 8, 8), 10).eval()
    snn = build_model("snn_2conv", (1, 8, 8), 10)
    assert [tuple(p.shape) for p in ann.parameters()] == [tuple(p.shape) for p in snn.parameters()]
    for bn in (ann.conv1[1], ann.conv2[1]):  # non-trivial running statistics
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    x = torch.rand(3, 1, 8, 8)

    def conv_bn_relu(h, conv, bn):
        h = torch.nn.functional.conv2d(h, conv.weight, padding=1)
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        return torch.relu(h * scale[:, None, None] + (bn.bias - bn.running_mean * scale)[:, None, None])

    def mean2x2(h):
        n, c, hh, ww = h.shape
        return h.reshape(n, c, hh // 2, 2, ww // 2, 2).mean((3, 5))

    h = mean2x2(conv_bn_relu(x, ann.conv1[0], ann.conv1[1]))
    h = mean2x2(conv_bn_relu(h, ann.conv2[0], ann.conv2[1]))
    expected = h.flatten(1) @ ann.fc.weight.T + ann.fc.bias
    torch.testing.assert_close(ann(x).logits, expected, rtol=1e-5, atol=1e-5)
