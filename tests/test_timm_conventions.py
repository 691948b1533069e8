"""Weights and preprocessing as timm users expect them: ``pretrained=True``, a fast offline answer, ``pretrained_cfg``.

* ``create_model(name, pretrained=True)`` loads the model's default published hub tag, ``False``/``None`` load
  nothing, anything else is a clear ``TypeError``/``ValueError``.
* Without network a hub tag fails within seconds (not after huggingface_hub's retries) with the ``hf download``
  command and the ``--weights`` to pass afterwards; a network failure is never reported as a missing file.
* ``model.pretrained_cfg`` lets ``timm.data.resolve_data_config`` + ``create_transform`` build our own evaluation
  transform, checked on real photographs.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
import skimage.data
import timm.data
import torch
from PIL import Image
from safetensors.torch import save_file

import inception_resnet as ir
from inception_resnet.cli import build_parser, main
from inception_resnet.data.transforms import eval_transform_for
from inception_resnet.weights import hub

pytestmark = pytest.mark.usefixtures("one_thread")

OFFLINE_LIMIT_S = 5.0


def closed_port() -> int:
    """A localhost port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def no_network(tmp_path, monkeypatch):
    """An empty hub cache, HF_HUB_OFFLINE unset, and the hub endpoint a closed localhost port."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)


def assert_download_hint(message: str, repo_id: str) -> None:
    folder = repo_id.split("/")[-1]
    assert f"hf download {repo_id} model.safetensors --local-dir ./{folder}" in message
    assert f"--weights ./{folder}/model.safetensors" in message
    assert "holds none of" not in message  # a network failure is not a missing file


# -- pretrained=True / False / None / nonsense -----------------------------------------------------------------
def test_pretrained_true_takes_the_default_published_tag(tmp_path, monkeypatch) -> None:
    """True -> the model's default tag (timm's default weights), read here from a cache holding that tag only."""
    original = ir.create_model("inception_v3", width_multiplier=0.25).eval()
    repo = tmp_path / "hub" / "models--timm--inception_v3.tv_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    (repo / "snapshots" / "0123abcd").mkdir(parents=True)
    save_file(dict(original.state_dict()), str(repo / "snapshots" / "0123abcd" / "model.safetensors"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    model = ir.create_model("inception_v3", width_multiplier=0.25, pretrained=True).eval()
    x = torch.randn(1, 3, 75, 75)
    with torch.no_grad():
        torch.testing.assert_close(model(x), original(x), rtol=0, atol=1e-6)
    assert model.metadata.weights == "timm/inception_v3.tv_in1k"
    assert model.pretrained_cfg["hf_hub_id"] == "timm/inception_v3.tv_in1k"
    assert model.pretrained_cfg["tag"] == "tv_in1k"
    assert {hub.default_tag(n) for n in ("inception_v3", "inception_v4", "inception_resnet_v2")} == {
        "timm/inception_v3.tv_in1k",
        "timm/inception_v4.tf_in1k",
        "timm/inception_resnet_v2.tf_in1k",
    }


def test_pretrained_false_none_and_wrong_types() -> None:
    torch.manual_seed(0)
    a = ir.create_model("inception_resnet_v1", width_multiplier=0.25, pretrained=False)
    torch.manual_seed(0)
    b = ir.create_model("inception_resnet_v1", width_multiplier=0.25, pretrained=None)
    assert a.metadata.weights is None and b.metadata.weights is None
    torch.testing.assert_close(a.state_dict(), b.state_dict())
    for wrong in (1, 0.5, ["timm/inception_v4.tf_in1k"], object()):
        with pytest.raises(TypeError, match="pretrained must be True .* False or None .* a hub tag"):
            ir.create_model("inception_v4", width_multiplier=0.25, pretrained=wrong)
    with pytest.raises(ValueError, match="empty string"):
        ir.create_model("inception_v4", width_multiplier=0.25, pretrained="")
    with pytest.raises(ValueError, match="googlenet has no published weights.*pretrained=False"):
        ir.create_model("googlenet", pretrained=True)


# -- offline: an answer within seconds -------------------------------------------------------------------------
def test_offline_hub_tag_fails_fast_with_the_download_command(no_network) -> None:
    started = time.perf_counter()
    with pytest.raises(hub.HubUnavailableError) as caught:
        ir.create_model("inception_v4", pretrained=True)
    elapsed = time.perf_counter() - started
    assert elapsed < OFFLINE_LIMIT_S, f"took {elapsed:.1f} s"
    assert "could not download timm/inception_v4.tf_in1k" in str(caught.value)
    assert_download_hint(str(caught.value), "timm/inception_v4.tf_in1k")


def test_offline_hub_tag_fails_fast_when_connections_hang(no_network, monkeypatch) -> None:
    """A network that drops packets (no refusal, no answer): the reachability check gives up on its own."""
    released = threading.Event()

    def hang(*args, **kwargs):
        released.wait(30)
        raise OSError("timed out")

    monkeypatch.setattr(socket, "create_connection", hang)
    monkeypatch.setattr(hub, "PROBE_TIMEOUT_S", 1.0)
    started = time.perf_counter()
    try:
        with pytest.raises(hub.HubUnavailableError, match="no connection to 127.0.0.1:.* within 1 s") as caught:
            hub.resolve_tag("timm/inception_resnet_v2.tf_in1k")
    finally:
        released.set()
    assert time.perf_counter() - started < OFFLINE_LIMIT_S
    assert_download_hint(str(caught.value), "timm/inception_resnet_v2.tf_in1k")


def test_a_network_failure_during_the_download_is_not_a_missing_file(no_network, monkeypatch) -> None:
    """huggingface_hub's LocalEntryNotFoundError subclasses EntryNotFoundError; it must not read 'file missing'."""
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def fails(*args, **kwargs):
        raise LocalEntryNotFoundError("cannot find the requested files in the local cache; check your connection")

    monkeypatch.setattr(hub, "endpoint_unreachable", lambda *args, **kwargs: None)  # the check passed...
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fails)  # ...then the connection broke
    with pytest.raises(hub.HubUnavailableError, match="LocalEntryNotFoundError") as caught:
        hub.resolve_tag("timm/inception_v4.tf_in1k")
    assert_download_hint(str(caught.value), "timm/inception_v4.tf_in1k")


def test_predict_offline_answers_within_seconds_naming_existing_flags(no_network, tmp_path, capsys) -> None:
    image = tmp_path / "cat.png"
    Image.fromarray(skimage.data.chelsea()).save(image)
    started = time.perf_counter()
    code = main(["predict", str(image), "--model", "inception_v4", "--weights", "timm/inception_v4.tf_in1k"])
    elapsed = time.perf_counter() - started
    err = capsys.readouterr().err
    assert code == 2 and elapsed < OFFLINE_LIMIT_S, (code, elapsed)
    assert_download_hint(err, "timm/inception_v4.tf_in1k")
    predict = build_parser()._subparsers._group_actions[0].choices["predict"]
    assert "--weights" in predict._option_string_actions


# -- pretrained_cfg: timm builds our transform -----------------------------------------------------------------
PHOTOS = ("chelsea", "astronaut", "coffee")


@pytest.mark.parametrize(
    "changes",
    [
        {},  # the models' own defaults (timm style, 0.875)
        {"crop_pct": 0.8975},  # Inception-ResNet-v2's published weights
        {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "interpolation": "bilinear"},
    ],
    ids=["default", "irv2-crop", "imagenet-norm-bilinear"],
)
def test_timm_resolve_data_config_gives_our_transform(changes) -> None:
    model = ir.create_model("inception_v3", width_multiplier=0.25)
    model.set_metadata(**changes)
    config = timm.data.resolve_data_config({}, model=model)
    assert config == {
        "input_size": (3, 299, 299),
        "interpolation": changes.get("interpolation", "bicubic"),
        "mean": changes.get("mean", (0.5, 0.5, 0.5)),
        "std": changes.get("std", (0.5, 0.5, 0.5)),
        "crop_pct": changes.get("crop_pct", 0.875),
        "crop_mode": "center",
    }
    theirs = timm.data.create_transform(**config)
    ours = eval_transform_for(model)
    one_level = 1.0 / 255 / min(config["std"])  # one step of an 8-bit pixel after normalisation
    for name in PHOTOS:
        image = Image.fromarray(getattr(skimage.data, name)())
        a, b = theirs(image), ours(image)
        assert a.shape == b.shape == (3, 299, 299)
        difference = (a - b).abs()
        # the same pixels, up to the last bit of PIL's and torchvision's 8-bit resampling
        assert float(difference.max()) <= one_level * 1.01, name
        assert float(difference.mean()) <= 0.02 * one_level, name


def test_pretrained_cfg_keys_and_tf_style() -> None:
    model = ir.create_model("inception_resnet_v2", width_multiplier=0.25, num_classes=7, in_chans=1)
    cfg = model.pretrained_cfg
    assert cfg["architecture"] == "inception_resnet_v2" and cfg["num_classes"] == 7
    assert cfg["input_size"] == (1, 299, 299) and cfg["min_input_size"] == (1, 75, 75)
    assert cfg["classifier"] == model.classifier_name and cfg["first_conv"].endswith("conv")
    assert model.default_cfg == cfg
    # TF-slim's central-fraction crop is timm's "squash": the same region, resampled in two steps instead of one
    model = ir.create_model("inception_v3", width_multiplier=0.25)
    model.set_metadata(crop_mode="tf", interpolation="bilinear")
    config = timm.data.resolve_data_config({}, model=model)
    assert config["crop_mode"] == "squash"
    image = Image.fromarray(skimage.data.astronaut())
    difference = (timm.data.create_transform(**config)(image) - eval_transform_for(model)(image)).abs()
    assert float(difference.mean()) < 4 / 255 / 0.5
