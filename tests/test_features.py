"""timm's feature contract: ``forward_intermediates`` with timm's arguments, and ``features_only`` that stops
after the deepest level it returns."""

from __future__ import annotations

import pytest
import timm
import torch

import inception_resnet as ir

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
