"""The CUDA code paths, each checked against the CPU path the main suite tests (run on a GPU machine).

``make test-gpu`` or ``python -m pytest -q tests_gpu`` (``benchmarks/gpu_session.sh`` runs it first, then the
GPU benchmark suite). What only a GPU runs: batched nvJPEG decoding and cropping on the device in
``evaluate``, bf16 autocast with channels_last, training in bf16 and fp16 (gradient scaler) with
channels_last and ``torch.compile``, and the optimised inference copy and fused training heads on CUDA.
Tolerances: fp32 on the GPU with TF32 off, 1e-4 as on the CPU; bf16, 5% of the output's scale.
"""

from __future__ import annotations

import copy
import math
import warnings
from pathlib import Path

import pytest
import torch
from tests.test_evaluate import write_tree
from tests.test_optimize import assert_same_training_step, small
from torchvision.io import read_file

from inception_resnet import create_model
from inception_resnet.data import CorruptImageWarning, EncodedImage, decode_encoded, decode_file
from inception_resnet.evaluation.evaluate import evaluate
from inception_resnet.inference import fuse_branches, optimize_for_inference
from inception_resnet.training import TrainConfig, train

CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def exact_float32():
    """Full fp32 matrix products (no TF32), so that fp32 comparisons mean what they say."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    return write_tree(tmp_path_factory.mktemp("photos"), corrupt=True)


def test_batched_nvjpeg_decodes_like_libjpeg_and_isolates_the_corrupt_file(photos: Path) -> None:
    files = sorted(str(p) for p in photos.rglob("*.jpg"))
    encoded = [EncodedImage(read_file(f), f) for f in files]
    with pytest.warns(CorruptImageWarning):
        images, kept, skipped = decode_encoded(encoded, CUDA)
    assert skipped == [f for f in files if f.endswith("truncated.jpg")]
    assert len(images) == len(files) - 1
    for image, index in zip(images, kept, strict=True):
        reference = decode_file(files[index])
        assert image.is_cuda and image.dtype == torch.uint8 and image.shape == reference.shape
        difference = (image.cpu().int() - reference.int()).abs().float()
        assert difference.mean() < 2.0, files[index]  # nvJPEG and libjpeg-turbo round a few levels apart


def spread_model() -> torch.nn.Module:
    """A small network whose random classifier, centred and scaled, tells these photos apart.

    Features after a ReLU are positive, so a random classifier favours one class for every image; removing
    the weights' mean over classes and scaling them up makes the predictions differ from photo to photo
    (checked below on the CPU results, so that agreement between the paths means something).
    """
    torch.manual_seed(2)
    model = create_model("inception_resnet_v1", width_multiplier=0.25, num_classes=3).eval()
    with torch.no_grad():
        weight = model.get_classifier().weight
        weight.sub_(weight.mean(0, keepdim=True)).mul_(20.0)
    return model


@pytest.mark.parametrize("crops", [1, 144])
def test_gpu_evaluation_sees_the_images_the_cpu_sees(photos: Path, crops: int) -> None:
    model = spread_model()
    cpu = evaluate(model, str(photos), crops=crops, keep_probabilities=True, batch_size=144)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptImageWarning)
        gpu = evaluate(model, str(photos), crops=crops, keep_probabilities=True, batch_size=144, device="cuda",
                       gpu_decode=True)
        fast = evaluate(model, str(photos), crops=crops, keep_probabilities=True, batch_size=144, device="cuda",
                        gpu_decode=True, amp="bf16", channels_last=True)
    assert cpu.num_images == gpu.num_images == fast.num_images == 7
    assert cpu.num_skipped == gpu.num_skipped == fast.num_skipped == 1
    assert torch.equal(cpu.targets, gpu.targets.cpu())
    assert len(set(cpu.probabilities.argmax(1).tolist())) >= 2  # the photos get different predictions,
    assert float(cpu.probabilities.max(1).values.std()) > 0.03  # and different confidences
    assert float((gpu.probabilities.cpu() - cpu.probabilities).abs().max()) < 0.1  # decode and resize on the GPU
    assert float((fast.probabilities.cpu() - gpu.probabilities.cpu()).abs().max()) < 0.1  # bf16 + channels_last
    agree = (gpu.probabilities.cpu().argmax(1) == cpu.probabilities.argmax(1)).sum()
    assert int(agree) >= 6


@pytest.mark.parametrize("name", ["inception_v4", "inception_resnet_v2"])
def test_optimised_inference_on_cuda_fp32_and_bf16(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name).eval().to(CUDA)
    x = torch.randn(8, 3, 299, 299, device=CUDA)
    fast = optimize_for_inference(model, channels_last=True)
    with torch.no_grad():
        expected = model(x)
        assert float((fast(x.contiguous(memory_format=torch.channels_last)) - expected).abs().max()) < 1e-4
        with torch.autocast("cuda", dtype=torch.bfloat16):
            low = fast(x.contiguous(memory_format=torch.channels_last)).float()
    assert float((low - expected).abs().max()) <= 0.05 * float(expected.abs().max()) + 1e-3


def test_fused_training_heads_on_cuda_train_exactly_like_the_plain_network() -> None:
    """The CPU suite's float64 check of a whole network, with cuDNN doing the arithmetic."""
    plain = small("inception_resnet_v1").double().train().to(CUDA)
    fused = copy.deepcopy(plain)
    assert fuse_branches(fused).groups_fused > 0
    assert_same_training_step(plain, fused, torch.randn(4, 3, 139, 139, dtype=torch.float64, device=CUDA))


@pytest.mark.parametrize("precision, compile", [("bf16", False), ("fp16", False), ("bf16", True)])
def test_training_on_the_gpu(tmp_path: Path, precision: str, compile: bool) -> None:
    config = TrainConfig.from_dict(dict(
        model="inception_resnet_v1", width_multiplier=0.25, data="synthetic:256:4", input_size=75,
        batch_size=32, epochs=2, device="cuda", precision=precision, channels_last=True, compile=compile,
        progress=False, tensorboard=False, num_workers=0, run_dir=str(tmp_path / "run"),
    ))
    summary = train(config)
    assert summary.status == "completed" and summary.epochs_completed == 2
    for row in summary.history:
        for key in ("train_loss", "val_top1_error", "ema_val_top1_error", "grad_norm", "images_per_second"):
            assert math.isfinite(row[key]), key
    assert summary.history[-1]["train_loss"] < summary.history[0]["train_loss"] + 0.5
    assert Path(summary.last_checkpoint).is_file()
    resumed = train(TrainConfig.from_dict({**config.to_dict(), "epochs": 3, "resume": "auto"}))
    assert resumed.status == "completed" and resumed.epochs_completed == 3
