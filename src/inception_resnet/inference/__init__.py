"""Inference speed-ups that keep every output: graph rewrites (folding, fusion) and the oneDNN CPU path.

* :mod:`.rewrites` - ``fold_batchnorm``, ``fuse_branches``, ``optimize_for_inference``...;
* :mod:`.onednn` - convolutions packed for oneDNN with fused post-ops (``pack_for_cpu``);
* :mod:`.precision` - CPU inference in fp32, bf16 or int8 with the fastest kernels the CPU offers
  (``optimize_for_inference(model, precision=...)``);
* :mod:`.tracing` - tracing one block with torch.fx and swapping in the edited graph (shared by both).

Its layer (above ``training/`` and ``evaluation/``, below ``bench/``) and where a new rewrite goes:
docs/architecture.md.
"""

from .onednn import OneDNNConv2d, OneDNNConvAdd, pack_for_cpu
from .precision import PRECISIONS, InferenceModel, InferencePlan, cpu_features, plan_inference
from .rewrites import (
    FusionReport,
    ProjectThenPool,
    commute_pool_projections,
    fold_batchnorm,
    fold_residual_scale,
    fuse_branches,
    is_fused,
    optimize_for_inference,
    unfuse_branches,
)

__all__ = [
    "PRECISIONS",
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
    "is_fused",
    "optimize_for_inference",
    "pack_for_cpu",
    "plan_inference",
    "unfuse_branches",
]
