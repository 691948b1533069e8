"""Shared test settings: a fixed seed, no network, and an import order that keeps TensorFlow and torch apart;
the loader of the scripts in ``benchmarks/``."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
import torch._dynamo  # noqa: E402,F401  (imported before TensorFlow: the other order crashes the process)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _backend_cache(tmp_path_factory, monkeypatch) -> None:
    """``backend="auto"`` remembers its timings in a folder of the session, never in the user's cache."""
    monkeypatch.setenv("INCEPTION_RESNET_CACHE", str(tmp_path_factory.getbasetemp() / "backend-cache"))


@pytest.fixture(autouse=True)
def _torch_backend_unless_marked(request, monkeypatch) -> None:
    """The commands' default backend is ``auto``, which loads OpenVINO when it is installed. Tests of other things
    run the torch backend: once OpenVINO's runtime is loaded, an unrelated later test of the same process once
    died of a segmentation fault (see the Makefile), and timing both backends costs seconds per command. The
    default itself is tested in ``tests/test_deploy.py`` (its own process), marked ``default_backend``."""
    if request.node.get_closest_marker("default_backend") is None:
        from inception_resnet.cli import inference

        monkeypatch.setattr(inference, "DEFAULT_BACKEND", "torch")


@pytest.fixture
def one_thread():
    """One intra-op thread: small models run as fast on one, and stay fast on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def benchmark_script():
    """Load a script of ``benchmarks/`` as a module: ``benchmark_script("ablation")`` (session-scoped, so that
    module fixtures may use it)."""

    def load(name: str):
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # its dataclasses look their module up by name
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def fashion_network(tmp_path_factory):
    """GoogLeNet at width 0.25 trained by our trainer on 2,048 Fashion-MNIST images for 3 epochs (75 px), with its
    one-crop evaluation transform; trained once per session (the precision and deployment tests share it)."""
    from inception_resnet import create_model
    from inception_resnet.bench.fashion_network import train_fashion_network
    from inception_resnet.data import multi_crop_transform_for

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    checkpoint = train_fashion_network(tmp_path_factory.mktemp("fashion") / "run")
    torch.set_num_threads(before)
    model = create_model("googlenet", width_multiplier=0.25, num_classes=10, pretrained=checkpoint).eval()
    model.checkpoint_path = checkpoint
    return model, multi_crop_transform_for(model, 1, input_size=75)
