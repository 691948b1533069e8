"""RMSpropTF against TensorFlow's update rule written out by hand, the schedules, parameter groups and the EMA."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from inception_resnet.training.ema import ModelEma
from inception_resnet.training.optimizers import LRSchedule, RMSpropTF, param_groups, scale_lr, set_lr


def tf_rmsprop_reference(w0, grads, lrs, *, decay, momentum, eps, weight_decay, centered):
    """TF's ApplyRMSProp / ApplyCenteredRMSProp in float64 numpy, with the L2 term added to the gradient."""
    w = np.array(w0, dtype=np.float64)
    ms = np.ones_like(w)
    mg = np.zeros_like(w)
    mom = np.zeros_like(w)
    for g, lr in zip(grads, lrs, strict=True):
        g = np.asarray(g, dtype=np.float64) + weight_decay * w
        ms = ms + (g * g - ms) * (1.0 - decay)
        if centered:
            mg = mg + (g - mg) * (1.0 - decay)
            denom = np.sqrt(ms - mg * mg + eps)
        else:
            denom = np.sqrt(ms + eps)
        mom = momentum * mom + lr * g / denom
        w = w - mom
    return w


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("momentum", [0.9, 0.0])
def test_rmsprop_tf_follows_the_tensorflow_update(foreach, centered, momentum):
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(3, 4))
    grads = [rng.normal(scale=3.0, size=(3, 4)) for _ in range(5)]
    lrs = [0.045, 0.045, 0.02, 0.02, 0.01]  # a changing rate: TF keeps lr inside the momentum buffer
    param = nn.Parameter(torch.tensor(w0, dtype=torch.float64))
    optimizer = RMSpropTF(
        [param], lr=lrs[0], decay=0.9, momentum=momentum, eps=1.0, weight_decay=4e-5, centered=centered, foreach=foreach
    )
    for g, lr in zip(grads, lrs, strict=True):
        set_lr(optimizer, lr)
        param.grad = torch.tensor(g, dtype=torch.float64)
        optimizer.step()
    expected = tf_rmsprop_reference(
        w0, grads, lrs, decay=0.9, momentum=momentum, eps=1.0, weight_decay=4e-5, centered=centered
    )
    np.testing.assert_allclose(param.detach().numpy(), expected, rtol=1e-12, atol=1e-12)


def test_first_step_uses_a_mean_square_initialised_to_one_and_eps_inside_the_root():
    param = nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    optimizer = RMSpropTF([param], lr=0.1, decay=0.9, momentum=0.9, eps=1.0)
    param.grad = torch.tensor([2.0], dtype=torch.float64)
    optimizer.step()
    mean_square = 0.9 * 1.0 + 0.1 * 2.0**2
    assert param.item() == pytest.approx(1.0 - 0.1 * 2.0 / math.sqrt(mean_square + 1.0), rel=1e-12)
    torch_rmsprop_param = nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    torch_optimizer = torch.optim.RMSprop([torch_rmsprop_param], lr=0.1, alpha=0.9, momentum=0.9, eps=1.0)
    torch_rmsprop_param.grad = torch.tensor([2.0], dtype=torch.float64)
    torch_optimizer.step()
    assert abs(torch_rmsprop_param.item() - param.item()) > 1e-3  # the semantics really differ


def test_state_dict_round_trip_continues_identically():
    torch.manual_seed(0)
    model = nn.Linear(5, 3)
    twin = nn.Linear(5, 3)
    twin.load_state_dict(model.state_dict())
    first = RMSpropTF(model.parameters(), lr=0.01)
    grads = [torch.randn(3, 5) for _ in range(4)]
    for g in grads[:2]:
        model.weight.grad, model.bias.grad = g.clone(), g[:, 0].clone()
        first.step()
    twin.load_state_dict(model.state_dict())
    second = RMSpropTF(twin.parameters(), lr=0.01)
    second.load_state_dict(copy.deepcopy(first.state_dict()))  # as from a file: no shared buffers
    for g in grads[2:]:
        for net, opt in ((model, first), (twin, second)):
            net.weight.grad, net.bias.grad = g.clone(), g[:, 0].clone()
            opt.step()
    assert torch.equal(model.weight, twin.weight) and torch.equal(model.bias, twin.bias)


def test_param_groups_exempt_batchnorm_and_optionally_biases():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=True), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    model[3].weight.requires_grad_(False)
    norm_only = param_groups(model, 4e-5, "norm")
    decayed = {id(p) for p in norm_only[0]["params"]}
    exempt = {id(p) for p in norm_only[1]["params"]}
    assert norm_only[0]["weight_decay"] == 4e-5 and norm_only[1]["weight_decay"] == 0.0
    assert exempt == {id(model[1].weight), id(model[1].bias)}
    assert id(model[0].bias) in decayed and id(model[3].weight) not in decayed | exempt
    with_bias = param_groups(model, 4e-5, "norm_and_bias")
    assert id(model[0].bias) in {id(p) for p in with_bias[1]["params"]}
    everything = param_groups(model, 4e-5, "none")
    assert len(everything) == 1
    with pytest.raises(ValueError, match="no_decay"):
        param_groups(model, 4e-5, "bogus")


def test_staircase_exponential_schedule_with_warmup():
    schedule = LRSchedule(0.045, steps_per_epoch=10, epochs=10, kind="step", decay_rate=0.94, decay_epochs=2)
    assert schedule.decay_steps == 20
    assert schedule(0) == schedule(19) == 0.045
    assert schedule(20) == pytest.approx(0.045 * 0.94)
    assert schedule(45) == pytest.approx(0.045 * 0.94**2)
    smooth = LRSchedule(0.045, 10, 10, kind="step", decay_rate=0.94, decay_epochs=2, staircase=False)
    assert smooth(10) == pytest.approx(0.045 * 0.94**0.5)
    warm = LRSchedule(0.045, 10, 10, kind="step", decay_rate=0.94, decay_epochs=2, warmup_epochs=1)
    assert warm(0) == pytest.approx(0.0045) and warm(9) == pytest.approx(0.045)
    assert [warm(s) for s in range(10, 60)] == [schedule(s) for s in range(10, 60)]


def test_cosine_schedule_and_linear_scaling():
    schedule = LRSchedule(0.4, steps_per_epoch=5, epochs=4, kind="cosine", warmup_epochs=1, min_lr=0.01)
    assert schedule(4) == pytest.approx(0.4)
    values = [schedule(s) for s in range(5, 20)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    assert schedule(19) == pytest.approx(0.01 + 0.39 * 0.5 * (1 + math.cos(math.pi * 14 / 15)))
    assert scale_lr(0.045, 256, 32) == pytest.approx(0.36)
    with pytest.raises(ValueError, match="schedule"):
        LRSchedule(0.1, 5, 4, kind="linear")


def test_ema_decay_is_adjusted_for_short_runs():
    ema = ModelEma(nn.Linear(2, 2), decay=0.9999)
    assert ema.decay_at(1) == pytest.approx(2 / 11)
    assert ema.decay_at(100) == pytest.approx(101 / 110)
    assert ema.decay_at(10**6) == 0.9999
    assert ModelEma(nn.Linear(2, 2), decay=0.9999, warmup=False).decay_at(1) == 0.9999


def test_ema_update_averages_weights_and_batchnorm_statistics():
    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    ema = ModelEma(model, decay=0.5, warmup=False)
    before = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model.train()
    model(torch.randn(8, 3))  # moves the running statistics and num_batches_tracked
    live = model.state_dict()
    ema.update(model)
    for key, value in ema.module.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(value, 0.5 * before[key] + 0.5 * live[key])
        else:
            assert torch.equal(value, live[key])
    assert not any(p.requires_grad for p in ema.module.parameters())
    restored = ModelEma(model, decay=0.5, warmup=False)
    restored.load_state_dict(ema.state_dict())
    assert restored.num_updates == 1
    assert all(
        torch.equal(a, b)
        for a, b in zip(restored.module.state_dict().values(), ema.module.state_dict().values(), strict=True)
    )
