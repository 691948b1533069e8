"""One API for classifier heads: names, reset, fine-tuning to another class count and freezing, on every model."""

from __future__ import annotations

import warnings

import pytest
import torch

import inception_resnet as ir
from inception_resnet.cli.eval import MemberSpec, build_member
from inception_resnet.evaluation.class_check import check_classes
from inception_resnet.models.registry import model_options
from inception_resnet.training import TrainConfig, load_checkpoint, train
from inception_resnet.training.finetune import freeze_body, load_pretrained
from inception_resnet.weights import read_state_dict, save_weights

WITH_AUX = [n for n in ir.list_models() if "aux_logits" in model_options(n)]
CLASSIFIERS = {  # the main classifier, then the auxiliary ones (built with aux_logits=True)
    "googlenet": ["fc", "aux1.fc2", "aux2.fc2"],
    "inception_v3": ["fc", "AuxLogits.fc"],
    "inception_v4": ["last_linear", "AuxLogits.fc"],
    "inception_resnet_v2": ["classif", "AuxLogits.fc"],
}


def build(name: str, num_classes: int) -> ir.InceptionNet:
    return ir.create_model(name, num_classes=num_classes, width_multiplier=0.25, aux_logits=True)


def test_models_with_auxiliary_heads_are_the_ones_listed() -> None:
    assert sorted(WITH_AUX) == sorted(CLASSIFIERS)


@pytest.mark.parametrize("name", ir.list_models())
def test_classifier_names_name_the_layers_that_output_classes(name: str) -> None:
    options = {"classify": True} if "classify" in model_options(name) else {}
    model = ir.create_model(name, num_classes=5, width_multiplier=0.25, **options)
    names = model.classifier_names()
    assert names[0] == model.classifier_name and model.get_classifier() is model.get_submodule(names[0])
    assert all(model.get_submodule(n).out_features == 5 for n in names)
    if name in CLASSIFIERS:
        assert build(name, 5).classifier_names() == CLASSIFIERS[name]
    else:
        assert names == [model.classifier_name]


@pytest.mark.parametrize("name", WITH_AUX)
def test_reset_classifier_resets_every_head(name: str) -> None:
    model = build(name, 5)
    model.reset_classifier(3)
    assert [model.get_submodule(n).out_features for n in model.classifier_names()] == [3] * len(CLASSIFIERS[name])
    out = model.train()(torch.randn(2, 3, 80, 80))
    assert all(o.shape == (2, 3) for o in out)


@pytest.mark.parametrize("name", WITH_AUX)
def test_fine_tuning_from_1000_classes_to_10_replaces_every_head_and_freezing_leaves_them_trainable(name: str) -> None:
    source = build(name, 1000)
    target = build(name, 10)
    notes = load_pretrained(target, source.state_dict())
    heads = CLASSIFIERS[name]
    assert all(f"{h}.weight" in " ".join(notes) for h in heads)
    own, original = target.state_dict(), source.state_dict()
    body = [k for k in own if not k.startswith(tuple(f"{h}." for h in heads))]
    assert body and all(torch.equal(own[k], original[k]) for k in body)
    assert all(target.get_submodule(h).out_features == 10 for h in heads)
    trainable = freeze_body(target)
    assert sorted(trainable) == sorted(f"{h}.{p}" for h in heads for p in ("weight", "bias"))
    out = target.train()(torch.randn(2, 3, 80, 80))
    sum(o.logsumexp(1).sum() for o in out).backward()
    assert all(target.get_submodule(h).weight.grad is not None for h in heads)
    assert all(p.grad is None for n, p in target.named_parameters() if n not in trainable)


def test_googlenet_fine_tunes_with_its_auxiliary_heads_from_1000_class_weights(tmp_path) -> None:
    weights = save_weights(build("googlenet", 1000), tmp_path / "googlenet.safetensors")
    config = TrainConfig(
        model="googlenet",
        model_options={"aux_logits": True, "width_multiplier": 0.25},
        pretrained=str(weights),
        freeze_body=True,
        data="synthetic:8:4",
        input_size=64,
        batch_size=4,
        epochs=1,
        threads=1,
        progress=False,
        num_workers=0,
        tensorboard=False,
        ema_decay=0.0,
        run_dir=str(tmp_path / "run"),
    )
    summary = train(config)
    trained = load_checkpoint(summary.last_checkpoint)["model"]
    assert [trained[f"{h}.weight"].shape[0] for h in CLASSIFIERS["googlenet"]] == [4, 4, 4]
    source = read_state_dict(weights)
    body = [k for k in trained if not k.startswith(("fc.", "aux1.fc2.", "aux2.fc2."))]
    assert body and all(torch.equal(trained[k], source[k]) for k in body)  # loaded, then frozen


def body_and_heads(model: ir.InceptionNet) -> tuple[dict, dict]:
    heads = tuple(f"{h}." for h in model.classifier_names())
    state = model.state_dict()
    return (
        {k: v for k, v in state.items() if not k.startswith(heads)},
        {k: v for k, v in state.items() if k.startswith(heads)},
    )


@pytest.mark.parametrize(
    ("name", "options", "heads"),
    [
        ("googlenet", {"aux_logits": True}, "fc, aux1.fc2, aux2.fc2"),
        ("inception_resnet_v1", {}, "classif"),
    ],
)
def test_create_model_with_another_class_count_loads_the_body_and_leaves_every_head_new(
    name: str, options: dict, heads: str
) -> None:
    source = ir.create_model(name, num_classes=1000, width_multiplier=0.25, **options).state_dict()
    torch.manual_seed(7)
    fresh = ir.create_model(name, num_classes=10, width_multiplier=0.25, **options)
    torch.manual_seed(7)  # loading draws no random numbers: the heads are those of a model built afresh
    with pytest.warns(UserWarning, match=f"{name}: .*; {heads} left newly initialised for num_classes=10"):
        model = ir.create_model(name, num_classes=10, width_multiplier=0.25, pretrained=source, **options)
    body, new_heads = body_and_heads(model)
    assert body and all(torch.equal(v, source[k]) for k, v in body.items())
    assert new_heads and all(torch.equal(v, fresh.state_dict()[k]) for k, v in new_heads.items())
    assert all(model.get_submodule(h).out_features == 10 for h in model.classifier_names())
    with pytest.warns(UserWarning, match=f"; {heads} dropped"):
        features = ir.create_model(name, num_classes=0, width_multiplier=0.25, pretrained=source, **options)
    reference = ir.create_model(name, width_multiplier=0.25, pretrained=source, **options).eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        assert torch.equal(features.eval()(x), reference.forward_head(reference.forward_features(x), pre_logits=True))


def test_create_model_keeps_matching_weights_silent_and_the_default_class_count_strict() -> None:
    ten = ir.create_model("inception_v3", num_classes=10, width_multiplier=0.25).state_dict()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = ir.create_model("inception_v3", num_classes=10, width_multiplier=0.25, pretrained=ten)
    assert torch.equal(model.fc.weight, ten["fc.weight"])
    with pytest.raises(ValueError, match=r"wrong shape key\(s\): fc.weight"):
        ir.create_model("inception_v3", width_multiplier=0.25, pretrained=ten)  # 1000 by default: must fit


def test_eval_members_load_their_weights_strictly(tmp_path) -> None:
    weights = save_weights(
        ir.create_model("inception_v3", num_classes=10, width_multiplier=0.25), tmp_path / "ten.safetensors"
    )
    options = {"width_multiplier": 0.25}
    assert build_member(MemberSpec("inception_v3", str(weights)), 10, 3, options).num_classes == 10
    # the weights record their 10 classes: the member keeps them (a new head would score nothing), and the
    # evaluation refuses data of 4 classes
    member = build_member(MemberSpec("inception_v3", str(weights)), 4, 3, options)
    assert member.num_classes == 10
    with pytest.raises(ValueError, match="has 10 outputs .* the data has 4 classes"):
        check_classes(member, ["a", "b", "c", "d"])


def test_facenet_fine_tunes_to_other_identities_and_keeps_its_own_error_by_default() -> None:
    source = ir.create_model("inception_resnet_v1_facenet", num_classes=20, classify=True, width_multiplier=0.25)
    target = ir.create_model("inception_resnet_v1_facenet", num_classes=10, classify=True, width_multiplier=0.25)
    notes = load_pretrained(target, source.state_dict())
    assert "logits.weight" in " ".join(notes) and target.logits.out_features == 10
    assert torch.equal(target.last_linear.weight, source.last_linear.weight)
    with pytest.raises(ValueError, match="classify 20 identities .* num_classes=1000"):
        ir.create_model("inception_resnet_v1_facenet", width_multiplier=0.25, pretrained=source.state_dict())
