"""Pretrained weights from every published source: hub tags, TF-slim checkpoints, Keras files, facenet-pytorch.

Each converter is checked against its home library where that library installs here: TF-slim's own
Inception-v3 graph (the ``tf-slim`` package) and its checkpoint, Keras' InceptionResNetV2 / InceptionV3 and
their weight files, facenet-pytorch's InceptionResnetV1 and its state dict, timm's models in a
huggingface_hub cache. TF-slim's Inception-v4 and Inception-ResNet-v2 code is not packaged anywhere
installable, so those two are checked on checkpoints written in the released variable naming and layout
(V1 format, as the released ``.ckpt`` files), with the variable totals of the released checkpoints.
"""

from __future__ import annotations

import importlib
import re
import sys
import zipfile

import h5py
import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import inception_resnet as ir
from inception_resnet.cli import main
from inception_resnet.weights import hub, load_weights, save_weights
from inception_resnet.weights.convert import tf_checkpoint, tf_slim, tf_slim_layout

CROSS_FRAMEWORK_ATOL = 1e-3


# Keras 3.15 on numpy 2 warns once per layer call about __array__'s copy keyword: noise, not ours.
pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"),
]


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics and offsets, so that a swapped or missing one shows in the outputs."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model


def max_diff(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())


# -- hub tags -------------------------------------------------------------------------------------------------
def fake_hub_cache(cache, repo_id: str, state: dict[str, torch.Tensor], revision: str = "0123abcd") -> None:
    """Lay out a file as huggingface_hub's cache does: models--org--name/{refs/main, snapshots/<rev>/file}."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(snapshot / "model.safetensors"))


def test_hub_tag_is_read_from_the_cache_offline(tmp_path, monkeypatch) -> None:
    """A tag's file in the cache is used without network; the tag's preprocessing and accuracy are recorded.
    (That timm's state dicts give timm's outputs is tests/test_weights.py's job; a small model keeps this fast.)"""
    original = randomize_batchnorm(ir.create_model("inception_v3", width_multiplier=0.25)).eval()
    fake_hub_cache(tmp_path / "hub", "timm/inception_v3.gluon_in1k", original.state_dict())
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = ir.create_model("inception_v3", width_multiplier=0.25, pretrained="timm/inception_v3.gluon_in1k").eval()
    x = torch.randn(2, 3, 75, 75)
    with torch.no_grad():
        assert max_diff(model(x), original(x)) <= 1e-6
    meta = model.metadata
    assert meta.weights == "timm/inception_v3.gluon_in1k"
    assert (meta.extra["top1"], meta.extra["top5"]) == (78.806, 94.372)
    assert (meta.crop_pct, meta.interpolation, meta.crop_mode) == (0.875, "bicubic", "center")
    assert meta.mean == (0.485, 0.456, 0.406) and meta.std == (0.229, 0.224, 0.225)


def test_hub_tag_is_downloaded_once_then_read_from_the_cache(tmp_path, monkeypatch) -> None:
    import huggingface_hub

    source = ir.create_model("inception_resnet_v1", width_multiplier=0.25)
    calls = []

    def fake_download(repo_id, filename, *, revision=None, cache_dir=None, **_):
        calls.append((repo_id, filename))
        fake_hub_cache(tmp_path / "hub", repo_id, source.state_dict())
        return str(tmp_path / "hub" / f"models--{repo_id.replace('/', '--')}" / "snapshots" / "0123abcd" / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    monkeypatch.setattr(hub, "endpoint_unreachable", lambda *args, **kwargs: None)  # as if the hub answered
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    first = hub.resolve_tag("someone/irv1.small")
    second = hub.resolve_tag("hf-hub:someone/irv1.small")
    assert first == second and first.is_file()
    assert calls == [("someone/irv1.small", "model.safetensors")]


def test_hub_tag_offline_without_a_copy_says_what_to_download(tmp_path, monkeypatch) -> None:
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(hub.HubUnavailableError) as offline:
        ir.create_model("inception_v4", pretrained="timm/inception_v4.tf_in1k")
    assert "hf download timm/inception_v4.tf_in1k" in str(offline.value)
    assert "--weights ./inception_v4.tf_in1k/model.safetensors" in str(offline.value)

    def no_network(*args, **kwargs):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_network)
    with pytest.raises(hub.HubUnavailableError, match="could not download timm/inception_v4.tf_in1k.*hf download"):
        ir.create_model("inception_v4", pretrained="timm/inception_v4.tf_in1k")
    with pytest.raises(ValueError, match="holds weights for inception_v3, not inception_v4"):
        ir.create_model("inception_v4", pretrained="timm/inception_v3.tf_in1k")
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        ir.create_model("inception_v4", pretrained="weights/missing.pth")


def test_known_tags_table_lists_the_published_accuracies() -> None:
    table = hub.tags_table()
    for tag in (
        "inception_v4.tf_in1k",
        "inception_resnet_v2.tf_in1k",
        "inception_resnet_v2.tf_ens_adv_in1k",
        "inception_v3.tv_in1k",
        "inception_v3.tf_in1k",
        "inception_v3.gluon_in1k",
    ):
        assert f"`timm/{tag}`" in table
    assert "| 80.434 | 95.312 | 0.8975 |" in table
    assert [t.repo_id for t in hub.tags_for("inception_v4")] == ["timm/inception_v4.tf_in1k"]


# -- TF-slim --------------------------------------------------------------------------------------------------
TF_THREADS = {"intra_op_parallelism_threads": 1, "inter_op_parallelism_threads": 1}


@pytest.fixture(scope="module")
def tf():
    """TensorFlow, imported after torch._dynamo (the other order crashes a later torch._dynamo import), on one
    thread: TF's idle pool threads otherwise spin and slow PyTorch down several-fold on CI's two cores."""
    tf = tf_checkpoint.import_tensorflow()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TF's context was already initialised by an earlier test
        pass
    return tf


def import_tf_slim():
    """tf-slim 1.1 builds its layers through TF's tf_keras shims, which look for tf_keras.legacy_tf_layers;
    tf-keras 2.21 keeps those modules under tf_keras.src, so they are aliased before importing tf_slim."""
    for suffix in ("", ".base", ".variable_scope_shim", ".core", ".convolutional", ".pooling", ".normalization"):
        sys.modules.setdefault(
            "tf_keras.legacy_tf_layers" + suffix, importlib.import_module("tf_keras.src.legacy_tf_layers" + suffix)
        )
    return importlib.import_module("tf_slim"), importlib.import_module("tf_slim.nets.inception_v3")


def test_tf_slim_inception_v3_checkpoint_gives_tf_slim_outputs(tf, tmp_path) -> None:
    """The real TF-slim graph, random weights saved by its Saver in the V1 format of the released files."""
    slim, slim_v3 = import_tf_slim()
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (2, 299, 299, 3)).astype(np.float32)
    path = str(tmp_path / "inception_v3.ckpt")
    with tf.Graph().as_default():
        tf.compat.v1.set_random_seed(0)
        x = tf.compat.v1.placeholder(tf.float32, [None, 299, 299, 3])
        with slim.arg_scope(slim_v3.inception_v3_arg_scope()):
            logits, end_points = slim_v3.inception_v3(x, num_classes=1001, is_training=False)
        randomize = []
        for v in tf.compat.v1.global_variables():
            if v.name.endswith("moving_variance:0"):
                randomize.append(v.assign(tf.random.uniform(v.shape, 0.5, 1.5)))
            elif v.name.endswith(("beta:0", "moving_mean:0", "biases:0")):
                randomize.append(v.assign(tf.random.normal(v.shape, 0.0, 0.1)))
        with tf.compat.v1.Session(config=tf.compat.v1.ConfigProto(**TF_THREADS)) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            session.run(tf.group(*randomize))
            tf.compat.v1.train.Saver(write_version=tf.compat.v1.train.SaverDef.V1).save(
                session, path, write_meta_graph=False
            )
            expected, expected_aux = session.run([logits, end_points["AuxLogits"]], {x: images})
    batch = torch.from_numpy(images).permute(0, 3, 1, 2)
    kept = ir.create_model("inception_v3", num_classes=1001, aux_logits=True, pretrained=path).eval()
    dropped = ir.create_model("inception_v3", pretrained=path).eval()
    with torch.no_grad():
        features, aux_input = kept.forward_body(batch)
        assert max_diff(kept.forward_head(features), expected) <= CROSS_FRAMEWORK_ATOL
        assert max_diff(kept.AuxLogits(aux_input), expected_aux) <= CROSS_FRAMEWORK_ATOL
        assert max_diff(dropped(batch), expected[:, 1:]) <= CROSS_FRAMEWORK_ATOL
    assert np.abs(expected).max() > 1.0  # the comparison is not between near-zero outputs
    assert kept.metadata.label_offset == 1 and dropped.metadata.label_offset == 0
    assert (kept.metadata.crop_mode, kept.metadata.interpolation) == ("tf", "bilinear")
    assert not any(m.count_include_pad for m in kept.modules() if isinstance(m, nn.AvgPool2d))


SLIM_NAMES = {
    "inception_v4": (
        "InceptionV4/Mixed_5b/Branch_0/Conv2d_0a_1x1/weights",
        "InceptionV4/Mixed_6h/Branch_2/Conv2d_0e_1x7/BatchNorm/moving_variance",
        "InceptionV4/Mixed_7d/Branch_1/Conv2d_0c_3x1/BatchNorm/beta",
        "InceptionV4/AuxLogits/Conv2d_2a/weights",
        "InceptionV4/AuxLogits/Aux_logits/biases",
        "InceptionV4/Logits/Logits/weights",
    ),
    "inception_resnet_v2": (
        "InceptionResnetV2/Repeat/block35_10/Conv2d_1x1/biases",
        "InceptionResnetV2/Repeat_1/block17_20/Branch_1/Conv2d_0c_7x1/weights",
        "InceptionResnetV2/Repeat_2/block8_9/Conv2d_1x1/weights",
        "InceptionResnetV2/Block8/Branch_0/Conv2d_1x1/BatchNorm/moving_mean",
        "InceptionResnetV2/AuxLogits/Conv2d_2a_5x5/weights",
        "InceptionResnetV2/AuxLogits/Logits/weights",
        "InceptionResnetV2/Logits/Logits/biases",
    ),
}
# Trainable values of the released checkpoints (no gamma, 1001 classes, aux head).
SLIM_TRAINABLE = {"inception_v4": 46_009_106, "inception_resnet_v2": 59_182_258}


@pytest.mark.parametrize("name", ["inception_v4", "inception_resnet_v2"])
def test_tf_slim_checkpoint_in_the_released_layout_round_trips(tf, tmp_path, name: str) -> None:
    """TF-slim's v4 / IR-v2 code is not installable: the released variable names and totals (reference,
    sections 8 and 9.6) are checked on the full-size layout, and a V1 checkpoint written with those names,
    [kh, kw, in, out] kernels, no gamma and 1001 classes must load back to the same outputs, background
    row dropped, auxiliary head included (names do not depend on width: a narrow model keeps it fast)."""
    with torch.device("meta"):
        full = ir.create_model(name, num_classes=1001, aux_logits=True)
    shapes = tf_slim.slim_variable_shapes(full)
    assert set(SLIM_NAMES[name]) <= set(shapes)
    assert not any("gamma" in k for k in shapes)
    assert shapes[f"{SLIM_NAMES[name][-1].rsplit('/', 1)[0]}/weights"] == (1536, 1001)
    trainable = sum(int(np.prod(s)) for k, s in shapes.items() if not k.endswith(("moving_mean", "moving_variance")))
    assert trainable == SLIM_TRAINABLE[name]

    original = randomize_batchnorm(ir.create_model(name, num_classes=1001, aux_logits=True, width_multiplier=0.25))
    variables = tf_slim.to_slim_variables(original.eval())
    assert set(variables) == set(shapes)
    path = str(tmp_path / f"{name}.ckpt")
    names = sorted(variables)
    tf.raw_ops.Save(filename=path, tensor_names=names, data=[tf.constant(variables[k]) for k in names])
    model = ir.create_model(name, aux_logits=True, width_multiplier=0.25, pretrained=path).eval()
    x = torch.randn(2, 3, 107, 107)
    with torch.no_grad():
        got, got_aux = model.forward_body(x)
        want, want_aux = original.forward_body(x)
        assert max_diff(model.forward_head(got), original.forward_head(want)[:, 1:]) <= 1e-4
        assert max_diff(model.AuxLogits(got_aux), original.AuxLogits(want_aux)[:, 1:]) <= 1e-4
        assert all(
            float(m.weight.min()) == float(m.weight.max()) == 1.0
            for m in model.modules()
            if isinstance(m, nn.BatchNorm2d)
        )


def test_tf_slim_errors_are_clear(tmp_path, monkeypatch, capsys) -> None:
    bad = tmp_path / "inception_v4.ckpt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="could not be read as a TensorFlow checkpoint"):
        ir.create_model("inception_v4", pretrained=bad)
    with pytest.raises(ValueError, match="no TF-slim checkpoint layout for inception_resnet_v1"):
        tf_slim_layout.slim_layers(ir.create_model("inception_resnet_v1", width_multiplier=0.25))
    v3 = ir.create_model("inception_v3", width_multiplier=0.25)
    partial = {k: v for k, v in tf_slim.to_slim_variables(v3).items() if "Mixed_7c" not in k}
    with pytest.raises(ValueError, match=r"lacks 36 variable\(s\).*InceptionV3/Mixed_7c/Branch_0"):
        tf_slim.state_from_slim(v3, partial)
    with pytest.raises(ValueError, match="no auxiliary head.*build it without aux_logits"):
        tf_slim.state_from_slim(ir.create_model("inception_v3", width_multiplier=0.25, aux_logits=True), partial)
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # as if the tf extra were not installed
    with pytest.raises(ImportError, match=r"pip install 'inception-resnet\[tf\]'"):
        tf_checkpoint.read_checkpoint(bad)
    assert main(["predict", str(bad), "--model", "inception_v4", "--weights", str(bad)]) == 2
    assert "needs TensorFlow: pip install" in capsys.readouterr().err  # a message, not a traceback


# -- Keras ----------------------------------------------------------------------------------------------------
def keras_random_model(builder, size: int, seed: int):
    import keras

    model = builder(weights=None, input_shape=(size, size, 3), classifier_activation=None)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            beta, mean, var = layer.get_weights()
            layer.set_weights(
                [
                    rng.normal(0, 0.1, beta.shape).astype("float32"),
                    rng.normal(0, 0.1, mean.shape).astype("float32"),
                    rng.uniform(0.5, 1.5, var.shape).astype("float32"),
                ]
            )
    return model


def write_published_h5(model, path, skip: tuple[str, ...] = (), group: str | None = None) -> None:
    """A Keras-2-era weights file as the published ones are laid out: root ``layer_names``, one group per
    layer with ``weight_names`` such as ``conv2d_1/kernel:0``, auto-numbered names starting at 1.
    ``skip=("predictions",)`` writes an include_top=False (``_notop``) file; ``group="model_weights"`` the
    layout of a whole model saved with ``model.save("x.h5")``."""
    numbered = re.compile(r"^(conv2d|batch_normalization)(?:_(\d+))?$")
    ranks: dict[str, list[str]] = {}
    for layer in model.layers:
        match = numbered.match(layer.name)
        if match:
            ranks.setdefault(match.group(1), []).append(layer.name)
    rename = {}
    for base, names in ranks.items():
        for rank, name in enumerate(sorted(names, key=lambda n: int(numbered.match(n).group(2) or 0)), start=1):
            rename[name] = f"{base}_{rank}"
    layers = [layer for layer in model.layers if layer.name not in skip]
    with h5py.File(path, "w") as root:
        f = root.create_group(group) if group else root
        f.attrs["layer_names"] = [rename.get(layer.name, layer.name).encode() for layer in layers]
        f.attrs["backend"], f.attrs["keras_version"] = b"tensorflow", b"2.1.5"
        for layer in layers:
            name = rename.get(layer.name, layer.name)
            group = f.create_group(name)
            weight_names = [f"{name}/{w.name.split('/')[-1]}:0" for w in layer.weights]
            group.attrs["weight_names"] = [n.encode() for n in weight_names]
            for weight_name, value in zip(weight_names, layer.get_weights(), strict=True):
                group.create_dataset(weight_name, data=value)


def test_keras_inception_resnet_v2_published_h5_gives_keras_outputs(tf, tmp_path) -> None:
    import keras

    reference = keras_random_model(keras.applications.InceptionResNetV2, 107, seed=1)
    images = np.random.default_rng(2).uniform(-1, 1, (2, 107, 107, 3)).astype("float32")
    expected = reference(images, training=False).numpy()
    file = tmp_path / "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels.h5"
    write_published_h5(reference, file)
    write_published_h5(reference, tmp_path / "saved_model.h5", group="model_weights")
    for path in (file, tmp_path / "saved_model.h5"):
        model = ir.create_model("inception_resnet_v2", pretrained=path).eval()
        with torch.no_grad():
            assert max_diff(model(torch.from_numpy(images).permute(0, 3, 1, 2)), expected) <= CROSS_FRAMEWORK_ATOL
    assert np.abs(expected).max() > 0.1  # the comparison is not between near-zero outputs
    with pytest.raises(ValueError, match="InceptionResNetV2 .*InceptionV3"):
        ir.create_model("inception_v4", width_multiplier=0.25, pretrained=file)


def test_keras_inception_v3_weights_h5_gives_keras_outputs(tf, tmp_path) -> None:
    import keras

    reference = keras_random_model(keras.applications.InceptionV3, 107, seed=3)
    images = np.random.default_rng(4).uniform(-1, 1, (2, 107, 107, 3)).astype("float32")
    expected = reference(images, training=False).numpy()
    reference.save_weights(tmp_path / "inception_v3.weights.h5")  # Keras 3's own layout
    with zipfile.ZipFile(tmp_path / "inception_v3.keras", "w") as archive:  # a .keras file keeps it inside
        archive.write(tmp_path / "inception_v3.weights.h5", "model.weights.h5")
    for file in ("inception_v3.weights.h5", "inception_v3.keras"):
        model = ir.create_model("inception_v3", pretrained=tmp_path / file).eval()
        with torch.no_grad():
            assert max_diff(model(torch.from_numpy(images).permute(0, 3, 1, 2)), expected) <= CROSS_FRAMEWORK_ATOL
    assert model.metadata.extra["avg_pool"].startswith("padding excluded")
    notop = tmp_path / "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
    write_published_h5(reference, notop, skip=("predictions",))
    with pytest.raises(ValueError, match="no classifier .*num_classes=0"):
        ir.create_model("inception_v3", pretrained=notop)
    features = ir.create_model("inception_v3", num_classes=0, pretrained=notop).eval()
    with torch.no_grad():
        pooled = features(torch.from_numpy(images).permute(0, 3, 1, 2))
        assert max_diff(model.fc(pooled), expected) <= CROSS_FRAMEWORK_ATOL


# -- facenet-pytorch ------------------------------------------------------------------------------------------
def test_facenet_pytorch_state_dict_gives_the_same_embeddings(tmp_path) -> None:
    from facenet_pytorch import InceptionResnetV1

    reference = randomize_batchnorm(InceptionResnetV1(classify=True, num_classes=8631)).eval()
    file = tmp_path / "20180402-114759-vggface2.pt"
    torch.save(reference.state_dict(), file)
    ours = ir.create_model("inception_resnet_v1_facenet", num_classes=8631, pretrained=file).eval()
    assert list(ours.state_dict()) == list(reference.state_dict())  # key for key, in the same order
    faces = torch.randn(2, 3, 107, 107)  # facenet's faces are 160x160; the body takes any size from 75
    captured = {}
    reference.last_bn.register_forward_hook(lambda module, inputs, output: captured.update(bn=output))
    with torch.no_grad():
        logits = reference(faces)  # classify=True: logits; the embedding is its normalised last_bn output
        embeddings = torch.nn.functional.normalize(captured["bn"], p=2, dim=1)
        assert max_diff(ours(faces), embeddings) <= 1e-4  # facenet's default: the embedding
        ours.classify_output = True
        assert max_diff(ours(faces), logits) <= 1e-4
    assert logits.shape == (2, 8631) and embeddings.shape == (2, 512)
    embedding_only = ir.create_model("inception_resnet_v1_facenet", num_classes=0, pretrained=file)
    assert "logits.weight" not in embedding_only.state_dict()
    assert torch.equal(embedding_only.last_bn.running_var, reference.last_bn.running_var)
    with pytest.raises(ValueError, match="8631 identities \\(VGGFace2\\).*num_classes=8631"):
        ir.create_model("inception_resnet_v1_facenet", pretrained=file)
    assert embedding_only.metadata.input_size == (3, 160, 160)


def test_local_folder_and_facenet_round_trip(tmp_path) -> None:
    model = ir.create_model("inception_resnet_v1_facenet", num_classes=0, width_multiplier=0.25).eval()
    (tmp_path / "dl").mkdir()
    save_weights(model, tmp_path / "dl" / "model.safetensors")
    again = ir.create_model("inception_resnet_v1_facenet", num_classes=0, width_multiplier=0.25)
    notes = load_weights(again, tmp_path / "dl")
    assert notes == []
    x = torch.randn(1, 3, 75, 75)
    with torch.no_grad():
        assert torch.equal(again.eval()(x), model(x))
