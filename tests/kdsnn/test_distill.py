"""Distillation losses on small hand-made tensors against values worked out by hand."""
import math

import pytest
import torch
from scipy.stats import norm

from kdsnn.distill import build_loss
from kdsnn.distill.feature import FeatureKD, gaussian_margin, partial_l2
from kdsnn.distill.lasnn import LayerwiseAttention, attention_map
from kdsnn.distill.response import ResponseKD
from kdsnn.errors import KdsnnError
from kdsnn.models import build_model
from kdsnn.models.output import ModelOutput


def out(logits, **features):
    return ModelOutput(torch.tensor(logits, dtype=torch.float32),
                       {k: torch.tensor(v, dtype=torch.float32) for k, v in features.items()})


def test_response_kl_by_hand():
    # p_t = softmax([ln 3, 0]) = [¾, ¼], p_s = [½, ½]: KL = ¾ ln(1.5) + ¼ ln(0.5)
    loss = ResponseKD({}, {}, alpha=1.0, temperature=1.0)
    total, parts = loss(out([[0.0, 0.0]]), out([[math.log(3), 0.0]]), torch.tensor([0]))
    kl = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert parts["distill"] == pytest.approx(kl, rel=1e-5)
    assert float(total) == pytest.approx(kl, rel=1e-5)


def test_response_mixes_ce_and_scales_by_tau_squared():
    loss = ResponseKD({}, {}, alpha=0.25, temperature=2.0)
    s, t = out([[1.0, 0.0]]), out([[0.0, 0.0]])
    total, parts = loss(s, t, torch.tensor([0]))
    ce = -math.log(math.exp(1) / (math.exp(1) + 1))
    ps = [math.exp(0.5) / (math.exp(0.5) + 1), 1 / (math.exp(0.5) + 1)]
    kl = 0.5 * math.log(0.5 / ps[0]) + 0.5 * math.log(0.5 / ps[1])
    assert float(total) == pytest.approx(0.75 * ce + 0.25 * 4 * kl, rel=1e-5)


def test_partial_l2_by_hand():
    s = torch.tensor([0.5, -1.0, 2.0, -3.0])
    t = torch.tensor([1.0, -2.0, 1.0, -1.0])
    # kept: t>0 (0.25), s>t (1), s>t (1); dropped: s ≤ t ≤ 0 (-3 ≤ -1 ≤ 0)
    assert float(partial_l2(s, t)) == pytest.approx(2.25)


def test_gaussian_margin_against_scipy():
    torch.manual_seed(0)
    t = (torch.randn(64, 2, 3, 3) * torch.tensor([1.0, 0.5]).view(1, 2, 1, 1)
         + torch.tensor([0.3, -0.2]).view(1, 2, 1, 1))
    m = gaussian_margin(t).flatten()
    for c in range(2):
        x = t[:, c].flatten().double()
        mu, sigma = float(x.mean()), float(x.std())
        expected = mu - sigma * norm.pdf(mu / sigma) / norm.cdf(-mu / sigma)  # E[x | x < 0] for N(μ, σ)
        assert float(m[c]) == pytest.approx(expected, rel=1e-4)


def test_attention_map_by_hand():
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 0.0]]]])  # [B=1, C=2, H=1, W=2]
    # mean_c f² = [(1+9)/2, (4+0)/2] = [5, 2] → / √29
    assert attention_map(f).flatten().tolist() == pytest.approx([5 / math.sqrt(29), 2 / math.sqrt(29)], rel=1e-6)


def test_lasnn_loss_by_hand():
    loss = LayerwiseAttention({"stage1": (2, 1, 2)}, {"stage1": (3, 1, 2)}, alpha=1.0)
    s = out([[0.0, 0.0]], stage1=[[[[1.0, 0.0]], [[1.0, 0.0]]]])               # at = [1, 0]
    t = out([[0.0, 0.0]], stage1=[[[[1.0, 1.0]], [[1.0, 1.0]], [[1.0, 1.0]]]])  # at = [1/√2, 1/√2]
    _, parts = loss(s, t, torch.tensor([0]))
    a = 1 / math.sqrt(2)
    assert parts["distill"] == pytest.approx((1 - a) ** 2 + a ** 2, rel=1e-5)  # ‖at(s) − at(t)‖², one sample


@pytest.mark.parametrize("kd", ["none", "response", "feature", "lasnn"])
def test_every_loss_reaches_the_student(kd):
    torch.manual_seed(0)
    student = build_model("snn_2conv", (1, 8, 8), 10)
    teacher = build_model("mnist_cnn", (1, 8, 8), 10).eval()
    x = torch.rand(4, 1, 8, 8) * 2
    loss = build_loss(kd, student, teacher, x)
    total, parts = loss(student(x), teacher(x), torch.tensor([0, 1, 2, 3]))
    total.backward()
    assert student.blocks[0].conv.weight.grad is not None
    assert float(student.blocks[0].conv.weight.grad.abs().sum()) > 0
    if kd == "feature":  # connectors are registered parameters and learn
        assert all(p.grad is not None for p in loss.parameters())
    if kd != "none":
        assert parts["distill"] > 0


def test_feature_connectors_are_registered():
    loss = FeatureKD({"a": (4, 2, 2), "b": (8, 1, 1)}, {"x": (16, 2, 2), "y": (32, 1, 1)})
    assert len(list(loss.parameters())) == 2 * 3  # conv weight + BN γ, β per connector
    assert loss.weights == [0.5, 1.0]


def test_unknown_method_and_missing_teacher():
    student = build_model("snn_2conv", (1, 8, 8), 10)
    with pytest.raises(KdsnnError, match="unknown distillation"):
        build_loss("dark", student, None, torch.rand(2, 1, 8, 8))
    with pytest.raises(KdsnnError, match="needs a teacher"):
        build_loss("response", student, None, torch.rand(2, 1, 8, 8))


def test_one_kd_default_and_help_from_the_registry():
    from kdsnn.cli import build_parser
    from kdsnn.distill import DEFAULT_METHOD, METHODS
    from kdsnn.trainer import TrainConfig

    _, subs = build_parser()
    kd = next(a for a in subs["distill"]._actions if a.dest == "kd")
    assert kd.default == DEFAULT_METHOD == TrainConfig().kd == "response"
    for name, cls in METHODS.items():
        assert cls.summary and f"{name}: {cls.summary}" in kd.help
    assert "Default: response" in kd.help and "Every method but none needs --teacher" in kd.help
    assert "Default: response" in " ".join(subs["distill"].format_help().split())  # --help shows it
