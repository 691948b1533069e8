"""Evaluation mechanics: crop sets, crop and ensemble averaging, metric arithmetic, results files, the CLI."""

from __future__ import annotations

import csv
import gzip
import json
import types
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.datasets import load_sample_images
from torch import nn

from inception_resnet import create_model
from inception_resnet import data as data_module
from inception_resnet.cli import main
from inception_resnet.cli.eval import MemberSpec, parse_member
from inception_resnet.data import build_dataset, build_loader, decode_file
from inception_resnet.data.crops import MultiCropTransform, crop_views, multi_crop_scales, multi_crop_transform_for
from inception_resnet.data.transforms import eval_transform_for, resize_shorter_side
from inception_resnet.evaluation.evaluate import evaluate, evaluate_loader
from inception_resnet.evaluation.forward import predict_probabilities
from inception_resnet.evaluation.metrics import EvalResult
from inception_resnet.models.metadata import ModelMetadata


def write_tree(root: Path, corrupt: bool = False) -> Path:
    """Three classes of real photographs as JPEGs (plus a truncated one when ``corrupt``)."""
    photos = {
        "animal": [skimage.data.chelsea(), skimage.data.coffee()],
        "landscape": list(load_sample_images().images),
        "object": [skimage.data.rocket(), skimage.data.astronaut(), skimage.data.immunohistochemistry()],
    }
    for name, images in photos.items():
        (root / name).mkdir(parents=True)
        for i, photo in enumerate(images):
            Image.fromarray(photo).save(root / name / f"{i}.jpg", quality=85)
    if corrupt:
        good = (root / "animal" / "0.jpg").read_bytes()
        (root / "animal" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return write_tree(tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="module")
def corrupt_tree(tmp_path_factory) -> Path:
    return write_tree(tmp_path_factory.mktemp("photos_corrupt"), corrupt=True)


class TinyNet(nn.Module):
    """A small CNN carrying the metadata evaluate() reads; cheap enough to run 144 crops and to train."""

    def __init__(self, num_classes: int = 3, input_size: int = 48, crop_mode: str = "center") -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 5, stride=2), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2), nn.ReLU())
        self.fc = nn.Linear(16, num_classes)
        self.num_classes = num_classes
        self.model_name = f"tinynet_{crop_mode}_{input_size}"
        self.metadata = ModelMetadata(
            name=self.model_name,
            source="test",
            input_size=(3, input_size, input_size),
            min_input_size=32,
            crop_mode=crop_mode,
            num_classes=num_classes,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x).mean((2, 3)))


class LookupModel(nn.Module):
    """Returns a fixed row of logits per image; the image's first pixel holds the row index."""

    def __init__(self, table: torch.Tensor, offset: int = 0) -> None:
        super().__init__()
        self.register_buffer("table", table.clone())
        self.num_classes = table.shape[1]
        self.metadata = ModelMetadata(name="lookup", source="test", num_classes=table.shape[1], label_offset=offset)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[x[:, 0, 0, 0].round().long()]


class IndexImages(torch.utils.data.Dataset):
    """Image i is a 3x4x4 tensor filled with i; labels and classes as given."""

    def __init__(self, labels: list[int], num_classes: int) -> None:
        self.targets = labels
        self.classes = [f"class{k}" for k in range(num_classes)]

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return torch.full((3, 4, 4), float(index)), self.targets[index]


def crafted_logits(labels: torch.Tensor, ranks: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Logits where the true class of row i is the ranks[i]-th most likely (1 = top)."""
    generator = torch.Generator().manual_seed(1)
    table = torch.empty(len(labels), num_classes)
    for i, (label, rank) in enumerate(zip(labels.tolist(), ranks.tolist(), strict=True)):
        scores = torch.sort(torch.rand(num_classes, generator=generator) * 10, descending=True).values
        others = [k for k in range(num_classes) if k != label]
        order = others[: rank - 1] + [label] + others[rank - 1 :]
        table[i, order] = scores
    return table


# -- crop sets --------------------------------------------------------------------------------------------
def test_crop_sets_have_the_documented_views():
    image = torch.from_numpy(skimage.data.chelsea()).permute(2, 0, 1)  # 300 x 451, landscape
    size = 96
    assert multi_crop_scales(224) == (256, 288, 320, 352) and multi_crop_scales(299) == (342, 384, 427, 470)
    views = {crops: crop_views(image, crops, size) for crops in (1, 10, 12, 144)}
    assert {c: v.shape for c, v in views.items()} == {c: (c, 3, size, size) for c in (1, 10, 12, 144)}
    # 10: centre then the four corners of the image resized to floor(96 / 0.875) = 109, then mirrors
    resized = resize_shorter_side(image, 109, eval_transform_for(TinyNet()).interpolation)
    ten = views[10]
    assert torch.equal(ten[1], resized[:, :size, :size]) and torch.equal(ten[4], resized[:, -size:, -size:])
    assert torch.equal(ten[2], resized[:, :size, -size:]) and torch.equal(ten[3], resized[:, -size:, :size])
    assert all(torch.equal(ten[5 + i], ten[i].flip(-1)) for i in range(5))
    # 144: 4 scales x 3 squares x (6 views + 6 mirrors), all distinct for a non-square photo
    many = views[144]
    assert len({view.numpy().tobytes() for view in many}) == 144
    for square in range(12):
        block = many[12 * square : 12 * square + 12]
        assert all(torch.equal(block[6 + i], block[i].flip(-1)) for i in range(6))
    first_scale = resize_shorter_side(image, multi_crop_scales(size)[0], eval_transform_for(TinyNet()).interpolation)
    left_square = first_scale[:, :, : first_scale.shape[1]]
    assert torch.equal(many[0], left_square[:, :size, :size])  # first view: top-left corner of the left square
    # 12: the 6 views of the centre square at the first scale and their mirrors = views 12..23 of the 144
    assert torch.equal(views[12], many[12:24])


def test_a_square_image_has_three_equal_squares_per_scale():
    image = torch.from_numpy(skimage.data.astronaut()).permute(2, 0, 1)
    views = crop_views(image, 144, 80)
    assert len({view.numpy().tobytes() for view in views}) == 48
    with pytest.raises(ValueError, match="crops must be one of 1, 10, 12, 144"):
        crop_views(image, 5, 80)


def test_ten_crop_average_is_the_mean_of_the_ten_single_crop_softmaxes():
    model = create_model("inception_v4", num_classes=5, width_multiplier=0.25).eval()
    transform = multi_crop_transform_for(model, 10, input_size=75)
    views = transform(Image.fromarray(skimage.data.coffee()))
    assert views.shape == (10, 3, 75, 75)
    with torch.inference_mode():
        singles = torch.stack([F.softmax(model(views[i : i + 1]), dim=1)[0] for i in range(10)])
    averaged = predict_probabilities(model, views.unsqueeze(0))[0]
    torch.testing.assert_close(averaged, singles.mean(0), rtol=1e-4, atol=1e-6)
    assert not torch.allclose(singles[0], singles[5])  # the views do differ


@pytest.mark.parametrize("crops", [1, 10, 12, 144])
def test_evaluate_averages_every_view_of_the_crop_set(tree, crops):
    model = TinyNet()
    result = evaluate(model, str(tree), crops=crops, batch_size=48, keep_probabilities=True)
    transform = multi_crop_transform_for(model, crops)
    dataset = build_dataset(str(tree), "val")
    with torch.inference_mode():
        expected = torch.stack(
            [F.softmax(model(transform(decode_file(path))), dim=1).mean(0) for path, _ in dataset.samples]
        )
    torch.testing.assert_close(result.probabilities, expected, rtol=1e-4, atol=1e-6)
    assert result.crops == crops and result.num_images == 7 and result.targets.tolist() == dataset.targets
    hits = (expected.argmax(1) == result.targets).float().mean().item() * 100
    assert result.top1_accuracy == pytest.approx(hits)


# -- ensembles --------------------------------------------------------------------------------------------
def test_ensemble_averages_the_members_softmax_each_with_its_own_preprocessing(tree):
    tf_member, timm_member = TinyNet(input_size=64, crop_mode="tf"), TinyNet(input_size=48)
    alone = [evaluate(m, str(tree), crops=10, keep_probabilities=True).probabilities for m in (tf_member, timm_member)]
    both = evaluate([tf_member, timm_member], str(tree), crops=10, weights_for_ensemble=[1, 3], keep_probabilities=True)
    torch.testing.assert_close(both.probabilities, 0.25 * alone[0] + 0.75 * alone[1], rtol=1e-4, atol=1e-6)
    assert both.ensemble_weights == [0.25, 0.75] and both.models == [tf_member.model_name, timm_member.model_name]
    equal = evaluate([tf_member, timm_member], str(tree), keep_probabilities=True)
    singles = [evaluate(m, str(tree), keep_probabilities=True).probabilities for m in (tf_member, timm_member)]
    torch.testing.assert_close(equal.probabilities, (singles[0] + singles[1]) / 2, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="2 ensemble weights given for 1 models"):
        evaluate(tf_member, str(tree), weights_for_ensemble=[1, 2])


# -- metric arithmetic with crafted logits ----------------------------------------------------------------
def test_error_counts_loss_and_per_class_accuracy_from_crafted_logits():
    num_classes, count = 7, 40
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, num_classes, (count,), generator=generator)
    ranks = torch.randint(1, num_classes + 1, (count,), generator=generator)
    table = crafted_logits(labels, ranks, num_classes)
    loader = build_loader(IndexImages(labels.tolist(), num_classes), batch_size=6)
    result = evaluate_loader(LookupModel(table), loader, per_class=True)
    assert result.num_images == count and result.num_skipped == 0
    assert result.top1_accuracy == pytest.approx(100 * (ranks == 1).sum().item() / count)
    assert result.top5_accuracy == pytest.approx(100 * (ranks <= 5).sum().item() / count)
    assert result.top1_error == pytest.approx(100 - result.top1_accuracy)
    assert result.top5_error == pytest.approx(100 * (ranks > 5).sum().item() / count)
    assert result.loss == pytest.approx(F.cross_entropy(table, labels).item(), rel=1e-5)
    for k in range(num_classes):
        members = labels == k
        if members.any():
            expected = 100 * (ranks[members] == 1).float().mean().item()
            assert result.per_class_accuracy[f"class{k}"] == pytest.approx(expected)


def test_label_offset_drops_the_background_output():
    labels = torch.arange(6) % 3
    table = crafted_logits(labels, torch.tensor([1, 2, 1, 3, 1, 1]), 3)
    with_background = torch.cat([torch.full((6, 1), 100.0), table], dim=1)
    loader = build_loader(IndexImages(labels.tolist(), 3), batch_size=4)
    plain = evaluate_loader(LookupModel(table), loader)
    offset = evaluate_loader(LookupModel(with_background, offset=1), loader)
    assert offset.top1_accuracy == plain.top1_accuracy == pytest.approx(400 / 6)
    assert offset.top5_k == plain.top5_k == 3  # top-5 counts among min(5, classes)


def test_evaluate_loader_uses_ema_weights_and_restores_training_mode():
    labels = torch.arange(8) % 4
    good = crafted_logits(labels, torch.ones(8, dtype=torch.long), 4)
    bad = crafted_logits(labels, torch.full((8,), 2), 4)
    loader = build_loader(IndexImages(labels.tolist(), 4), batch_size=3)
    live = LookupModel(bad).train()
    assert evaluate_loader(live, loader).top1_accuracy == 0.0 and live.training
    assert evaluate_loader(live, loader, ema=types.SimpleNamespace(module=LookupModel(good))).top1_accuracy == 100
    assert evaluate_loader(live, loader, ema={"table": good}).top1_accuracy == 100
    assert torch.equal(live.table, bad)
    with pytest.raises(ValueError, match="has 4 outputs .* 5 classes"):
        evaluate_loader(LookupModel(good), build_loader(IndexImages([0, 1], 5), batch_size=2))


# -- a model trained in the test, on real photos ----------------------------------------------------------
def test_a_model_fitted_to_the_photos_scores_every_one_and_skips_the_corrupt_file(corrupt_tree):
    model = TinyNet()
    transform = eval_transform_for(model)
    with pytest.warns(data_module.CorruptImageWarning):
        batches = list(build_loader(build_dataset(str(corrupt_tree), "val", transform), batch_size=8))
    images, labels = batches[0]
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(300):
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if (model(images).argmax(1) == labels).all():
            break
    assert (model(images).argmax(1) == labels).all(), "the tiny model should fit 7 photos"
    with pytest.warns(data_module.CorruptImageWarning):
        result = evaluate(model, str(corrupt_tree), per_class=True)
    assert (result.top1_accuracy, result.num_images, result.num_skipped) == (100.0, 7, 1)
    assert result.per_class_accuracy == {"animal": 100.0, "landscape": 100.0, "object": 100.0}
    assert result.skipped_files == [str(corrupt_tree / "animal" / "truncated.jpg")]
    loader = build_loader(build_dataset(str(corrupt_tree), "val", transform), batch_size=3)
    with pytest.warns(data_module.CorruptImageWarning):
        via_loader = evaluate_loader(model, loader)
    assert (via_loader.top1_accuracy, via_loader.num_skipped) == (100.0, 1)
    assert via_loader.loss == pytest.approx(result.loss, rel=1e-4)


def test_cpu_results_are_deterministic_and_mismatched_classes_are_refused(tree):
    model = TinyNet()
    first = evaluate(model, str(tree), crops=12, keep_probabilities=True)
    second = evaluate(model, str(tree), crops=12, keep_probabilities=True)
    assert torch.equal(first.probabilities, second.probabilities) and first.loss == second.loss
    other_batching = evaluate(model, str(tree), crops=12, keep_probabilities=True, batch_size=7)
    torch.testing.assert_close(other_batching.probabilities, first.probabilities, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="has 5 outputs .* 3 classes"):
        evaluate(TinyNet(num_classes=5), str(tree))


def test_bf16_autocast_and_channels_last_agree_with_float32(tree):
    model = TinyNet()
    reference = evaluate(model, str(tree), crops=10, keep_probabilities=True)
    fast = evaluate(model, str(tree), crops=10, keep_probabilities=True, precision="bf16", channels_last=True)
    torch.testing.assert_close(fast.probabilities, reference.probabilities, rtol=0, atol=2e-2)
    assert next(model.parameters()).is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_autocast_runs_the_model_in_the_dtype_asked_for(tree, precision, dtype):
    model = TinyNet()
    seen: list[torch.dtype] = []
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    conv.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    reference = evaluate(model, str(tree), keep_probabilities=True)
    assert set(seen) == {torch.float32}
    seen.clear()
    fast = evaluate(model, str(tree), keep_probabilities=True, precision=precision)
    assert set(seen) == {dtype}
    torch.testing.assert_close(fast.probabilities, reference.probabilities, rtol=0, atol=2e-2)
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16, got 'int8'"):
        evaluate(model, str(tree), precision="int8")


# -- results ----------------------------------------------------------------------------------------------
def test_results_table_json_and_csv(tmp_path):
    result = EvalResult(
        top1_accuracy=75.0,
        top5_accuracy=90.0,
        num_images=8,
        num_skipped=2,
        loss=0.5,
        crops=10,
        models=["inception_v4"],
        ensemble_weights=[1.0],
        seconds=2.0,
        per_class_accuracy={"cat": 50.0, "dog": 100.0},
    )
    table = result.format_table()
    assert "| inception_v4 | 10" in table and "25.00 %" in table and "10.00 %" in table and "| dog" in table
    result.write_json(tmp_path / "r.json")
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["top1_error"] == 25.0 and saved["top5_error"] == 10.0 and saved["num_skipped"] == 2
    assert saved["images_per_second"] == 4.0 and saved["per_class_accuracy"] == {"cat": 50.0, "dog": 100.0}
    result.write_csv(tmp_path / "r.csv")
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert len(rows) == 1 and float(rows[0]["top1_error"]) == 25.0 and rows[0]["class_accuracy/cat"] == "50.0"


# -- command line -----------------------------------------------------------------------------------------
TINY = [
    "--model",
    "inception_v4",
    "--model-option",
    "width_multiplier=0.25",
    "--input-size",
    "75",
    "--workers",
    "0",
    "--quiet",
]


def test_cli_eval_end_to_end_writes_json_and_csv(corrupt_tree, tmp_path, capsys):
    out_json, out_csv = tmp_path / "result.json", tmp_path / "result.csv"
    with pytest.warns(data_module.CorruptImageWarning):
        code = main(
            [
                "eval",
                *TINY,
                "--data",
                str(corrupt_tree),
                "--crops",
                "10",
                "--per-class",
                "--json",
                str(out_json),
                "--csv",
                str(out_csv),
            ]
        )
    assert code == 0
    saved = json.loads(out_json.read_text())
    assert (saved["num_images"], saved["num_skipped"], saved["crops"]) == (7, 1, 10)
    assert saved["models"] == ["inception_v4"] and set(saved["per_class_accuracy"]) <= {"animal", "landscape", "object"}
    row = next(csv.DictReader(out_csv.open()))
    assert float(row["top1_error"]) == pytest.approx(saved["top1_error"])
    captured = capsys.readouterr()
    assert "top-1 err" in captured.out and "truncated.jpg" in captured.err


def test_cli_weights_give_the_python_api_result_and_mismatches_are_explained(tree, tmp_path, capsys):
    model = create_model("inception_v4", num_classes=3, width_multiplier=0.25)
    torch.save(model.state_dict(), tmp_path / "tiny.pth")
    out_json = tmp_path / "r.json"
    assert (
        main(["eval", *TINY, "--weights", str(tmp_path / "tiny.pth"), "--data", str(tree), "--json", str(out_json)])
        == 0
    )
    expected = evaluate(model, str(tree), input_size=75)
    saved = json.loads(out_json.read_text())
    assert saved["top1_accuracy"] == pytest.approx(expected.top1_accuracy)
    assert saved["loss"] == pytest.approx(expected.loss, rel=1e-5)
    five = create_model("inception_v4", num_classes=5, width_multiplier=0.25)
    torch.save(five.state_dict(), tmp_path / "five.pth")
    capsys.readouterr()
    assert main(["eval", *TINY, "--weights", str(tmp_path / "five.pth"), "--data", str(tree)]) == 2
    assert "the data has 3 classes" in capsys.readouterr().err


def test_cli_errors_come_before_any_work(corrupt_tree, tmp_path, capsys):
    assert main(["eval", *TINY, "--data", str(corrupt_tree), "--json", str(tmp_path / "no" / "r.json")]) == 2
    assert "create " + str(tmp_path / "no") in capsys.readouterr().err
    assert main(["eval", *TINY, "--data", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["eval", *TINY, "--data", str(corrupt_tree), "--strict", "--limit", "3"]) == 2
    assert "truncated.jpg" in capsys.readouterr().err


def test_cli_defaults_to_fashion_mnist(tmp_path, monkeypatch):
    monkeypatch.setenv("INCEPTION_RESNET_DATA", str(tmp_path))
    spec = data_module.BUILTIN_DATASETS["fashion-mnist"]
    monkeypatch.setitem(data_module.BUILTIN_DATASETS, "fashion-mnist", replace(spec, system_dirs=()))
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, array in (
        ("t10k-images-idx3-ubyte", rng.integers(0, 256, (12, 28, 28))),
        ("t10k-labels-idx1-ubyte", np.arange(12) % 10),
    ):
        header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
        with gzip.open(raw / f"{name}.gz", "wb") as handle:
            handle.write(header + array.astype(np.uint8).tobytes())
    out_json = tmp_path / "r.json"
    assert main(["eval", *TINY, "--limit", "4", "--no-download", "--json", str(out_json)]) == 0
    saved = json.loads(out_json.read_text())
    assert saved["num_images"] == 4 and saved["dataset"].startswith("fashion-mnist")


def test_ensemble_member_syntax():
    assert parse_member("inception_v4") == MemberSpec("inception_v4")
    assert parse_member("inception_v4:w.pth") == MemberSpec("inception_v4", "w.pth")
    assert parse_member("inception_v4:w.pth:3") == MemberSpec("inception_v4", "w.pth", 3.0)
    assert parse_member("inception_v4::0.5") == MemberSpec("inception_v4", None, 0.5)
    assert parse_member("inception_resnet_v2:hf-hub:timm/x") == MemberSpec("inception_resnet_v2", "hf-hub:timm/x")


def test_multi_crop_transform_normalises_every_view():
    views = MultiCropTransform(80, 12)(Image.fromarray(skimage.data.rocket()))
    assert views.shape == (12, 3, 80, 80) and float(views.min()) >= -1.0 and float(views.max()) <= 1.0
    with pytest.raises(ValueError, match="square input size"):
        MultiCropTransform((80, 96), 10)
