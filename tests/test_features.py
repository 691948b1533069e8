"""timm's feature contract: ``forward_intermediates`` with timm's arguments, ``prune_intermediate_layers``, and
``features_only`` that stops after the deepest level it returns."""

from __future__ import annotations

import copy

import pytest
import timm
import torch
from torch import nn

import inception_resnet as ir
from inception_resnet.models.registry import model_options

TIMM_NAMES = ["inception_v3", "inception_v4", "inception_resnet_v2"]  # same networks, same key layout


@pytest.mark.parametrize("name", TIMM_NAMES)
def test_forward_intermediates_matches_timm(name: str) -> None:
    ours = ir.create_model(name).eval()
    theirs = timm.create_model(name, pretrained=False).eval()
    theirs.load_state_dict(ours.state_dict(), strict=False)
    x = torch.randn(1, 3, 160, 160)
    with torch.no_grad():
        for kwargs in ({}, {"indices": 2}, {"indices": [0, -1]}, {"indices": [1, 3], "stop_early": True}):
            final, maps = ours.forward_intermediates(x, **kwargs)
            their_final, their_maps = theirs.forward_intermediates(x, **kwargs)
            assert [m.shape for m in maps] == [m.shape for m in their_maps], kwargs
            assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(maps, their_maps, strict=True)), kwargs
            if not kwargs.get("stop_early"):
                assert torch.allclose(final, their_final, atol=1e-4)
        only = ours.forward_intermediates(x, indices=1, intermediates_only=True)
        assert isinstance(only, list) and len(only) == 1 and torch.equal(only[0], ours.forward_features(x))


def test_forward_intermediates_arguments_are_checked() -> None:
    model = ir.create_model("inception_v3", width_multiplier=0.25).eval()
    x = torch.randn(1, 3, 80, 80)
    with pytest.raises(ValueError, match="output_fmt must be 'NCHW'"):
        model.forward_intermediates(x, output_fmt="NHWC")
    with pytest.raises(ValueError, match="out of range"):
        model.forward_intermediates(x, indices=[5])
    with pytest.raises(ValueError, match="last-n index 6"):
        model.forward_intermediates(x, indices=6)
    with torch.no_grad():
        final, maps = model.forward_intermediates(x, indices=[1], stop_early=True, norm=True)
    assert torch.equal(final, maps[0]) and maps[0].shape[1] == model.feature_info[1].num_chs


@pytest.mark.parametrize("name", ir.list_models())
def test_features_only_stops_after_the_last_level_it_returns(name: str) -> None:
    model = ir.create_model(name, features_only=True, out_indices=(0,), width_multiplier=0.25).eval()
    later = [model.get_submodule(info.module) for info in model.feature_info[1:]]
    calls = []
    for module in later:
        module.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        levels = model(torch.randn(1, 3, 128, 128))
    assert len(levels) == 1 and levels[0].shape[1] == model.feature_info[0].num_chs
    assert not calls  # no later stage ran


def with_aux(name: str) -> dict:
    return {"aux_logits": True} if "aux_logits" in model_options(name) else {}


@pytest.mark.parametrize("name", ir.list_models())
def test_body_module_names_are_the_order_the_body_runs(name: str) -> None:
    model = ir.create_model(name, width_multiplier=0.25, **with_aux(name)).eval()
    body = model.body_module_names()
    ran = []
    for module_name in body:
        model.get_submodule(module_name).register_forward_hook(lambda *_, n=module_name: ran.append(n))
    with torch.no_grad():
        model.forward_body(torch.randn(1, 3, 96, 96))
    assert ran == body
    assert body[-1] == model.feature_info[-1].module and all(i.module in body for i in model.feature_info)


@pytest.mark.parametrize("name", TIMM_NAMES)
def test_prune_intermediate_layers_matches_timm(name: str) -> None:
    ours_full = ir.create_model(name).eval()
    theirs_full = timm.create_model(name, pretrained=False).eval()
    theirs_full.load_state_dict(ours_full.state_dict())  # the same keys: the same weights in both
    x = torch.randn(1, 3, 96, 96)
    for indices, prune_head in ((1, True), (1, False), ([0, 2], True), (2, False), ([-2], True)):
        ours, theirs = copy.deepcopy(ours_full), copy.deepcopy(theirs_full)
        kept = ours.prune_intermediate_layers(indices, prune_head=prune_head)
        assert kept == theirs.prune_intermediate_layers(indices, prune_head=prune_head)
        case = (indices, prune_head)
        assert sorted(ours.state_dict()) == sorted(theirs.state_dict()), case  # the same layers are gone
        assert ours.num_features == theirs.num_features, case
        with torch.no_grad():
            final, maps = ours.forward_intermediates(x, indices=indices)
            their_final, their_maps = theirs.forward_intermediates(x, indices=indices)
            out, their_out = ours(x), theirs(x)
        assert len(maps) == len(their_maps) == len(kept), case
        assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(maps, their_maps, strict=True)), case
        assert torch.allclose(final, their_final, atol=1e-4), case
        assert out.shape == their_out.shape and torch.allclose(out, their_out, atol=1e-4), case


def test_pruning_drops_the_auxiliary_head_as_timm_does() -> None:
    ours = ir.create_model("inception_v3", aux_logits=True, width_multiplier=0.25)
    theirs = timm.create_model("inception_v3", pretrained=False, aux_logits=True)
    assert any(k.startswith("AuxLogits.") for k in ours.state_dict())
    for model in (ours, theirs):
        assert model.prune_intermediate_layers([0, 3]) == [0, 3]
        assert model.aux_logits is False and not any(k.startswith("AuxLogits.") for k in model.state_dict())
    with torch.no_grad():
        assert ours.train()(torch.randn(2, 3, 96, 96)).shape[1] == ours.feature_info[3].num_chs  # no aux output


@pytest.mark.parametrize("name", ir.list_models())
def test_pruned_model_keeps_the_levels_asked_for_and_drops_the_rest(name: str) -> None:
    full = ir.create_model(name, width_multiplier=0.25, **with_aux(name)).eval()
    model = copy.deepcopy(full)
    assert model.prune_intermediate_layers([1, -3]) == [1, 2]
    body = model.body_module_names()
    cut = body[body.index(model.feature_info[2].module) + 1 :]
    assert cut and all(isinstance(model.get_submodule(n), nn.Identity) for n in cut)
    assert model.aux_logits is False and model.classifier_names() == [model.classifier_name]
    assert isinstance(model.get_classifier(), nn.Identity) and model.num_classes == 0
    assert model.num_features == model.feature_info[2].num_chs
    assert sum(p.numel() for p in model.parameters()) < sum(p.numel() for p in full.parameters())
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        expected = full.forward_intermediates(x, indices=[1, 2], intermediates_only=True)
        final, maps = model.forward_intermediates(x, indices=[1, 2])
        assert all(torch.equal(a, b) for a, b in zip(maps, expected, strict=True))
        assert torch.equal(final, expected[1]) and torch.equal(model(x), expected[1])  # the head is gone
        assert len(model.forward_intermediates(x, intermediates_only=True)) == 5  # every index still answers
    with pytest.raises(ValueError, match="global_pool='avg'"):
        model.reset_classifier(3)
    model.reset_classifier(3, "avg")  # a new head on the pruned body
    assert model.eval()(x).shape == (2, 3)


@pytest.mark.parametrize("name", ["googlenet", "inception_resnet_v1_facenet", "bn_inception"])
def test_pruning_only_the_head_keeps_the_body(name: str) -> None:
    full = ir.create_model(name, width_multiplier=0.25, **with_aux(name)).eval()
    kept = copy.deepcopy(full)
    assert kept.prune_intermediate_layers(1, prune_head=False) == [4]
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        assert torch.equal(kept(x), full(x))  # nothing cut: the head stays
        headless = copy.deepcopy(full)
        assert headless.prune_intermediate_layers() == [4]
        assert torch.equal(headless(x), full.forward_features(x))
    with pytest.raises(ValueError, match="out of range"):
        copy.deepcopy(full).prune_intermediate_layers([5])
