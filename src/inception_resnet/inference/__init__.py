"""Inference speed-ups that keep every output, and CPU inference in fp32, bf16 or int8 behind one call.

* :mod:`.optimize` - ``optimize_for_inference``, the one entry point: the rewrites alone, or with
  ``precision=`` a CPU inference model on the backend asked for (``"torch"``, ``"openvino"``, ``"auto"``);
* :mod:`.rewrites` - BatchNorm and residual-scale folding, pooling branches projecting first,
  ``rewrite_for_inference``; :mod:`.fusion` - merged 1x1 convolutions (``fuse_branches``);
* :mod:`.onednn` - convolutions packed for oneDNN with fused post-ops (``pack_for_cpu``);
* :mod:`.precision` - what runs (``plan_inference``, ``InferencePlan``) and the module that runs it
  (``InferenceModel``); :mod:`.quantize` - int8 with PyTorch's PT2E flow;
* :mod:`.torch_backend`, :mod:`.openvino_backend` - the two backends; :mod:`.autoselect` - ``backend="auto"``;
* :mod:`.deploy` - deployment files checked against our model (OpenVINO IR, int8 ONNX);
* :mod:`.tracing` - tracing one block with torch.fx and swapping in the edited graph.

Its layer (above ``training/`` and ``evaluation/``, below ``bench/``) and where a new rewrite goes:
docs/architecture.md.
"""

from .fusion import FusionReport, fuse_branches, is_fused, unfuse_branches
from .onednn import OneDNNConv2d, OneDNNConvAdd, pack_for_cpu
from .optimize import optimize_for_inference
from .precision import (
    BACKENDS,
    INFERENCE_PRECISIONS,
    InferenceModel,
    InferencePlan,
    cpu_features,
    have_openvino,
    plan_inference,
)
from .rewrites import (
    ProjectThenPool,
    commute_pool_projections,
    fold_batchnorm,
    fold_residual_scale,
    rewrite_for_inference,
)

__all__ = [
    "BACKENDS",
    "INFERENCE_PRECISIONS",
    "FusionReport",
    "InferenceModel",
    "InferencePlan",
    "OneDNNConv2d",
    "OneDNNConvAdd",
    "ProjectThenPool",
    "commute_pool_projections",
    "cpu_features",
    "fold_batchnorm",
    "fold_residual_scale",
    "fuse_branches",
    "have_openvino",
    "is_fused",
    "optimize_for_inference",
    "pack_for_cpu",
    "plan_inference",
    "rewrite_for_inference",
    "unfuse_branches",
]
