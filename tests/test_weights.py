"""Weights in the layouts people already have: timm and torchvision state dicts, files, mismatches."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision

import inception_resnet as ir
from inception_resnet.weights import load_weights, save_weights


@pytest.mark.parametrize("name", ["inception_v3", "inception_v4", "inception_resnet_v2"])
def test_timm_weights_give_timm_outputs(name: str) -> None:
    reference = timm.create_model(name).eval()
    ours = ir.create_model(name, pretrained=reference.state_dict()).eval()
    x = torch.randn(1, 3, 299, 299)
    with torch.no_grad():
        assert (ours(x) - reference(x)).abs().max() <= 1e-4


def test_torchvision_inception_v3_with_and_without_aux(tmp_path) -> None:
    reference = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False).eval()
    path = tmp_path / "tv.pth"
    torch.save(reference.state_dict(), path)
    x = torch.randn(1, 3, 160, 160)
    plain = ir.create_model("inception_v3", pretrained=path).eval()
    with_aux = ir.create_model("inception_v3", pretrained=str(path), aux_logits=True)
    with torch.no_grad():
        assert (plain(x) - reference(x)).abs().max() <= 1e-4
    with_aux.train()
    reference.train()
    x = torch.randn(2, 3, 299, 299)
    torch.manual_seed(1)
    ours = with_aux(x)
    torch.manual_seed(1)
    theirs = reference(x)
    assert (ours.aux_logits - theirs.aux_logits).abs().max() <= 1e-4
    assert plain.metadata.weights == str(path)


def test_background_class_is_dropped_or_kept(tmp_path) -> None:
    reference = timm.create_model("inception_v4", num_classes=1001).eval()
    ours = ir.create_model("inception_v4", pretrained=reference.state_dict()).eval()
    kept = ir.create_model("inception_v4", num_classes=1001, pretrained=reference.state_dict()).eval()
    x = torch.randn(1, 3, 75, 75)
    with torch.no_grad():
        full = reference(x)
        assert torch.allclose(ours(x), full[:, 1:], atol=1e-4)
        assert torch.allclose(kept(x), full, atol=1e-4)


def test_safetensors_round_trip_and_checkpoint_nesting(tmp_path) -> None:
    model = ir.create_model("inception_resnet_v1", width_multiplier=0.25, num_classes=5).eval()
    save_weights(model, tmp_path / "w.safetensors")
    torch.save(
        {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "ckpt.pth"
    )
    x = torch.randn(1, 3, 75, 75)
    for file in ("w.safetensors", "ckpt.pth"):
        again = ir.create_model(
            "inception_resnet_v1", width_multiplier=0.25, num_classes=5, pretrained=tmp_path / file
        ).eval()
        with torch.no_grad():
            assert torch.equal(again(x), model(x))


def test_cadene_classifier_name_is_accepted() -> None:
    reference = timm.create_model("inception_resnet_v2").eval()
    state = reference.state_dict()
    state["last_linear.weight"] = state.pop("classif.weight")
    state["last_linear.bias"] = state.pop("classif.bias")
    ours = ir.create_model("inception_resnet_v2", pretrained=state).eval()
    assert torch.equal(ours.classif.weight, reference.classif.weight)


def test_mismatches_name_the_keys(tmp_path) -> None:
    model = ir.create_model("inception_v4", num_classes=10)
    state = timm.create_model("inception_v4").state_dict()
    with pytest.raises(ValueError, match=r"wrong shape key\(s\): last_linear.weight \(file \(1000, 1536\)"):
        load_weights(model, state)
    state.pop("features.0.conv.weight")
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"missing key\(s\): features.0.conv.weight.*unexpected key\(s\): extra"):
        load_weights(ir.create_model("inception_v4"), state)
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        ir.create_model("inception_v4", pretrained=tmp_path / "nope.pth")
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="could not be read"):
        ir.create_model("inception_v4", pretrained=tmp_path / "broken.pth")
