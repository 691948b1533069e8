"""The rest of the family: GoogLeNet against torchvision, BN-Inception against Cadene's Caffe-converted model,
and the zoo's API (features, sizes, errors, widths, metadata, TorchScript, auxiliary outputs) on both.

Cadene's ``BNInception`` is read from the installed ``pretrainedmodels`` package (its file only, so that the
package's own imports of ``six`` and ``munch`` are not needed).
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

import inception_resnet as ir
from inception_resnet.complexity import count_parameters
from inception_resnet.models.googlenet import GoogLeNetOutput

FAMILY = ["googlenet", "bn_inception"]
MIN_SIZE = {"googlenet": 15, "bn_inception": 7}  # the smallest inputs that run (found by trying every size)
FEATURE_CHANNELS = {  # GoogLeNet Table 1; BN-Inception Figure 5 (branch sums)
    "googlenet": [64, 192, 480, 832, 1024],
    "bn_inception": [64, 192, 320, 608, 1024],
}


def cadene_bninception() -> nn.Module:
    """Cadene's BNInception class with random weights, loaded from ``pretrainedmodels/models/bninception.py``."""
    spec = importlib.util.find_spec("pretrainedmodels")
    assert spec is not None and spec.origin, "the test extra needs pretrainedmodels"
    path = Path(spec.origin).parent / "models" / "bninception.py"
    module_spec = importlib.util.spec_from_file_location("_cadene_bninception", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.BNInception(num_classes=1000)


def randomise_batchnorm(model: nn.Module) -> nn.Module:
    """Non-trivial running statistics and affine parameters, so eval-mode BatchNorm matters."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
    return model


def small(name: str, **kwargs) -> ir.InceptionNet:
    return ir.create_model(name, width_multiplier=0.25, num_classes=7, **kwargs)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def test_registered() -> None:
    assert set(FAMILY) <= set(ir.list_models())
    assert ir.list_models("googlenet") == ["googlenet"]
    assert isinstance(ir.create_model("bn_inception", width_multiplier=0.25), ir.InceptionNet)


# -- GoogLeNet = torchvision's googlenet -----------------------------------------------------------------
@pytest.mark.parametrize("aux", [False, True])
def test_googlenet_is_torchvision_key_for_key_and_output_for_output(aux: bool) -> None:
    reference = randomise_batchnorm(torchvision.models.googlenet(weights=None, aux_logits=aux, init_weights=False))
    ours = ir.create_model("googlenet", aux_logits=aux)
    assert count_parameters(ours) == count_parameters(reference)
    assert list(ours.state_dict()) == list(reference.state_dict())
    ours.load_state_dict(reference.state_dict())
    ours.eval()
    reference.eval()
    with torch.no_grad():
        for shape in ((2, 3, 224, 224), (1, 3, 97, 131)):
            x = torch.randn(shape)
            assert max_diff(ours(x), reference(x)) <= 1e-4
        reference.transform_input = True
        shifted = ir.create_model("googlenet", aux_logits=aux, transform_input=True).eval()
        shifted.load_state_dict(reference.state_dict())
        x = torch.randn(1, 3, 160, 160)
        assert max_diff(shifted(x), reference(x)) <= 1e-4
        assert max_diff(shifted(x), ours(x)) > 1e-3  # the option does change the input


def test_googlenet_training_outputs_match_torchvision_aux_heads() -> None:
    reference = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False, dropout=0.0,
                                             dropout_aux=0.0)
    ours = ir.create_model("googlenet", aux_logits=True, drop_rate=0.0)
    ours.load_state_dict(reference.state_dict())
    for head in (ours.aux1, ours.aux2):
        head.dropout.p = 0.0
    ours.train()
    reference.train()
    x = torch.randn(4, 3, 128, 128)
    out = ours(x)
    theirs = reference(x)
    assert isinstance(out, GoogLeNetOutput) and out._fields == ("logits", "aux_logits", "aux_logits2")
    assert max_diff(out.logits, theirs.logits) <= 1e-4
    assert max_diff(out.aux_logits, theirs.aux_logits1) <= 1e-4  # head aux1, after inception4a
    assert max_diff(out.aux_logits2, theirs.aux_logits2) <= 1e-4  # head aux2, after inception4d


def test_googlenet_aux_convention_for_training_loops() -> None:
    model = small("googlenet", aux_logits=True).train()
    assert model.aux_loss_weight == 0.3 and model.metadata.extra["aux_loss_weight"] == 0.3
    x = torch.randn(2, 3, 64, 64)
    out = model(x)
    assert [t.shape for t in out] == [(2, 7)] * 3
    features, aux = model.forward_aux(x)
    assert len(aux) == 2 and features.shape[1] == model.num_features
    model.eval()
    with torch.no_grad():
        assert isinstance(model(x), torch.Tensor)
    plain = small("googlenet").train()
    assert plain.forward_aux(x)[1] == [] and isinstance(plain(x), torch.Tensor)
    model.reset_classifier(5)
    assert [t.shape for t in model.train()(x)] == [(2, 5)] * 3
    assert not any(n.startswith("aux") for n, _ in small("googlenet", aux_logits=True,
                                                        features_only=True).named_parameters())


# -- BN-Inception = Cadene's bninception -----------------------------------------------------------------
def test_bn_inception_is_cadene_key_for_key_and_output_for_output() -> None:
    reference = randomise_batchnorm(cadene_bninception()).eval()
    ours = ir.create_model("bn_inception").eval()
    assert count_parameters(ours) == count_parameters(reference) == 11_295_240
    assert list(ours.state_dict()) == list(reference.state_dict())
    assert all(ours.state_dict()[k].shape == v.shape for k, v in reference.state_dict().items())
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(2, 3, 224, 224) * 60  # Caffe-range input
    with torch.no_grad():
        expected = reference(x)
        assert max_diff(ours(x), expected) <= 1e-4 * max(1.0, expected.abs().max().item())
        back = cadene_bninception().eval()
        back.load_state_dict(ours.state_dict())  # and our keys load into Cadene's model
        assert max_diff(back(x), expected) <= 1e-5 * max(1.0, expected.abs().max().item())
    nested = dict(ours.named_parameters()) | dict(ours.named_buffers())
    assert "inception_3a._1x1.bn.weight" in nested and "inception_3a_1x1_bn.weight" in ours.state_dict()
    again = ir.create_model("bn_inception")
    again.load_state_dict(nested)  # our module paths load too
    assert torch.equal(again.inception_5b._pool_proj.conv.bias, ours.inception_5b._pool_proj.conv.bias)
    clone = copy.deepcopy(ours)  # the key translation survives copies (EMA)
    assert list(clone.state_dict()) == list(reference.state_dict())
    loaded = ir.create_model("bn_inception", pretrained=reference.state_dict()).eval()
    with torch.no_grad():
        assert max_diff(loaded(x), expected) <= 1e-4 * max(1.0, expected.abs().max().item())


def test_bn_inception_structure_follows_figure_5() -> None:
    model = small("bn_inception")
    full = ir.create_model("bn_inception")
    convs = [m for m in full.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in full.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(convs) == len(norms) == 69 and all(c.bias is not None for c in convs)
    assert all(n.eps == 1e-5 for n in norms)
    assert not any(c.kernel_size == (5, 5) for c in convs)  # 5x5 -> two 3x3
    strided = sorted(n for n, c in full.named_modules() if isinstance(c, nn.Conv2d) and c.stride == (2, 2))
    assert strided == ["conv1._7x7_s2.conv", "inception_3c._3x3.conv", "inception_3c._double_3x3_2.conv",
                       "inception_4e._3x3.conv", "inception_4e._double_3x3_2.conv"]
    with torch.no_grad():  # odd grids entering 3c / 4e (Cadene's model fails at 220) still concatenate
        for size in (220, 227):
            assert model.eval()(torch.randn(1, 3, size, size)).isfinite().all()


# -- the zoo's API on both ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", FAMILY)
def test_minimum_size_runs_and_below_it_a_clear_error(name: str) -> None:
    minimum = MIN_SIZE[name]
    options = {"aux_logits": True} if name == "googlenet" else {}
    model = small(name, **options).train()
    assert model.metadata.min_input_size == minimum
    out = model(torch.randn(2, 3, minimum, minimum))
    assert (out[0] if isinstance(out, tuple) else out).shape == (2, 7)
    model.eval()
    message = rf"{name}: input of {minimum - 1}x40 is too small; the minimum is {minimum}x{minimum}"
    with pytest.raises(ValueError, match=message):
        model(torch.randn(1, 3, minimum - 1, 40))
    with pytest.raises(ValueError, match=message):
        model.forward_features(torch.randn(1, 3, minimum - 1, 40))
    with pytest.raises(ValueError, match=r"expected 3 input channels, got 1"):
        model(torch.randn(1, 1, 64, 64))


@pytest.mark.parametrize("name", FAMILY)
def test_features_only_levels_and_strides(name: str) -> None:
    model = ir.create_model(name, features_only=True, width_multiplier=0.5).eval()
    reference = ir.create_model(name, width_multiplier=0.5).eval()
    reference.load_state_dict(model.state_dict(), strict=False)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        levels = model(x)
        final = reference.forward_features(x)
    assert [i.reduction for i in model.feature_info] == [2, 4, 8, 16, 32]
    assert [f.shape[1] for f in levels] == [i.num_chs for i in model.feature_info]
    assert [f.shape[-1] for f in levels] == [112, 56, 28, 14, 7]
    assert torch.equal(levels[-1], final)
    assert [i.num_chs for i in ir.create_model(name, features_only=True).feature_info] == FEATURE_CHANNELS[name]
    picked = ir.create_model(name, features_only=True, out_indices=(1, 3), width_multiplier=0.25).eval()
    with torch.no_grad():
        assert [f.shape[-1] for f in picked(x)] == [56, 14]


@pytest.mark.parametrize("name", FAMILY)
def test_head_api(name: str) -> None:
    model = small(name).eval()
    x = torch.randn(2, 3, 80, 96)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape[:2] == (2, model.num_features)
        assert model.forward_head(features, pre_logits=True).shape == (2, model.num_features)
        assert torch.allclose(model.forward_head(features), model(x))
        model.reset_classifier(3)
        assert model(x).shape == (2, 3) and model.metadata.num_classes == 3
        model.reset_classifier(0)
        assert model(x).shape == (2, model.num_features)


@pytest.mark.parametrize("name", FAMILY)
def test_backward_reaches_every_parameter(name: str) -> None:
    options = {"aux_logits": True} if name == "googlenet" else {}
    model = ir.create_model(name, num_classes=10, width_multiplier=0.5, **options).train()
    out = model(torch.randn(2, 3, 96, 96))
    if isinstance(out, tuple):
        loss = out[0].logsumexp(1).sum() + 0.3 * sum(a.logsumexp(1).sum() for a in out[1:])
    else:
        loss = out.logsumexp(1).sum()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    assert all(p.grad.abs().sum() > 0 for n, p in model.named_parameters() if "bn.bias" not in n)


@pytest.mark.parametrize("name", FAMILY)
def test_torchscript_and_channels_last_give_the_same_output(name: str) -> None:
    options = {"aux_logits": True, "transform_input": True} if name == "googlenet" else {}
    model = small(name, **options).eval()
    x = torch.randn(2, 3, 96, 110)
    with torch.no_grad():
        expected = model(x)
        scripted = torch.jit.script(model)
        assert torch.allclose(scripted(x), expected, atol=1e-5)
        cl_model = small(name, **options).eval()
        cl_model.load_state_dict(model.state_dict())
        cl_model = cl_model.to(memory_format=torch.channels_last)
        assert torch.allclose(cl_model(x.to(memory_format=torch.channels_last)), expected, atol=1e-4)
    with pytest.raises(torch.jit.Error, match="too small"):
        scripted(torch.randn(1, 3, MIN_SIZE[name] - 1, 60))


@pytest.mark.parametrize("name", FAMILY)
def test_width_multiplier_rounds_to_multiples_of_8(name: str) -> None:
    model = ir.create_model(name, width_multiplier=0.5)
    widths = {m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)}
    assert all(w % 8 == 0 for w in widths)
    assert count_parameters(model) < 0.5 * count_parameters(ir.create_model(name))
    with pytest.raises(ValueError, match="width_multiplier"):
        ir.create_model(name, width_multiplier=0)


def test_metadata() -> None:
    google = ir.create_model("googlenet", transform_input=True).metadata
    assert google.input_size == (3, 224, 224) and google.min_input_size == 15
    assert google.mean == (0.485, 0.456, 0.406) and google.std == (0.229, 0.224, 0.225)
    assert google.interpolation == "bilinear" and google.crop_pct == 0.875
    assert google.extra["transform_input"] is True
    bn = ir.create_model("bn_inception", in_chans=1).metadata
    assert bn.input_size == (1, 224, 224) and bn.min_input_size == 7
    # RGB mean/std on [0, 1] images, then BGR: Cadene's Caffe preprocessing (0-255, BGR mean 104/117/128)
    assert tuple(round(m * 255) for m in reversed(bn.mean)) == bn.extra["caffe_mean_bgr"] == (104, 117, 128)
    assert all(round(s * 255, 6) == 1 for s in bn.std) and bn.extra["input_space"] == "BGR"
    with pytest.raises(ValueError, match="transform_input"):
        ir.create_model("googlenet", in_chans=1, transform_input=True)
    with pytest.raises(ValueError, match="aux_logits"):
        ir.create_model("bn_inception", aux_logits=True)
