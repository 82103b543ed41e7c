"""Optimizers and the per-iteration lr schedule (warm-up, cosine, step), values worked out by hand."""
import math

import pytest
import torch

from kdsnn import optim
from kdsnn.errors import KdsnnError


def test_warm_up_is_linear_then_cosine_falls_to_zero():
    total, warmup = 110, 10
    assert [optim.lr_factor(s, total, warmup, "cosine") for s in range(3)] == [0.1, 0.2, 0.3]
    assert optim.lr_factor(9, total, warmup, "cosine") == 1.0  # the last warm-up step reaches the peak
    assert optim.lr_factor(10, total, warmup, "cosine") == 1.0  # cosine starts at its top
    assert optim.lr_factor(60, total, warmup, "cosine") == pytest.approx(0.5)  # halfway: (1 + cos π/2) / 2
    assert optim.lr_factor(35, total, warmup, "cosine") == pytest.approx((1 + math.cos(math.pi / 4)) / 2)
    assert optim.lr_factor(110, total, warmup, "cosine") == pytest.approx(0.0, abs=1e-12)


def test_step_and_constant_schedules():
    assert [optim.lr_factor(s, 100, 0, "step") for s in (0, 49, 50, 74, 75, 99)] == \
        pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    assert {optim.lr_factor(s, 100, 0, "constant") for s in range(100)} == {1.0}


def test_schedule_follows_the_factor_per_iteration():
    w = torch.nn.Parameter(torch.zeros(1))
    opt = optim.build_optimizer([w], "sgd", 0.2, 0.9, 0.0, nesterov=True)
    sched = optim.build_schedule(opt, "cosine", epochs=3, warmup_epochs=1, steps_per_epoch=4)
    lrs = []
    for _ in range(12):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    # 4 warm-up steps 0.05, 0.1, 0.15, 0.2, then cosine over the 8 remaining steps
    expected = [0.05, 0.1, 0.15, 0.2] + [0.1 * (1 + math.cos(math.pi * k / 8)) for k in range(8)]
    assert lrs == pytest.approx(expected)
    assert opt.param_groups[0]["nesterov"] is True


def test_adamw_takes_momentum_as_beta1():
    opt = optim.build_optimizer([torch.nn.Parameter(torch.zeros(1))], "adamw", 1e-3, 0.8, 0.05, nesterov=False)
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.param_groups[0]["betas"] == (0.8, 0.999) and opt.param_groups[0]["weight_decay"] == 0.05


@pytest.mark.parametrize("args, message", [
    (("adam", "cosine", 0, 10), "unknown optimizer 'adam'"),
    (("sgd", "linear", 0, 10), "unknown schedule 'linear'"),
    (("sgd", "cosine", 10, 10), "below --epochs"),
    (("sgd", "cosine", -1, 10), "must be >= 0"),
])
def test_bad_names_and_warm_up_are_refused(args, message):
    with pytest.raises(KdsnnError, match=message):
        optim.check(*args)
