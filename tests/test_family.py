"""The rest of the family: GoogLeNet against torchvision, BN-Inception against Cadene's Caffe-converted model,
their auxiliary outputs and metadata (the generic model tests, run on them too, are in tests/test_models.py).

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
from inception_resnet.models.complexity import count_parameters
from inception_resnet.models.googlenet import GoogLeNetOutput

FAMILY = ["googlenet", "bn_inception"]


def cadene_bninception() -> nn.Module:
    """Cadene's BNInception with random weights, from the file ``pretrainedmodels/models/bninception.py``."""
    spec = importlib.util.find_spec("pretrainedmodels")
    assert spec is not None and spec.origin, "the test extra needs pretrainedmodels"
    path = Path(spec.origin).parent / "models" / "bninception.py"
    module_spec = importlib.util.spec_from_file_location("_cadene_bninception", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.BNInception(num_classes=1000)


def calibrate(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Random BatchNorm affine parameters, running statistics set from one batch: with them every layer
    keeps a unit-scale signal in eval mode, so a mistake anywhere shows in the output (with untouched
    statistics the random signal dies out after a few layers and the logits are little more than biases).
    """
    with torch.no_grad():
        norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        for m in norms:
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0, 0.2)
            m.momentum = 1.0
        model.train()(x)
        for m in norms:
            m.momentum = 0.1
    return model.eval()


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
    reference = torchvision.models.googlenet(weights=None, aux_logits=aux, init_weights=False)
    x = torch.randn(2, 3, 131, 97)
    calibrate(reference, x)
    ours = ir.create_model("googlenet", aux_logits=aux, pretrained=reference.state_dict()).eval()
    assert count_parameters(ours) == count_parameters(reference)
    assert list(ours.state_dict()) == list(reference.state_dict())
    with torch.no_grad():
        expected = reference(x)
        assert expected.std() > 0.1  # a live signal, not just the classifier's bias
        assert max_diff(ours(x), expected) <= 1e-4
        if not aux:
            reference.transform_input = True
            shifted = ir.create_model("googlenet", transform_input=True, pretrained=reference.state_dict())
            assert max_diff(shifted.eval()(x), reference(x)) <= 1e-4
            assert max_diff(shifted(x), expected) > 1e-2  # the option does change the input
            return
        for m in [*ours.modules(), *reference.modules()]:  # training mode, without the random dropout
            if isinstance(m, nn.Dropout):
                m.p = 0.0
        out = ours.train()(x)
        theirs = reference.train()(x)
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
    backbone = small("googlenet", aux_logits=True, features_only=True)
    assert not any(n.startswith("aux") for n, _ in backbone.named_parameters())


# -- BN-Inception = Cadene's bninception -----------------------------------------------------------------
def test_bn_inception_is_cadene_key_for_key_and_output_for_output() -> None:
    reference = cadene_bninception()
    x = torch.randn(1, 3, 224, 224) * 60  # Caffe-range input; Cadene's final 7x7 pool needs 193 to 224
    calibrate(reference, torch.cat([x, torch.randn(1, 3, 224, 224) * 60]))
    ours = ir.create_model("bn_inception", pretrained=reference.state_dict()).eval()
    assert count_parameters(ours) == count_parameters(reference) == 11_295_240
    assert list(ours.state_dict()) == list(reference.state_dict())
    with torch.no_grad():
        expected = reference(x)
        assert expected.std() > 0.1
        assert max_diff(ours(x), expected) <= 1e-4
    reference.load_state_dict(ours.state_dict())  # our keys load into Cadene's model, strictly
    assert "inception_3a._1x1.bn.weight" in dict(ours.named_parameters())
    clone = copy.deepcopy(ours)  # the key translation survives copies (EMA)
    assert list(clone.state_dict()) == list(reference.state_dict())


def test_bn_inception_loads_its_own_module_paths_too() -> None:
    model = small("bn_inception")
    nested = dict(model.named_parameters()) | dict(model.named_buffers())
    assert "inception_3a_1x1_bn.weight" in model.state_dict() and "inception_3a._1x1.bn.weight" in nested
    again = small("bn_inception")
    again.load_state_dict({k: v + 1 for k, v in nested.items()})
    assert torch.equal(again.inception_5b._pool_proj.conv.bias, model.inception_5b._pool_proj.conv.bias + 1)


def test_bn_inception_structure_follows_figure_5() -> None:
    with torch.device("meta"):
        full = ir.create_model("bn_inception")
    convs = [m for m in full.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in full.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(convs) == len(norms) == 69 and all(c.bias is not None for c in convs)
    assert all(n.eps == 1e-5 for n in norms)
    assert not any(c.kernel_size == (5, 5) for c in convs)  # 5x5 -> two 3x3
    strided = sorted(n for n, c in full.named_modules() if isinstance(c, nn.Conv2d) and c.stride == (2, 2))
    assert strided == [
        "conv1._7x7_s2.conv",
        "inception_3c._3x3.conv",
        "inception_3c._double_3x3_2.conv",
        "inception_4e._3x3.conv",
        "inception_4e._double_3x3_2.conv",
    ]
    model = small("bn_inception").eval()
    with torch.no_grad():  # odd grids entering 3c / 4e (Cadene's model fails at 220) still concatenate
        for size in (108, 115):
            assert model(torch.randn(1, 3, size, size)).isfinite().all()


def test_metadata() -> None:
    google = small("googlenet", transform_input=True).metadata
    assert google.input_size == (3, 224, 224) and google.min_input_size == 15
    assert google.mean == (0.485, 0.456, 0.406) and google.std == (0.229, 0.224, 0.225)
    assert google.interpolation == "bilinear" and google.crop_pct == 0.875
    assert google.extra["transform_input"] is True
    bn = small("bn_inception", in_chans=1).metadata
    assert bn.input_size == (1, 224, 224) and bn.min_input_size == 7
    # RGB mean/std on [0, 1] images, then BGR: Cadene's Caffe preprocessing (0-255, BGR mean 104/117/128)
    assert tuple(round(m * 255) for m in reversed(bn.mean)) == bn.extra["caffe_mean_bgr"] == (104, 117, 128)
    assert all(round(s * 255, 6) == 1 for s in bn.std) and bn.extra["input_space"] == "BGR"
    with pytest.raises(ValueError, match="transform_input"):
        ir.create_model("googlenet", in_chans=1, transform_input=True)
    with pytest.raises(ValueError, match="aux_logits"):
        ir.create_model("bn_inception", aux_logits=True)
