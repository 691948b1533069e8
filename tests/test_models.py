"""The model zoo: exact sizes, shapes at every valid input, gradients, TorchScript, the timm layouts.

The generic tests (input checks, features, head API, gradients, TorchScript, widths) run on every registered
model; tests/test_family.py holds what is particular to GoogLeNet and BN-Inception.
"""

from __future__ import annotations

import pytest
import torch

import inception_resnet as ir
from inception_resnet.models.complexity import count_parameters, model_macs
from inception_resnet.models.layers import ScaledResidual
from inception_resnet.models.registry import model_options

ZOO = ["inception_v3", "inception_v4", "inception_resnet_v1", "inception_resnet_v2", "inception_resnet_v2_paper"]
ALL = ir.list_models()  # every registered model, facenet included
MIN_SIZE = {"googlenet": 15, "bn_inception": 7}  # the smallest inputs that run (found by trying every size); else 75

# Reference counts at 1000 classes (timm's published tables).
PARAMS = {
    "inception_v3": 23_834_568,
    "inception_v4": 42_679_816,
    "inception_resnet_v1": 22_756_328,
    "inception_resnet_v2": 55_843_464,
    "inception_resnet_v2_paper": 32_433_928,
}
GMACS = {  # conv + FC multiply-accumulates at 299x299
    "inception_v3": 5.713,
    "inception_v4": 12.254,
    "inception_resnet_v1": 6.206,
    "inception_resnet_v2": 13.156,
    "inception_resnet_v2_paper": 9.258,
}
NUM_FEATURES = {
    "inception_v3": 2048,
    "inception_v4": 1536,
    "inception_resnet_v1": 1792,
    "inception_resnet_v2": 1536,
    "inception_resnet_v2_paper": 2144,
}
FEATURE_CHANNELS = {  # GoogLeNet Table 1; BN-Inception Figure 5 (branch sums); the others their figures
    "googlenet": [64, 192, 480, 832, 1024],
    "bn_inception": [64, 192, 320, 608, 1024],
    "inception_resnet_v1_facenet": [64, 192, 256, 896, 1792],
    "inception_v3": [64, 192, 288, 768, 2048],
    "inception_v4": [64, 160, 384, 1024, 1536],
    "inception_resnet_v1": [64, 192, 256, 896, 1792],
    "inception_resnet_v2": [64, 192, 320, 1088, 1536],
    "inception_resnet_v2_paper": [64, 160, 384, 1152, 2144],
}


@pytest.fixture(scope="module")
def full_models() -> dict[str, ir.InceptionNet]:
    torch.manual_seed(0)
    return {name: ir.create_model(name).eval() for name in ZOO}


def small(name: str, **kwargs) -> ir.InceptionNet:
    if "classify" in model_options(name):
        kwargs.setdefault("classify", True)  # facenet: logits, not embeddings
    return ir.create_model(name, width_multiplier=0.25, num_classes=7, **kwargs)


def with_aux(name: str) -> dict:
    """The options that build every head a model has (auxiliary classifiers included)."""
    return {"aux_logits": True} if "aux_logits" in model_options(name) else {}


def test_registry_lists_the_zoo() -> None:
    assert set(ZOO) <= set(ir.list_models())
    assert ir.list_models("inception_resnet_v2*") == ["inception_resnet_v2", "inception_resnet_v2_paper"]


@pytest.mark.parametrize("name", ZOO)
def test_parameter_count_and_macs_match_the_reference(name: str) -> None:
    with torch.device("meta"):
        model = ir.create_model(name)
    assert count_parameters(model) == PARAMS[name]
    assert model_macs(name) / 1e9 == pytest.approx(GMACS[name], abs=5e-4)


@pytest.mark.parametrize("name", ZOO)
def test_shapes_at_299_75_and_non_square(name: str, full_models) -> None:
    model = full_models[name]
    with torch.inference_mode():
        assert model(torch.randn(1, 3, 299, 299)).shape == (1, 1000)
        assert model.forward_features(torch.randn(1, 3, 299, 299)).shape == (1, NUM_FEATURES[name], 8, 8)
        assert model(torch.randn(2, 3, 75, 75)).shape == (2, 1000)
        features = model.forward_features(torch.randn(1, 3, 75, 139))
    assert features.shape[:2] == (1, NUM_FEATURES[name])
    assert features.shape[2] == 1 and features.shape[3] == 3


@pytest.mark.parametrize("name", ALL)
def test_minimum_size_runs_and_below_it_a_clear_error(name: str) -> None:
    minimum = MIN_SIZE.get(name, 75)
    model = small(name, **with_aux(name)).train()
    assert model.metadata.min_input_size == minimum
    out = model(torch.randn(2, 3, minimum, minimum))
    assert (out[0] if isinstance(out, tuple) else out).shape == (2, 7)
    model.eval()
    message = rf"{name}: input of {minimum - 1}x100 is too small; the minimum is {minimum}x{minimum}"
    with pytest.raises(ValueError, match=message):
        model(torch.randn(1, 3, minimum - 1, 100))
    with pytest.raises(ValueError, match=message):
        model.forward_features(torch.randn(1, 3, minimum - 1, 100))
    with pytest.raises(ValueError, match=r"expected 3 input channels, got 1"):
        model(torch.randn(1, 1, 100, 100))
    with pytest.raises(ValueError, match=r"4-d batch"):
        model(torch.randn(3, 100, 100))


@pytest.mark.parametrize("name", ALL)
def test_backward_reaches_every_parameter(name: str) -> None:
    model = small(name, **with_aux(name)).train()
    out = model(torch.randn(2, 3, 128, 128))
    if isinstance(out, tuple):
        loss = out[0].logsumexp(1).sum() + 0.3 * sum(a.logsumexp(1).sum() for a in out[1:])
    else:
        loss = out.logsumexp(1).sum()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    assert all(p.grad.abs().sum() > 0 for n, p in model.named_parameters() if "bn.bias" not in n)


@pytest.mark.parametrize("name", ALL)
def test_torchscript_and_channels_last_give_the_same_output(name: str) -> None:
    options = {"transform_input": True} if "transform_input" in model_options(name) else {}
    model = small(name, **with_aux(name), **options).eval()
    x = torch.randn(2, 3, 96, 110)
    with torch.no_grad():
        expected = model(x)
        scripted = torch.jit.script(model)
        assert torch.allclose(scripted(x), expected, atol=1e-5)
        cl_model = small(name, **with_aux(name), **options).eval()
        cl_model.load_state_dict(model.state_dict())
        cl_model = cl_model.to(memory_format=torch.channels_last)
        out = cl_model(x.to(memory_format=torch.channels_last))
    assert torch.allclose(out, expected, atol=1e-4)
    with pytest.raises(torch.jit.Error, match="too small"):
        scripted(torch.randn(1, 3, MIN_SIZE.get(name, 75) - 1, 60))


@pytest.mark.parametrize("name", ALL)
def test_features_only_levels_and_strides(name: str) -> None:
    model = ir.create_model(name, features_only=True, width_multiplier=0.25).eval()
    reference = ir.create_model(name, width_multiplier=0.25).eval()
    reference.load_state_dict(model.state_dict(), strict=False)
    size = 128 if name in MIN_SIZE else 299
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        levels = model(x)
        final = reference.forward_features(x)
    assert [f.shape[1] for f in levels] == [i.num_chs for i in model.feature_info]
    assert [i.reduction for i in model.feature_info] == [2, 4, 8, 16, 32]
    stride4 = 73 if name in ("inception_v4", "inception_resnet_v2_paper") else 71  # Mixed_3a vs Conv2d_4a
    spatial = [64, 32, 16, 8, 4] if name in MIN_SIZE else [147, stride4, 35, 17, 8]
    assert [f.shape[-1] for f in levels] == spatial
    assert torch.equal(levels[-1], final)
    with torch.device("meta"):
        full = ir.create_model(name, features_only=True)
    assert [i.num_chs for i in full.feature_info] == FEATURE_CHANNELS[name]
    picked = ir.create_model(name, features_only=True, out_indices=(1, 3), width_multiplier=0.25).eval()
    picked.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert [f.shape[-1] for f in picked(x)] == [spatial[1], spatial[3]]
        assert torch.equal(picked(x)[1], levels[3])


@pytest.mark.parametrize("name", ALL)
def test_head_api(name: str) -> None:
    model = small(name).eval()
    x = torch.randn(2, 3, 80, 96)
    with torch.no_grad():
        features = model.forward_features(x)
        pooled = model.forward_head(features, pre_logits=True)
        assert pooled.shape == (2, model.num_features)
        assert torch.allclose(model.forward_head(features), model(x))
        model.reset_classifier(3)
        assert model(x).shape == (2, 3)
        assert model.metadata.num_classes == 3
        model.reset_classifier(0)
        assert model(x).shape == (2, model.num_features)


@pytest.mark.parametrize("name", ["inception_v3", "inception_v4", "inception_resnet_v2"])
def test_aux_head_at_every_valid_size(name: str) -> None:
    model = small(name, aux_logits=True).train()
    for size in (75, 107, 160, 299):
        out = model(torch.randn(2, 3, size, size))
        assert isinstance(out, ir.InceptionOutput)
        assert out.logits.shape == (2, 7) and out.aux_logits.shape == (2, 7)
    model.eval()
    with torch.no_grad():
        assert isinstance(model(torch.randn(1, 3, 99, 99)), torch.Tensor)
    plain = small(name).train()
    assert isinstance(plain(torch.randn(2, 3, 80, 80)), torch.Tensor)


@pytest.mark.parametrize("name", ["inception_resnet_v1", "inception_resnet_v2", "inception_resnet_v2_paper"])
def test_residual_scale(name: str) -> None:
    default = small(name).eval()
    blocks = [m for m in default.modules() if isinstance(m, ScaledResidual)]
    scales = {round(b.scale, 2) for b in blocks}
    assert {0.17, 0.1, 0.2} <= scales
    unscaled = small(name, residual_scale=1.0).eval()
    unscaled.load_state_dict(default.state_dict())
    x = torch.randn(1, 3, 90, 90)
    with torch.no_grad():
        assert not torch.allclose(default(x), unscaled(x))
        block = next(m for m in unscaled.modules() if isinstance(m, ScaledResidual))
        h = torch.relu(torch.randn(1, block.in_channels, 9, 9))
        branches = torch.cat([block[k](h) for k in block if k != "conv2d"], 1)
        assert torch.allclose(block(h), torch.relu(h + block.conv2d(branches)), atol=1e-6)
    per_type = small(name, residual_scale=(0.3, 0.2, 0.1))
    assert {round(b.scale, 2) for b in per_type.modules() if isinstance(b, ScaledResidual)} >= {0.3, 0.2, 0.1}
    with pytest.raises(ValueError, match="residual_scale"):
        small(name, residual_scale=(0.1, 0.2))


@pytest.mark.parametrize(
    "name", ["inception_resnet_v1", "inception_resnet_v2", "inception_resnet_v2_paper", "inception_resnet_v1_facenet"]
)
def test_without_shortcuts_only_the_identity_paths_go(name: str, one_thread) -> None:
    kwargs = {"num_classes": 7} if name != "inception_resnet_v1_facenet" else {}
    residual = ir.create_model(name, width_multiplier=0.25, **kwargs).eval()
    plain = ir.create_model(name, width_multiplier=0.25, shortcut=False, **kwargs).eval()
    plain.load_state_dict(residual.state_dict())  # the same parameters, key for key
    assert count_parameters(plain) == count_parameters(residual)
    assert model_macs(name, (3, 99, 99), width_multiplier=0.25, shortcut=False, **kwargs) == model_macs(
        name, (3, 99, 99), width_multiplier=0.25, **kwargs
    )
    blocks = [m for m in plain.modules() if isinstance(m, ScaledResidual)]
    assert blocks and not any(b.shortcut for b in blocks)
    assert all(b.shortcut for b in residual.modules() if isinstance(b, ScaledResidual))
    x = torch.randn(1, 3, 99, 99)
    with torch.no_grad():
        assert not torch.allclose(plain(x), residual(x), atol=1e-4)
        # block by block: the pre-activation outputs differ by exactly the input (the identity path)
        for with_sc, without in zip(
            [m for m in residual.modules() if isinstance(m, ScaledResidual)], blocks, strict=True
        ):
            h = torch.randn(1, with_sc.in_channels, 5, 5)
            with_sc.activate, without.activate = False, False
            assert torch.allclose(with_sc(h) - without(h), h, atol=1e-5)
            assert "shortcut=False" in repr(without)


def test_network_without_shortcuts_scripts_and_trains() -> None:
    model = small("inception_resnet_v1", shortcut=False)
    scripted = torch.jit.script(model.eval())
    x = torch.randn(1, 3, 80, 80)
    with torch.no_grad():
        assert torch.allclose(scripted(x), model(x), atol=1e-5)
    model.train()
    model(torch.randn(2, 3, 80, 80)).sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_released_ir_v2_last_block_is_unscaled_without_relu() -> None:
    model = small("inception_resnet_v2")
    assert model.block8.scale == 1.0 and model.block8.activate is False
    assert len(model.repeat) == 10 and len(model.repeat_1) == 20 and len(model.repeat_2) == 9


@pytest.mark.parametrize("name", ALL)
def test_width_multiplier_rounds_to_multiples_of_8(name: str) -> None:
    with torch.device("meta"):
        model = ir.create_model(name, width_multiplier=0.5)
        full = ir.create_model(name)
    widths = {m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)}
    assert all(w % 8 == 0 for w in widths if w != 1000)
    assert count_parameters(model) < 0.5 * count_parameters(full)
    with pytest.raises(ValueError, match="width_multiplier"):
        ir.create_model(name, width_multiplier=0)


def test_metadata_and_unknown_options() -> None:
    meta = ir.create_model("inception_resnet_v2", in_chans=1).metadata
    assert meta.input_size == (1, 299, 299) and meta.crop_pct == 0.8975 and meta.mean == (0.5, 0.5, 0.5)
    assert meta.interpolation == "bicubic" and meta.min_input_size == 75
    with pytest.raises(ValueError, match="unknown model 'inception_v5'"):
        ir.create_model("inception_v5")


def test_in_chans_one() -> None:
    model = small("inception_resnet_v1", in_chans=1).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 75, 75)).shape == (2, 7)


def test_compile_runs() -> None:
    model = small("inception_resnet_v1").eval()
    x = torch.randn(1, 3, 75, 75)
    compiled = torch.compile(model, backend="eager")
    with torch.no_grad():
        assert torch.allclose(compiled(x), model(x), atol=1e-5)


@pytest.mark.parametrize("name", ir.list_models())
@pytest.mark.parametrize("multiplier", [0.125, 0.3])
def test_odd_width_multipliers_give_consistent_networks(name: str, multiplier: float) -> None:
    """Each block is built for the width its predecessor really produces (they differ once rounded)."""
    aux = {"aux_logits": True} if "aux_logits" in model_options(name) else {}
    aux.update({"classify": True} if "classify" in model_options(name) else {})  # facenet: logits, not embeddings
    model = ir.create_model(name, width_multiplier=multiplier, num_classes=4, **aux).train()
    out = model(torch.randn(2, 3, 120, 120))
    assert (out[0] if isinstance(out, tuple) else out).shape == (2, 4)
    extractor = ir.create_model(name, width_multiplier=multiplier, features_only=True).eval()
    levels = extractor(torch.randn(1, 3, 120, 120))
    assert [f.shape[1] for f in levels] == [i.num_chs for i in extractor.feature_info]


def test_unknown_option_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="inception_v4 has no option 'residual_scale'; its options are: width_mult"):
        ir.create_model("inception_v4", residual_scale=0.1)
