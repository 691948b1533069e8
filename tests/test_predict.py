"""``predict``: real photos (scikit-image, scikit-learn) through a model with random weights.

The weights are random, so the classes are not asserted; the pipeline is: the metadata's preprocessing,
shapes, top-k order and probabilities, the mapping of indices to the shipped ImageNet names (1000, or 1001
with background), the per-file errors and the exit status.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import skimage
import sklearn
import torch
from PIL import Image

import inception_resnet as ir
from inception_resnet.cli import main
from inception_resnet.data.transforms import eval_transform_for
from inception_resnet.evaluation.predict import class_names, imagenet_classes, load_image, predict_files
from inception_resnet.weights import save_weights

SKIMAGE = Path(skimage.__file__).parent / "data"
PHOTOS = [
    SKIMAGE / "coffee.png",  # RGB
    SKIMAGE / "camera.png",  # grey
    SKIMAGE / "logo.png",  # RGBA
    Path(sklearn.__file__).parent / "datasets" / "images" / "china.jpg",  # JPEG
]
SMALL = {"width_multiplier": 0.25}


pytestmark = pytest.mark.usefixtures("one_thread")


def small_model(num_classes: int = 1000, top: tuple[int, ...] = ()) -> torch.nn.Module:
    """A narrow Inception-v3 with random weights; ``top`` classes get a large bias, in decreasing order."""
    model = ir.create_model("inception_v3", num_classes=num_classes, **SMALL).eval()
    with torch.no_grad():
        for rank, index in enumerate(top):
            model.fc.bias[index] = 100.0 - 10.0 * rank
    return model


def test_imagenet_class_names_are_shipped() -> None:
    names = imagenet_classes()
    assert len(names) == 1000 == len(set(names))
    assert (names[0], names[1], names[999]) == ("tench", "goldfish", "toilet tissue")
    with_background = class_names(1001, label_offset=1)
    assert with_background[0] == "background" and with_background[1:] == list(names)
    assert class_names(5) == ["class 0", "class 1", "class 2", "class 3", "class 4"]


def test_predict_uses_the_weights_preprocessing_and_returns_sorted_topk() -> None:
    model = small_model()
    predictions, failures = predict_files(model, PHOTOS, 5, input_size=107, batch_size=3)
    assert failures == [] and [p.path for p in predictions] == [str(p) for p in PHOTOS]
    transform = eval_transform_for(model, input_size=107)
    batch = torch.stack([transform(Image.open(p)) for p in PHOTOS])
    assert batch.shape == (4, 3, 107, 107)
    with torch.no_grad():
        expected = torch.softmax(model(batch), 1).topk(5, dim=1)
    for i, prediction in enumerate(predictions):
        assert prediction.indices == expected.indices[i].tolist()
        assert prediction.probabilities == pytest.approx(expected.values[i].tolist(), abs=1e-6)
        assert prediction.probabilities == sorted(prediction.probabilities, reverse=True)
        assert prediction.labels == [imagenet_classes()[j] for j in prediction.indices]
    model.set_metadata(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), crop_pct=1.0)
    changed, _ = predict_files(model, PHOTOS[:1], 5, input_size=107)
    assert changed[0].probabilities != predictions[0].probabilities  # the metadata drives the preprocessing


def test_background_class_shifts_the_names_by_one() -> None:
    plain, _ = predict_files(small_model(1000, top=(0, 1)), PHOTOS[:1], 2, input_size=107)
    assert plain[0].labels == ["tench", "goldfish"]
    with_background = small_model(1001, top=(0, 1))
    with_background.set_metadata(label_offset=1)
    shifted, _ = predict_files(with_background, PHOTOS[:1], 2, input_size=107)
    assert shifted[0].indices == [0, 1] and shifted[0].labels == ["background", "tench"]
    assert shifted[0].probabilities[0] > 0.99


def test_cli_reports_bad_files_and_still_classifies_the_others(tmp_path, capsys) -> None:
    save_weights(small_model(top=(7,)), tmp_path / "w.safetensors")
    (tmp_path / "notes.jpg").write_text("this is not an image")
    (tmp_path / "cut.jpg").write_bytes(PHOTOS[3].read_bytes()[:600])
    (tmp_path / "folder").mkdir()
    bad = [tmp_path / "notes.jpg", tmp_path / "missing.png", tmp_path / "cut.jpg", tmp_path / "folder"]
    files = [PHOTOS[0], bad[0], bad[1], PHOTOS[3], bad[2], bad[3]]
    common = [
        "--model",
        "inception_v3",
        "--weights",
        str(tmp_path / "w.safetensors"),
        "--model-option",
        "width_multiplier=0.25",
        "--input-size",
        "107",
        "--topk",
        "3",
    ]
    rc = main(["predict", *map(str, files), *common, "--json"])
    captured = capsys.readouterr()
    assert rc == 1
    report = json.loads(captured.out)
    assert [p["image"] for p in report["predictions"]] == [str(PHOTOS[0]), str(PHOTOS[3])]
    assert all(len(p["top"]) == 3 and p["top"][0]["label"] == "cock" for p in report["predictions"])
    errors = {e["image"]: e["error"] for e in report["errors"]}
    assert list(errors) == [str(b) for b in bad]
    assert "not an image file" in errors[str(bad[0])]
    assert errors[str(bad[1])] == "no such file"
    assert "could not be decoded" in errors[str(bad[2])] or "not an image" in errors[str(bad[2])]
    assert "folder" in errors[str(bad[3])]
    for b in bad:
        assert f"{b}: " in captured.err
    assert "4 of 6 file(s) could not be classified" in captured.err

    rc = main(["predict", str(PHOTOS[1]), str(PHOTOS[2]), *common])
    table = capsys.readouterr().out
    assert rc == 0
    assert table.count("rank  probability  index  class") == 2 and "7  cock" in table


def test_predict_needs_class_scores_and_clear_arguments(tmp_path, capsys) -> None:
    facenet = ir.create_model("inception_resnet_v1_facenet", num_classes=0, width_multiplier=0.25)
    with pytest.raises(ValueError, match="no classifier"):
        predict_files(facenet, PHOTOS[:1])
    with pytest.raises(ValueError, match="topk must be at least 1"):
        predict_files(small_model(), PHOTOS[:1], 0)
    with pytest.raises(ValueError, match="no such file"):
        load_image(tmp_path / "nothing.png")
    rc = main(["predict", str(PHOTOS[0]), "--model", "inception_v3", "--weights", str(tmp_path / "none.pth")])
    assert rc == 2 and "weights file not found" in capsys.readouterr().err
