"""Runs carry their model (issue #25): checkpoints and the final ``model/`` folder record the network, its
classes, input size and preprocessing, so ``eval``, ``predict`` and ``create_model`` rebuild it without being
told; the ``finetune`` recipe is the default from pretrained weights."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import inception_resnet as ir
from inception_resnet.cli import main
from inception_resnet.training import TrainConfig, train
from inception_resnet.training.checkpoint import load_checkpoint
from inception_resnet.weights.records import model_config, read_model_config, save_pretrained

CLASSES = ("cat", "dog", "owl")
TINY = dict(
    model="inception_v3",
    model_options={"width_multiplier": 0.25},
    input_size=75,
    epochs=1,
    batch_size=6,
    threads=1,
    progress=False,
    tensorboard=False,
    num_workers=0,
    log_every_steps=1,
)


def write_photos(root: Path, per_class: int = 4, val: int = 2) -> Path:
    """Coloured noise JPEGs in ``root/train/<class>`` and ``root/val/<class>``, one hue per class."""
    rng = np.random.default_rng(0)
    for split, count in (("train", per_class), ("val", val)):
        for index, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 80, (60, 60, 3), dtype=np.uint8)
                pixels[..., index] += 150
                Image.fromarray(pixels).save(folder / f"{i}.jpg")
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A completed tiny run on a folder of 3 classes at 75 px, and its data folder."""
    root = tmp_path_factory.mktemp("finetune")
    photos = write_photos(root / "photos")
    summary = train(TrainConfig.from_dict({**TINY, "data": str(photos), "run_dir": str(root / "run")}))
    assert summary.status == "completed"
    return root / "run", photos, summary


def test_checkpoints_and_the_final_folder_record_the_model(run) -> None:
    run_dir, _photos, summary = run
    state = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    config = state["model_config"]
    assert config["architecture"] == "inception_v3" and config["num_classes"] == 3
    assert config["label_names"] == list(CLASSES)
    assert config["pretrained_cfg"]["input_size"] == [3, 75, 75]
    assert config["inception_resnet"]["options"] == {"width_multiplier": 0.25}
    assert json.loads((run_dir / "model" / "config.json").read_text()) == config
    # the final folder holds the best weights alone: the averaged ones the best epoch was chosen by
    final = ir.create_model(pretrained=run_dir)
    expected = state["model_ema"]
    assert final.state_dict().keys() == expected.keys()
    assert all(torch.equal(final.state_dict()[k], expected[k]) for k in expected)
    weights_only = (run_dir / "model" / "model.safetensors").stat().st_size
    assert weights_only < 0.4 * (run_dir / "checkpoints" / "best.pt").stat().st_size
    assert final.model_name == "inception_v3" and final.num_classes == 3
    assert final.metadata.input_size == (3, 75, 75) and final.metadata.extra["classes"] == list(CLASSES)
    assert summary.best_checkpoint == str(run_dir / "checkpoints" / "best.pt")


def test_eval_and_predict_take_the_model_from_the_run(run, capsys, tmp_path) -> None:
    run_dir, photos, summary = run
    out = tmp_path / "eval.json"
    assert (
        main(["eval", "--weights", str(run_dir), "--data", str(photos), "--json", str(out), "--quiet", "--no-optimize"])
        == 0
    )
    result = json.loads(out.read_text())
    # the run's validation of the same weights on the same images, at the run's size and preprocessing
    assert result["loss"] == pytest.approx(summary.history[-1]["ema_val_loss"], abs=1e-4)
    member = result["run"]["members"][0]
    assert member["model"] == "inception_v3" and member["input_size"] == [75, 75]
    assert member["precision"] == "fp32" and member["backend"].startswith("PyTorch eager")
    assert member["preprocessing"]["crop_pct"] == 0.875 and member["threads"] >= 1
    capsys.readouterr()
    image = str(photos / "val" / "owl" / "0.jpg")
    assert (
        main(["predict", image, "--weights", str(run_dir / "checkpoints" / "best.pt"), "--json", "--no-optimize"]) == 0
    )
    printed = json.loads(capsys.readouterr().out)
    assert {entry["label"] for entry in printed["predictions"][0]["top"]} == set(CLASSES)
    assert printed["run"]["input_size"] == [75, 75] and printed["model"] == "inception_v3"


def test_flags_that_contradict_the_run_are_refused_or_warned(run, capsys) -> None:
    run_dir, photos, _summary = run
    image = str(photos / "val" / "cat" / "0.jpg")
    assert main(["predict", image, "--weights", str(run_dir), "--num-classes", "5"]) == 2
    assert "--num-classes 5 contradicts the weights" in capsys.readouterr().err
    assert main(["predict", image, "--weights", str(run_dir), "--model", "inception_v4"]) == 2
    assert "are for inception_v3, not inception_v4" in capsys.readouterr().err
    assert main(["predict", image, "--weights", str(run_dir), "--model-option", "width_multiplier=0.5"]) == 2
    assert "width_multiplier=0.5 (the weights: 0.25) contradicts the weights" in capsys.readouterr().err
    with pytest.warns(UserWarning, match=r"--input-size 99 differs .* \(75"):
        assert main(["predict", image, "--weights", str(run_dir), "--input-size", "99", "--no-optimize"]) == 0


def test_create_model_rebuilds_from_a_record_and_fine_tunes_to_other_classes(run) -> None:
    run_dir, _photos, _summary = run
    same = ir.create_model("inception_v3", pretrained=run_dir / "checkpoints" / "best.pt", width_multiplier=0.25)
    assert same.num_classes == 3 and same.new_classifiers == [] and same.load_notes == []
    with pytest.warns(UserWarning, match="fc left newly initialised for num_classes=5"):
        other = ir.create_model(pretrained=run_dir, num_classes=5)
    assert other.new_classifiers == ["fc"] and "classes" not in other.metadata.extra
    assert other.metadata.input_size == (3, 75, 75)  # the preprocessing stays the weights'
    with pytest.raises(ValueError, match="do not fit inception_v3"):  # an explicit option wins, then must fit
        ir.create_model(pretrained=run_dir, width_multiplier=0.5)
    with pytest.raises(ValueError, match="take 3-channel images, not in_chans=1"):
        ir.create_model(pretrained=run_dir, in_chans=1)
    with pytest.raises(ValueError, match="give the model name"):
        ir.create_model(pretrained=ir.create_model("googlenet").state_dict())


def test_the_final_weights_load_in_timm_with_the_same_outputs(tmp_path) -> None:
    timm = pytest.importorskip("timm")
    ours = ir.create_model("inception_v3", num_classes=3).eval()
    ours.set_metadata(input_size=(3, 96, 96), extra={"classes": list(CLASSES)})
    folder = save_pretrained(ours.state_dict(), model_config(ours), tmp_path / "model")
    theirs = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    assert theirs.pretrained_cfg["input_size"] == (3, 96, 96)
    assert theirs.pretrained_cfg["label_names"] == list(CLASSES)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(theirs(x), ours(x), rtol=0, atol=1e-5)
    assert read_model_config(folder)["architecture"] == "inception_v3"


def test_pretrained_weights_choose_the_finetune_recipe_and_their_model(run) -> None:
    run_dir, _photos, _summary = run
    config = TrainConfig(pretrained=str(run_dir)).resolved()
    assert (config.recipe, config.model, config.optimizer, config.ema_decay) == ("finetune", "inception_v3", "sgd", 0)
    assert config.warmup_epochs == pytest.approx(config.epochs / 10)
    assert TrainConfig(pretrained=str(run_dir), recipe="paper").resolved().recipe == "paper"
    assert (TrainConfig().resolved().recipe, TrainConfig().resolved().model) == ("paper", "inception_v4")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a new classifier for other classes is a note in the log, not a warning
        assert read_model_config(run_dir)["num_classes"] == 3


def test_weights_trained_on_other_classes_get_a_new_classifier(run) -> None:
    from inception_resnet.training.setup import build_network

    run_dir, _photos, _summary = run
    config = TrainConfig(pretrained=str(run_dir)).resolved()
    trained = ir.create_model(pretrained=run_dir).state_dict()
    notes: list[str] = []
    same = build_network(config, list(CLASSES), None, notes.append).state_dict()
    assert torch.equal(same["fc.weight"], trained["fc.weight"]) and not any("new classifier" in n for n in notes)
    # as many classes, other ones (here the same in another order): the weights' classifier would load
    other = build_network(config, ["owl", "dog", "cat"], None, notes.append).state_dict()
    assert notes[-1] == (
        "pretrained weights: new classifier(s) fc: the weights were trained on other classes (cat, dog, owl) "
        "than the data's (owl, dog, cat)"
    )
    assert not torch.equal(other["fc.weight"], trained["fc.weight"]) and not other["fc.bias"].any()
    assert all(torch.equal(other[k], trained[k]) for k in trained if not k.startswith("fc."))


def test_classes_choose_part_of_the_data(run, capsys) -> None:
    _run_dir, photos, _summary = run
    assert (
        main(["train", "--model", "googlenet", "--data", str(photos), "--classes", "owl", "0", "--print-config"]) == 0
    )
    printed = json.loads(capsys.readouterr().out)
    assert printed["classes"] == ["owl", "0"] and printed["num_classes"] == 2
    for classes, message in (([], "at least 1 item"), ([-1], r"classes\[0\] must be at least 0"), ("owl", "a list")):
        with pytest.raises(ValueError, match=message):
            TrainConfig(classes=classes).resolved()


def test_plot_of_a_short_run_draws_its_steps_and_no_top5_for_three_classes(run, tmp_path, monkeypatch) -> None:
    from matplotlib.axes import Axes
    from PIL import Image as PILImage

    from inception_resnet.training.plots import plot_run

    run_dir, _photos, summary = run
    drawn: list[tuple[str, int]] = []
    original = Axes.plot

    def record(axis, xs, ys, *args, **kwargs):
        drawn.append((axis.get_ylabel() or kwargs.get("label", ""), len(xs)))
        return original(axis, xs, ys, *args, **kwargs)

    monkeypatch.setattr(Axes, "plot", record)
    out = plot_run(run_dir, tmp_path / "short.png")
    assert PILImage.open(out).size[0] == 1000  # two panels wide: loss and top-1 (3 classes: no top-5 panel)
    assert summary.global_step == 2 and summary.epochs_completed == 1
    assert max(count for _label, count in drawn) == 2  # the loss of each logged step, not one point per epoch
    assert len(drawn) == 2 * 3  # loss; top-1 raw and EMA; against the epoch and the time


def test_timm_features_only_state_dicts_load(tmp_path) -> None:
    timm = pytest.importorskip("timm")
    theirs = timm.create_model("inception_v4", features_only=True, pretrained=False).eval()
    ours = ir.create_model("inception_v4", features_only=True, pretrained=theirs.state_dict()).eval()
    assert "features_0." in ours.load_notes[0]
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        for a, b in zip(theirs(x), ours(x), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_slow_starts_are_announced_before_they_begin(monkeypatch) -> None:
    import types

    from inception_resnet.cli import inference

    events: list[str] = []
    monkeypatch.setattr(inference, "load_calibration", lambda *a, **k: events.append("calibrating") or [1])
    monkeypatch.setattr(
        inference,
        "optimize_for_inference",
        lambda *a, **k: events.append("optimizing") or types.SimpleNamespace(plan="plan"),
    )
    model = ir.create_model("inception_resnet_v2")
    inference.optimize_model(model, "int8", calibration=["photos"], transform=lambda x: x, log=events.append)
    assert events[0].startswith("inception_resnet_v2: compiling with torch.compile takes two to three minutes")
    assert events[1].startswith("inception_resnet_v2: int8 calibration: reading up to 256 image(s) from photos")
    assert events[2:4] == ["calibrating", "optimizing"]
    events.clear()
    inference.optimize_model(model, "fp32", log=events.append)  # fp32 does not compile by default: no note
    assert events == ["optimizing", "inception_resnet_v2: plan"]


# -- fine-tuning against the from-scratch recipe (issue #25) -------------------------------------------------------
# benchmarks/finetune_recipe.py measures these runs over seeds and rates (docs/results/finetune-recipe-*.md); the
# test runs its default settings for seed 0: 512 images of classes 5-9 for 4 epochs at batch 32. From these weak,
# small-network features a short run needs a peak rate near the from-scratch one (the recipe's default is for
# features worth keeping, see the README): the test gives the rate the measurement chose.
FIVE_TO_FIVE_STEPS = 64
FINETUNE_LR = 0.2  # per 32 images: the best of the rates measured
FINETUNE_ERROR = 25.0  # percent top-1 on 500 test images of classes 5-9 after 64 steps (measured: 15.2, 20.6)


@pytest.fixture(scope="module")
def five_to_five(tmp_path_factory, benchmark_script):
    """GoogLeNet x0.25 trained on Fashion-MNIST classes 0-4, then on classes 5-9 from those weights by the
    finetune recipe and by the paper's from-scratch recipe, as many steps each; the benchmark's module too."""
    bench = benchmark_script("finetune_recipe")
    root = tmp_path_factory.mktemp("five-to-five")
    before = torch.get_num_threads()
    try:
        source = bench.run(bench.pretrain_settings(), root / "pretrain", threads=1)
        runs = {
            recipe: bench.run(bench.finetune_settings(source.run_dir, recipe, lr), root / recipe, threads=1)
            for recipe, lr in (("finetune", FINETUNE_LR), ("paper", None))
        }
    finally:
        torch.set_num_threads(before)
    return bench, source, runs


def test_fine_tuning_five_classes_to_the_other_five_beats_the_from_scratch_recipe(five_to_five) -> None:
    bench, source, runs = five_to_five
    finetune, paper = runs["finetune"], runs["paper"]
    assert (finetune.config["recipe"], finetune.config["optimizer"], finetune.config["ema_decay"]) == (
        "finetune",
        "sgd",
        0.0,
    )
    assert (paper.config["recipe"], paper.config["pretrained"]) == ("paper", source.run_dir)
    assert finetune.global_step == paper.global_step == FIVE_TO_FIVE_STEPS
    assert read_model_config(source.run_dir)["label_names"] == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat"]
    assert read_model_config(finetune.run_dir)["label_names"] == ["Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    error, scratch = bench.error_after(finetune), bench.error_after(paper)
    assert error < FINETUNE_ERROR, f"finetune: {error:.1f}% after {FIVE_TO_FIVE_STEPS} steps"
    assert error < scratch, f"finetune {error:.1f}% against paper {scratch:.1f}% from the same weights"
