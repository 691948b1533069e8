"""Datasets, decoding, corrupt files and transforms, on real photographs written as a tiny image folder."""

from __future__ import annotations

import gzip
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image
from sklearn.datasets import load_sample_images

from inception_resnet import create_model
from inception_resnet import data as data_module
from inception_resnet.data import (
    CorruptImageError,
    CorruptImageWarning,
    EncodedImage,
    build_dataset,
    build_loader,
    class_subset,
    decode_encoded,
    decode_file,
    subset,
)
from inception_resnet.data.augment import sample_crop_box, shift_hue, train_transform
from inception_resnet.data.transforms import central_fraction_box, eval_transform, eval_transform_for
from inception_resnet.models.metadata import ModelMetadata


def photo_classes() -> dict[str, list[np.ndarray]]:
    """Three classes of real photographs (RGB uint8) from scikit-image and scikit-learn."""
    return {
        "animal": [skimage.data.chelsea(), skimage.data.coffee()],
        "landscape": list(load_sample_images().images),
        "object": [skimage.data.rocket(), skimage.data.astronaut(), skimage.data.immunohistochemistry()],
    }


def write_tree(root: Path) -> Path:
    for name, photos in photo_classes().items():
        (root / name).mkdir(parents=True)
        for i, photo in enumerate(photos):
            Image.fromarray(photo).save(root / name / f"{i}.jpg", quality=85)
    return root


def add_corrupt_files(root: Path) -> list[Path]:
    """A truncated JPEG and a text file named .jpg, in the first class."""
    good = (root / "animal" / "0.jpg").read_bytes()
    truncated = root / "animal" / "truncated.jpg"
    truncated.write_bytes(good[: len(good) // 3])
    garbage = root / "animal" / "notes.jpg"
    garbage.write_text("not an image")
    return [truncated, garbage]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return write_tree(tmp_path_factory.mktemp("photos"))


@pytest.fixture()
def corrupt_tree(tmp_path) -> tuple[Path, list[Path]]:
    root = write_tree(tmp_path / "photos")
    return root, add_corrupt_files(root)


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def fake_idx_cache(cache: Path, folder: str, count: int = 20) -> np.ndarray:
    """IDX files in torchvision's layout (``<cache>/<folder>/raw``); returns the labels written."""
    raw = cache / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels = np.arange(count) % 10
    for split in ("train", "t10k"):
        write_idx(raw / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (count, 28, 28)))
        write_idx(raw / f"{split}-labels-idx1-ubyte.gz", labels)
    return labels


def without_package(monkeypatch, folder: Path) -> None:
    """Pretend the Debian package's files lie in ``folder`` (an empty or missing one)."""
    spec = data_module.BUILTIN_DATASETS["fashion-mnist"]
    monkeypatch.setitem(data_module.BUILTIN_DATASETS, "fashion-mnist", replace(spec, system_dirs=(str(folder),)))


# -- image folders ----------------------------------------------------------------------------------------
def test_image_folder_classes_labels_and_images(tree):
    dataset = build_dataset(str(tree), "val")
    assert dataset.classes == ["animal", "landscape", "object"]
    assert len(dataset) == 7
    assert dataset.targets == [0, 0, 1, 1, 2, 2, 2]
    image, label = dataset[2]
    height, width = load_sample_images().images[0].shape[:2]
    assert label == 1 and image.shape == (3, height, width) and image.dtype == torch.float32
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0


def test_split_folders_are_used_and_a_missing_split_is_explained(tmp_path):
    write_tree(tmp_path / "imagenet" / "val")
    dataset = build_dataset(str(tmp_path / "imagenet"), "val")
    assert len(dataset) == 7 and dataset.root == tmp_path / "imagenet" / "val"
    with pytest.raises(FileNotFoundError, match=r"no train/ folder.*--split val"):
        build_dataset(str(tmp_path / "imagenet"), "train")
    with pytest.raises(ValueError, match="split must be one of"):
        build_dataset(str(tmp_path / "imagenet"), "test")


def test_missing_directory_empty_class_and_no_images_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_dataset(str(tmp_path / "nowhere"), "val")
    root = write_tree(tmp_path / "with_empty")
    (root / "zebra").mkdir()
    with pytest.raises(ValueError, match=r"hold no images: zebra"):
        build_dataset(str(root), "val")
    (tmp_path / "bare" / "a").mkdir(parents=True)
    (tmp_path / "bare" / "a" / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match="hold no images: a"):
        build_dataset(str(tmp_path / "bare"), "val")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images in"):
        build_dataset(str(tmp_path / "empty"), "val")
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.fromarray(skimage.data.coffee()).save(flat / "coffee.jpg")
    with pytest.raises(ValueError, match="one sub-folder per class"):
        build_dataset(str(flat), "val")


def test_grey_png_and_bmp_decode_to_rgb(tmp_path):
    Image.fromarray(skimage.data.camera()).save(tmp_path / "grey.png")
    Image.fromarray(skimage.data.coffee()).save(tmp_path / "coffee.bmp")
    grey = decode_file(str(tmp_path / "grey.png"))
    assert grey.shape == (3, 512, 512) and grey.dtype == torch.uint8
    assert torch.equal(grey[0], torch.from_numpy(skimage.data.camera())) and torch.equal(grey[0], grey[2])
    bmp = decode_file(str(tmp_path / "coffee.bmp"))  # not a torchvision format: PIL decodes it
    assert torch.equal(bmp, torch.from_numpy(skimage.data.coffee()).permute(2, 0, 1))


# -- corrupt files ----------------------------------------------------------------------------------------
def test_corrupt_files_are_skipped_warned_and_counted(corrupt_tree):
    root, corrupt = corrupt_tree
    dataset = build_dataset(str(root), "val", eval_transform(80))
    loader = build_loader(dataset, batch_size=4)
    with pytest.warns(CorruptImageWarning) as caught:
        batches = list(loader)
    assert {str(p) for p in corrupt} <= {str(w.message).split(": ")[0].split()[-1] for w in caught}
    labels = torch.cat([labels for _, labels in batches])
    assert len(labels) == len(dataset) - 2
    assert loader.skipped == 2 and sorted(loader.skipped_files) == sorted(map(str, corrupt))
    assert all(images.shape[1:] == (3, 80, 80) for images, _ in batches)
    list(loader)  # a new pass counts afresh
    assert loader.skipped == 2


def test_a_batch_of_only_corrupt_files_is_not_yielded(corrupt_tree):
    root, corrupt = corrupt_tree
    dataset = build_dataset(str(root), "val", eval_transform(80))
    only_bad = data_module.DatasetSubset(dataset, [dataset.samples.index((str(p), 0)) for p in corrupt])
    loader = build_loader(only_bad, batch_size=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptImageWarning)
        assert list(loader) == []
    assert loader.skipped == 2


def test_strict_raises_naming_the_file_in_process_and_from_a_worker(corrupt_tree):
    root, corrupt = corrupt_tree
    dataset = build_dataset(str(root), "val", eval_transform(80), strict=True)
    index = dataset.samples.index((str(corrupt[0]), 0))
    with pytest.raises(CorruptImageError, match="truncated.jpg.*without --strict"):
        dataset[index]
    loader = build_loader(dataset, batch_size=4, num_workers=1)
    with pytest.raises(CorruptImageError, match=r"cannot decode image .*(truncated|notes)\.jpg") as error:
        list(loader)
    assert "Traceback" not in str(error.value)


def test_encoded_images_decode_in_batches_and_skip_corrupt_ones(corrupt_tree):
    root, corrupt = corrupt_tree
    dataset = build_dataset(str(root), "val", decode=False)
    items = [dataset[i][0] for i in range(len(dataset))]
    assert all(isinstance(item, EncodedImage) for item in items)
    with pytest.warns(CorruptImageWarning):
        images, kept, skipped = decode_encoded(items, "cpu")
    assert sorted(skipped) == sorted(map(str, corrupt)) and len(images) == len(items) - 2
    for image, index in zip(images, kept, strict=True):
        assert torch.equal(image, decode_file(dataset.samples[index][0]))
    with pytest.raises(CorruptImageError):
        decode_encoded(items, "cpu", strict=True)
    # only JPEGs that end in their end-of-image marker may go to nvJPEG, which can decode a cut-off file
    bad = set(map(str, corrupt))
    complete = {item.path for item in items if item.is_complete_jpeg}
    assert complete == {item.path for item in items if item.path.endswith(".jpg") and item.path not in bad}


# -- subsets and loaders ----------------------------------------------------------------------------------
def test_subset_is_class_balanced_deterministic_and_keeps_classes(tree):
    dataset = build_dataset(str(tree), "val")
    chosen = subset(dataset, 4, seed=1)
    assert chosen.classes == dataset.classes and len(chosen) == 4
    assert sorted(set(chosen.targets)) == [0, 1, 2]
    assert chosen.indices == subset(dataset, 4, seed=1).indices
    assert len({tuple(subset(dataset, 4, seed=s).indices) for s in range(6)}) > 1
    assert len(subset(dataset, 100)) == len(dataset)
    with pytest.raises(ValueError, match="at least 1"):
        subset(dataset, 0)


def test_class_subset_keeps_the_chosen_classes_relabelled_in_their_order(tree):
    dataset = build_dataset(str(tree), "val")  # animal (2 photos), landscape (2), object (3)
    chosen = class_subset(dataset, ["object", 0])
    assert chosen.classes == ["object", "animal"] and chosen.labels == [2, 0]
    assert chosen.targets == [1, 1, 0, 0, 0] and len(chosen) == 5  # file order kept, labels renumbered
    image, label = chosen[0]
    assert label == 1 and torch.equal(image, dataset[0][0])
    assert chosen.with_transform(eval_transform(32))[4][0].shape == (3, 32, 32)
    assert subset(chosen, 2).classes == ["object", "animal"] and sorted(subset(chosen, 2).targets) == [0, 1]
    assert class_subset(dataset, ["1"]).classes == ["landscape"]  # digits that name no class: an index
    for classes, message in (
        (["objects"], r"'objects' is not a class of the data \(did you mean object\?\)"),
        ([3], r"3 is no class index of the data \(0 to 2\)"),
        (["animal", 0], r"0 names class 0 \(animal\) a second time"),
        ([], "give at least one class"),
    ):
        with pytest.raises(ValueError, match=message):
            class_subset(dataset, classes)


def test_loader_shuffle_and_random_transforms_repeat_with_the_seed(tree):
    dataset = build_dataset(str(tree), "val", train_transform(75))

    def one_pass(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        loader = build_loader(dataset, batch_size=7, shuffle=True, num_workers=1, seed=seed)
        return next(iter(loader))

    first, again, other = one_pass(3), one_pass(3), one_pass(4)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])
    with pytest.raises(ValueError, match="either a sampler or shuffle"):
        build_loader(dataset, 2, shuffle=True, sampler=range(3))


# -- transforms -------------------------------------------------------------------------------------------
def test_eval_transform_accepts_pil_uint8_and_grey_and_scales_to_minus_one_one():
    photo = skimage.data.chelsea()
    transform = eval_transform(96, style="center")
    from_pil = transform(Image.fromarray(photo))
    from_tensor = transform(torch.from_numpy(photo).permute(2, 0, 1))
    assert from_pil.shape == (3, 96, 96) and torch.equal(from_pil, from_tensor)
    assert -1.0 <= float(from_pil.min()) < -0.5 and 0.5 < float(from_pil.max()) <= 1.0
    grey = transform(Image.fromarray(skimage.data.camera()))
    assert grey.shape == (3, 96, 96) and torch.equal(grey[0], grey[1])
    single = eval_transform(96, in_chans=1, style="center")(Image.fromarray(photo))
    assert single.shape == (1, 96, 96)


def test_small_images_are_upsampled_to_the_input_size():
    digit = torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8)
    for style in ("tf", "center", "squash"):
        assert eval_transform(75, style=style)(digit).shape == (3, 75, 75)
    assert train_transform(80)(digit).shape == (3, 80, 80)
    assert train_transform(80, in_chans=1)(digit).shape == (1, 80, 80)


def test_tf_style_keeps_the_central_fraction_and_squashes_while_timm_style_keeps_the_aspect():
    assert central_fraction_box(300, 451, 0.875) == (18, 28, 264, 395)
    image = torch.full((3, 200, 400), 128, dtype=torch.uint8)
    image[0, :, :8] = 255  # a red band on the left, inside TF's 6.25 % margin
    image[0, :, 90:100] = 255  # and one further in
    tf_view = eval_transform(100, style="tf", crop_pct=0.875, interpolation="bilinear")(image)
    timm_view = eval_transform(100, style="center", crop_pct=0.875, interpolation="bilinear")(image)
    # grey 128 normalises to about 0.004, red 255 to 1
    assert float(tf_view[0, :, :3].max()) < 0.1  # the margin band is cut off (crop starts at column 25)
    assert float(tf_view[0].max()) > 0.5  # the inner band survives the squash of 350 columns to 100
    assert float(timm_view[0].max()) < 0.1  # shorter side to 114, centre crop: both bands fall outside


def test_train_transform_crops_within_the_area_and_aspect_ranges_and_is_random():
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):
        top, left, height, width = sample_crop_box(300, 451, (0.05, 1.0), (3 / 4, 4 / 3), generator=generator)
        if (height, width) == (300, 451):
            continue  # the fallback after 100 misses
        assert 0.045 <= height * width / (300 * 451) <= 1.0
        assert 3 / 4 - 0.02 <= width / height <= 4 / 3 + 0.02
        assert 0 <= top <= 300 - height and 0 <= left <= 451 - width
    transform = train_transform(80)
    photo = Image.fromarray(skimage.data.coffee())
    first, second = transform(photo), transform(photo)
    assert first.shape == (3, 80, 80) and not torch.equal(first, second)
    assert -1.0 <= float(first.min()) and float(first.max()) <= 1.0
    torch.manual_seed(5)
    repeat_a = transform(photo)
    torch.manual_seed(5)
    assert torch.equal(repeat_a, transform(photo))


def test_hue_shift_equals_torchvision_adjust_hue():
    import torchvision.transforms.v2.functional as TF

    photo = torch.from_numpy(skimage.data.astronaut()[::4, ::4]).permute(2, 0, 1).float() / 255
    for delta in (-0.2, -0.05, 0.13, 0.2):
        torch.testing.assert_close(shift_hue(photo, delta), TF.adjust_hue(photo, delta), rtol=0, atol=1e-5)
    assert (shift_hue(photo, 0.2) - photo).abs().max() > 0.1


def test_eval_transform_for_follows_the_metadata():
    model = create_model("inception_v4", num_classes=3, width_multiplier=0.25)
    timm_style = eval_transform_for(model, input_size=96)
    assert timm_style.style == "center" and timm_style.size == (96, 96) and timm_style.crop_pct == 0.875
    tf_meta = ModelMetadata(name="tf", source="test", crop_mode="tf", crop_pct=0.9, interpolation="bilinear")
    tf_style = eval_transform_for(tf_meta)
    assert tf_style.style == "tf" and tf_style.size == (299, 299) and tf_style.crop_pct == 0.9
    assert eval_transform_for(tf_meta, style="squash").style == "squash"
    with pytest.raises(ValueError, match="too small; the minimum is 75x75"):
        eval_transform_for(model, input_size=64)


# -- Fashion-MNIST and MNIST ------------------------------------------------------------------------------
def test_fashion_mnist_and_mnist_read_from_the_cache_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("INCEPTION_RESNET_DATA", str(tmp_path))
    without_package(monkeypatch, tmp_path / "none")
    labels = fake_idx_cache(tmp_path, "FashionMNIST")
    dataset = build_dataset(None, "val", eval_transform(75), download=False)
    assert dataset.classes[0] == "T-shirt/top" and len(dataset.classes) == 10
    assert dataset.targets == labels.tolist()
    image, label = dataset[3]
    assert image.shape == (3, 75, 75) and label == 3
    fake_idx_cache(tmp_path, "MNIST")
    digits = build_dataset("mnist", "train", download=False)
    assert digits.classes == [str(d) for d in range(10)] and digits[0][0].shape == (1, 28, 28)


def test_fashion_mnist_offline_without_files_names_the_package_and_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("INCEPTION_RESNET_DATA", str(tmp_path / "cache"))
    without_package(monkeypatch, tmp_path / "none")
    with pytest.raises(RuntimeError) as error:
        build_dataset("fashion-mnist", "train", download=False)
    message = str(error.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert str(tmp_path / "cache" / "FashionMNIST" / "raw") in message and "INCEPTION_RESNET_DATA" in message


def test_fashion_mnist_from_the_debian_package_when_installed(tmp_path, monkeypatch):
    monkeypatch.setenv("INCEPTION_RESNET_DATA", str(tmp_path))
    installed = (Path(data_module.DEBIAN_FASHION_MNIST) / "t10k-images-idx3-ubyte.gz").is_file()
    if installed:
        dataset = build_dataset("fashion-mnist", "val", download=False)
        assert len(dataset) == 10_000 and len(dataset.classes) == 10
        assert sorted(set(dataset.targets)) == list(range(10))
        assert dataset[0][0].shape == (1, 28, 28)
    else:
        with pytest.raises(RuntimeError, match="dataset-fashion-mnist"):
            build_dataset("fashion-mnist", "val", download=False)


def test_caffe_weights_get_bgr_channel_order() -> None:
    """BN-Inception's Caffe-converted weights read BGR: the metadata says so and the transforms follow."""
    from inception_resnet import create_model
    from inception_resnet.data.crops import multi_crop_transform_for
    from inception_resnet.data.transforms import eval_transform_for

    model = create_model("bn_inception", width_multiplier=0.25)
    image = torch.zeros(3, 64, 64, dtype=torch.uint8)
    image[0] = 255  # pure red
    single = eval_transform_for(model, input_size=32)(image)
    views = multi_crop_transform_for(model, 10, input_size=32)(image)
    meta = model.metadata
    red_normalised = (1.0 - meta.mean[0]) / meta.std[0]
    assert torch.allclose(single[2], torch.full_like(single[2], red_normalised), atol=1e-3)  # red is last
    assert torch.allclose(views[:, 2], torch.full_like(views[:, 2], red_normalised), atol=1e-3)
    plain = eval_transform_for(create_model("googlenet", width_multiplier=0.25), input_size=32)(image)
    g_meta = create_model("googlenet").metadata
    assert torch.allclose(plain[0], torch.full_like(plain[0], (1 - g_meta.mean[0]) / g_meta.std[0]), atol=1e-3)


def test_with_transform_copies_the_dataset_and_shares_its_data(tree) -> None:
    from inception_resnet.data.builtin_datasets import IdxDataset

    folder = build_dataset(str(tree), "train")
    idx = IdxDataset(np.zeros((3, 28, 28), np.uint8), np.arange(3), ["a", "b", "c"], name="tiny")
    for dataset in (folder, idx):
        halved = dataset.with_transform(lambda image: image[..., ::2, ::2])
        assert type(halved) is type(dataset) and len(halved) == len(dataset) and halved.classes == dataset.classes
        image, label = dataset[1]
        small, same_label = halved[1]
        assert same_label == label and small.shape[-1] == (image.shape[-1] + 1) // 2
        assert dataset[1][0].dtype == torch.float32 and small.dtype == torch.uint8  # the original is unchanged
        assert dataset.with_transform(None)[1][0].dtype == torch.float32  # None: float images
