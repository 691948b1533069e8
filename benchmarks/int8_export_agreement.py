"""Why an int8 ONNX file can disagree with the network: top-1 agreement of int8 exports with our fp32 model.

A network trained on Fashion-MNIST by our trainer (default: GoogLeNet at width 0.25, 75x75, as the tests train
it; ``--checkpoint`` reuses one) is quantized on training images and compared with the fp32 model on validation
images, which no variant calibrates on:

* ONNX Runtime's static quantization to QDQ (what ``export --format onnx --precision int8`` writes), with one
  weight scale per output channel or per tensor (ONNX Runtime's default), on the ONNX export of our folded
  graph and of the plain network;
* the same calibrated on random noise instead of images;
* OpenVINO IR quantized by NNCF as ``export --format openvino --precision int8`` does it (activation ranges
  from the minimum and maximum over the calibration images, no bias correction) and with NNCF's default
  settings, and our PT2E int8 model;
* a per-tensor QDQ file compared with our int8 model instead of fp32 (two quantized models).

    python benchmarks/int8_export_agreement.py --threads 2 --out docs/results
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script from a checkout: use the package in src/
    sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "src"))

from inception_resnet import create_model  # noqa: E402
from inception_resnet.bench import publish  # noqa: E402
from inception_resnet.bench.fashion_network import train_fashion_network  # noqa: E402
from inception_resnet.data import build_dataset, multi_crop_transform_for, subset  # noqa: E402
from inception_resnet.data.calibration import load_calibration  # noqa: E402
from inception_resnet.environment import environment, environment_lines  # noqa: E402
from inception_resnet.inference import deploy, optimize_for_inference, rewrite_for_inference  # noqa: E402
from inception_resnet.inference.openvino_backend import convert, quantize  # noqa: E402
from inception_resnet.weights.export import onnx_bytes  # noqa: E402


def trained(args: argparse.Namespace, folder: str) -> str:
    try:
        return str(train_fashion_network(Path(folder) / "run", args.model, args.width, torch.get_num_threads()))
    except RuntimeError as error:
        raise SystemExit(f"{error}; nothing to compare") from error


def nncf_defaults(network, calibration: torch.Tensor):
    """NNCF's quantization as it comes: per-image mean of the activation ranges, fast bias correction."""
    import warnings

    import nncf

    images = [image[None].numpy() for image in calibration.float()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nncf.quantize(network, nncf.Dataset(images), subset_size=len(images))


def logits_of(run, images: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.as_tensor(np.asarray(run(piece.contiguous().numpy()))) for piece in images.split(100)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="googlenet")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--checkpoint", default=None, help="a trained 10-class checkpoint (default: train one)")
    parser.add_argument("--check-images", type=int, default=1000)
    parser.add_argument("--calibration-images", type=int, default=256)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", default=None, help="write int8-export-agreement-<date>.{json,md} here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="int8-agreement-") as scratch:
        checkpoint = args.checkpoint or trained(args, scratch)
        model = create_model(args.model, width_multiplier=args.width, num_classes=10, pretrained=checkpoint).eval()
    transform = multi_crop_transform_for(model, 1, input_size=75)
    val = subset(
        build_dataset("fashion-mnist", "val", lambda image: transform(image)[0], download=False), args.check_images
    )
    check = torch.stack([val[i][0] for i in range(len(val))])
    calibration = load_calibration("fashion-mnist", transform, args.calibration_images, download=False)
    noise = torch.randn(len(calibration), *calibration.shape[1:], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fp32 = model(check).argmax(1)
    folded, plain = (onnx_bytes(m, calibration[:2]) for m in (rewrite_for_inference(model), model))
    variants = {
        "ONNX QDQ, per-channel weights, folded graph (our export)": (folded, True, calibration),
        "ONNX QDQ, per-tensor weights, folded graph": (folded, False, calibration),
        "ONNX QDQ, per-channel weights, plain export": (plain, True, calibration),
        "ONNX QDQ, per-tensor weights, plain export": (plain, False, calibration),
        "ONNX QDQ, per-channel weights, calibrated on random noise": (folded, True, noise),
    }
    rows = []
    per_tensor = None
    for name, (data, per_channel, images) in variants.items():
        quantized = deploy.quantize_onnx(data, images, per_channel=per_channel)
        top1 = logits_of(deploy._onnx_runner(quantized), check).argmax(1)
        per_tensor = top1 if per_tensor is None and not per_channel else per_tensor
        rows.append({"variant": name, "agreement": 100 * (top1 == fp32).float().mean().item()})
    converted = convert(model, calibration[:1])
    for name, network in (
        (
            "OpenVINO IR, NNCF int8: min-max ranges, no bias correction (our export)",
            quantize(converted, [calibration])[0],
        ),
        ("OpenVINO IR, NNCF int8 with NNCF's default settings", nncf_defaults(converted, calibration)),
    ):
        xml, weights = deploy._openvino_files(network)
        top1 = logits_of(deploy._openvino_runner(xml, weights, "int8"), check).argmax(1)
        rows.append({"variant": name, "agreement": 100 * (top1 == fp32).float().mean().item()})
    ours = optimize_for_inference(model, precision="int8", calibration=calibration, compile=False)
    with torch.no_grad():
        ours_top1 = torch.cat([ours(piece) for piece in check.split(100)]).argmax(1)
    rows.append(
        {
            "variant": f"our int8 model ({ours.plan.precision}, PT2E)",
            "agreement": 100 * (ours_top1 == fp32).float().mean().item(),
        }
    )
    rows.append(
        {
            "variant": "ONNX QDQ per-tensor against our int8 model, not fp32",
            "agreement": 100 * (per_tensor == ours_top1).float().mean().item(),
        }
    )
    env = environment()
    lines = [
        f"# Top-1 agreement of int8 exports with the fp32 model: {args.model} x{args.width:g}, Fashion-MNIST",
        "",
        *environment_lines(env),
        f"- {len(check)} validation images at 75px; calibration: {len(calibration)} training images",
        "",
        "| variant | top-1 agreement with fp32 |",
        "|---|---:|",
        *(f"| {r['variant']} | {r['agreement']:.1f}% |" for r in rows),
    ]
    publish(lines, args.out, "int8-export-agreement", {"environment": env, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
