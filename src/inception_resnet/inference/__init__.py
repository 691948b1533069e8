"""Inference speed-ups that keep every output: graph rewrites (folding, fusion) and the oneDNN CPU path.

* :mod:`.rewrites` - ``fold_batchnorm``, ``fuse_branches``, ``optimize_for_inference``...;
* :mod:`.onednn` - convolutions packed for oneDNN with fused post-ops (``pack_for_cpu``);
* :mod:`.tracing` - tracing one block with torch.fx and swapping in the edited graph (shared by both).

Its layer (above ``training/`` and ``evaluation/``, below ``bench/``) and where a new rewrite goes:
docs/architecture.md.
"""

from .onednn import OneDNNConv2d, OneDNNConvAdd, pack_for_cpu
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
    "FusionReport",
    "OneDNNConv2d",
    "OneDNNConvAdd",
    "ProjectThenPool",
    "commute_pool_projections",
    "fold_batchnorm",
    "fold_residual_scale",
    "fuse_branches",
    "is_fused",
    "optimize_for_inference",
    "pack_for_cpu",
    "unfuse_branches",
]
