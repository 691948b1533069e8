"""The interface every network of the family shares: the head, its classifiers, the auxiliary output, forward.

Each network file defines the body (its stages, named as the reference layout names them) and
``forward_body``; :class:`InceptionNet` adds the rest in the style of timm and torchvision:
``forward_features``, ``forward_head(x, pre_logits=False)``, ``reset_classifier(n)``,
``forward_intermediates`` and ``prune_intermediate_layers`` (timm's feature contract, computed in
:mod:`.features`), ``features_only`` models, and the metadata the weights need (:mod:`.metadata`), also as
timm's ``pretrained_cfg`` dict. The input checks are :mod:`.inputs`. See docs/architecture.md for where this
sits in the package.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .features import body_module_names, cut_body_after, feature_take_indices, intermediates
from .inputs import check_batch
from .layers import conv
from .metadata import ModelMetadata, timm_pretrained_cfg


class InceptionOutput(NamedTuple):
    """Training-mode output of a model built with ``aux_logits=True``: main and auxiliary logits."""

    logits: torch.Tensor
    aux_logits: torch.Tensor


class AuxHead(nn.Module):
    """Auxiliary classifier on the 17x17 grid (Inception-v3 paper; TF-slim's ``AuxLogits``).

    avg-pool 5x5 stride 3 -> 1x1 conv 128 -> 5x5 conv 768 -> global average -> linear. Below a 17x17 map
    (inputs under 299 can give 3x3 to 16x16) the pool output would be smaller than the 5x5 kernel, so the
    map is then average-pooled adaptively to 5x5 instead: at 299 and above it is exactly the reference.
    Child names follow torchvision (``conv0``, ``conv1``, ``fc``).
    """

    def __init__(self, in_channels: int, num_classes: int, mid: int = 128, width: int = 768) -> None:
        super().__init__()
        self.conv0 = conv(in_channels, mid, 1)
        self.conv1 = conv(mid, width, 5, padding="valid")
        self.fc = nn.Linear(width, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] >= 17 and x.shape[-2] >= 17:
            x = F.avg_pool2d(x, kernel_size=5, stride=3)
        else:
            x = F.adaptive_avg_pool2d(x, 5)
        x = self.conv1(self.conv0(x))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


class InceptionNet(nn.Module):
    """Base class of every network here.

    Subclasses build their stages, then call :meth:`_build_head`; they implement :meth:`forward_body`,
    returning the final feature map and, when ``aux_logits`` is on, the map the auxiliary head reads, and
    :meth:`classify`, which applies the classifier under its reference name (``fc``, ``last_linear``...).
    """

    __jit_unused_properties__ = ["metadata", "pretrained_cfg", "default_cfg"]
    aux_loss_weight = 0.4  # TF-slim's weight of the auxiliary loss (GoogLeNet: 0.3 per head)

    def __init__(self, *, metadata: ModelMetadata, num_classes: int, in_chans: int, drop_rate: float) -> None:
        super().__init__()
        name = metadata.name
        self._metadata = metadata
        self.model_name = name
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.min_input_size = metadata.min_input_size
        self.default_size = metadata.input_size[-1]
        self.aux_logits = False
        self.features_only = False
        self.feature_indices: list[int] = []

    @property
    def metadata(self) -> ModelMetadata:
        """Input geometry, preprocessing and provenance of this model (and of its loaded weights)."""
        size = self._metadata.input_size
        return self._metadata.with_updates(num_classes=self.num_classes, input_size=(self.in_chans, *size[1:]))

    @property
    def pretrained_cfg(self) -> dict:
        """The preprocessing and provenance in timm's ``pretrained_cfg`` keys (a new dict on each access).

        See :func:`~inception_resnet.models.metadata.timm_pretrained_cfg` for how ``crop_mode`` reads there.
        """
        return timm_pretrained_cfg(
            self.metadata,
            self.model_name,
            self.num_classes,
            self._first_conv_name(),
            getattr(self, "classifier_name", None),
        )

    @property
    def default_cfg(self) -> dict:
        """timm's older name for :attr:`pretrained_cfg`."""
        return self.pretrained_cfg

    def _first_conv_name(self) -> str | None:
        for name, module in self.named_modules():
            if isinstance(module, nn.Conv2d):
                return name
        return None

    def set_metadata(self, **changes) -> None:
        """Record facts about loaded weights (``weights``, ``crop_pct``, ``label_offset``...)."""
        self._metadata = self._metadata.with_updates(**changes)

    # -- construction helpers -------------------------------------------------------------------------
    def _build_head(self, num_features: int, classifier_name: str, aux_channels: int = 0) -> None:
        """Global pool, dropout and the classifier (named as in the reference), plus the optional aux head."""
        self.num_features = num_features
        self.classifier_name = classifier_name
        self.pool_type = "avg"
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.head_drop = nn.Dropout(self.drop_rate)
        setattr(self, classifier_name, self._make_classifier(num_features, self.num_classes))
        if aux_channels:
            self.aux_logits = True
            self.AuxLogits = AuxHead(aux_channels, self.num_classes)

    @staticmethod
    def _make_classifier(num_features: int, num_classes: int) -> nn.Module:
        return nn.Linear(num_features, num_classes) if num_classes > 0 else nn.Identity()

    # -- classifier heads: the one place that knows their names ----------------------------------------
    def get_classifier(self) -> nn.Module:
        """The main classifier (``fc``, ``last_linear``, ``classif`` or ``logits``, as the reference names it)."""
        return getattr(self, self.classifier_name)

    def aux_classifier_names(self) -> list[str]:
        """Module names of the auxiliary classifiers' last layers (empty without auxiliary heads)."""
        return ["AuxLogits.fc"] if self.aux_logits else []

    def classifier_names(self) -> list[str]:
        """Module names of every layer whose outputs are classes: the main classifier, then the auxiliary ones.

        Weight loading, fine-tuning (:func:`inception_resnet.training.finetune.load_pretrained`) and
        :func:`~inception_resnet.training.finetune.freeze_body` go by these names.
        """
        return [self.classifier_name, *self.aux_classifier_names()]

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the classifier and every auxiliary one for ``num_classes`` outputs; 0 removes them.

        ``global_pool`` as in timm: ``None`` keeps the pooling, ``"avg"`` averages the final map, ``""`` leaves
        it as it is (what :meth:`prune_intermediate_layers` sets: the model then returns feature maps).
        """
        if global_pool is not None:
            if global_pool not in ("avg", ""):
                raise ValueError(
                    f"{self.model_name}: global_pool must be 'avg' or '' (no pooling), got {global_pool!r}"
                )
            self.pool_type = global_pool
            self.global_pool = nn.AdaptiveAvgPool2d(1) if global_pool else nn.Identity()
        if num_classes > 0 and not self.pool_type:
            raise ValueError(
                f"{self.model_name}: a classifier needs pooled features; call "
                f"reset_classifier({num_classes}, global_pool='avg')"
            )
        self.num_classes = num_classes
        setattr(self, self.classifier_name, self._make_classifier(self.num_features, num_classes))
        if self.aux_logits:
            self._reset_aux_classifiers(num_classes)

    def _reset_aux_classifiers(self, num_classes: int) -> None:
        aux: AuxHead = self.AuxLogits
        aux.fc = nn.Linear(aux.conv1.out_channels, num_classes) if num_classes > 0 else nn.Identity()

    def _aux_head_names(self) -> list[str]:
        """Module names of the whole auxiliary heads (what ``features_only`` and pruning remove)."""
        return ["AuxLogits"] if self.aux_logits else []

    def _head_module_names(self) -> list[str]:
        """Every module the head uses after the body: pooling, dropout, classifier, auxiliary heads."""
        return ["global_pool", "head_drop", self.classifier_name, *self._aux_head_names()]

    def _remove_heads(self) -> None:
        """Drop the auxiliary heads, the classifier and the pooling: the model then returns its final map."""
        for name in self._aux_head_names():
            delattr(self, name)
        self.aux_logits = False
        self.reset_classifier(0, "")

    # -- forward --------------------------------------------------------------------------------------
    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ValueError naming the model, the input and the minimum when ``x`` cannot be processed."""
        check_batch(x, self.model_name, self.in_chans, self.min_input_size, self.default_size)

    def forward_body(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The stages: (final feature map, input of the auxiliary head or None). Each network defines it."""
        raise NotImplementedError(type(self).__name__ + " must define forward_body (an abstract method)")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The final feature map (8x8 at 299), before pooling."""
        self.check_input(x)
        return self.forward_body(x)[0]

    def forward_pool(self, x: torch.Tensor) -> torch.Tensor:
        """Global average pooling to (N, C); the map unchanged once the pooling is removed (``global_pool=""``)."""
        x = self.global_pool(x)
        if self.pool_type != "":
            x = torch.flatten(x, 1)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool, dropout and classify a feature map; ``pre_logits`` stops before the classifier."""
        x = self.head_drop(self.forward_pool(x))
        if pre_logits:
            return x
        return self.classify(x)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the classifier; each network names it as its reference layout does."""
        raise NotImplementedError(type(self).__name__ + " must define classify (an abstract method)")

    @torch.jit.unused
    def forward_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Checked input -> (final feature map, [auxiliary logits...]); the list is empty without aux heads.

        For training loops that pool the final map themselves (:meth:`forward_head`) and add
        ``aux_loss_weight`` times the loss of every auxiliary output.
        """
        self.check_input(x)
        features, aux_input = self.forward_body(x)
        if aux_input is None or not self.aux_logits:
            return features, []
        return features, [self.AuxLogits(aux_input)]

    def forward(self, x: torch.Tensor):
        if self.features_only and not torch.jit.is_scripting():
            return self.forward_intermediates(x, self.feature_indices, stop_early=True, intermediates_only=True)
        self.check_input(x)
        features, aux_input = self.forward_body(x)
        logits = self.forward_head(features)
        if self.training and aux_input is not None and not torch.jit.is_scripting():
            return InceptionOutput(logits, self.AuxLogits(aux_input))
        return logits

    @torch.jit.unused
    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | tuple[int, ...] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """timm's feature contract: the maps at the taps of ``feature_info`` (strides 2, 4, 8, 16, 32).

        ``indices``: ``None`` all taps, an int ``n`` the last ``n``, a sequence those taps (negative ones count
        from the end); the maps come shallow to deep. ``stop_early`` stops the forward pass at the deepest
        tap asked for. Returns ``(final map, maps)``, or only the maps with ``intermediates_only``; the final
        map is where the pass stopped. ``norm`` is accepted for timm's signature: these networks have no
        final norm layer. ``output_fmt`` must be ``"NCHW"``.
        """
        if output_fmt != "NCHW":
            raise ValueError(f"{self.model_name}: output_fmt must be 'NCHW' (the only layout here), got {output_fmt!r}")
        take = feature_take_indices(len(self.feature_info), indices, self.model_name)
        self.check_input(x)
        final, maps = intermediates(self, x, take, stop_early)
        return maps if intermediates_only else (final, maps)

    @torch.jit.unused
    def prune_intermediate_layers(
        self,
        indices: int | list[int] | tuple[int, ...] = 1,
        prune_norm: bool = False,
        prune_head: bool = True,
    ) -> list[int]:
        """timm's pruning: keep the body up to the deepest feature level in ``indices``; returns those levels.

        ``indices`` reads as in :meth:`forward_intermediates`. The stages after the deepest level asked for
        become ``nn.Identity`` (their weights go), so :meth:`forward_intermediates` still gives the levels
        kept. With ``prune_head``, or when stages were cut (the head no longer fits the last map), the
        classifier, the auxiliary heads and the pooling go too, and the model returns its last map.
        ``prune_norm`` is accepted for timm's signature: these networks have no final norm layer.
        """
        take = feature_take_indices(len(self.feature_info), indices, self.model_name)
        deepest = max(take)
        cut_body_after(self, deepest)
        if prune_head or deepest < len(self.feature_info) - 1:
            self._remove_heads()
            self.num_features = self.feature_info[deepest].num_chs
        return take

    def body_module_names(self) -> list[str]:
        """The body's modules in the order ``forward_body`` runs them, up to the last feature level
        (:func:`~inception_resnet.models.features.body_module_names`)."""
        return body_module_names(self)

    def set_features_only(self, out_indices: tuple[int, ...] = (0, 1, 2, 3, 4)) -> None:
        """Turn the model into a feature extractor returning the maps at ``out_indices``; drops the heads.

        The stages after the deepest level stay (so the full body's weights still load); the forward pass
        stops at that level.
        """
        for i in out_indices:
            if not 0 <= i < len(self.feature_info):
                raise ValueError(f"{self.model_name}: out_indices must lie in 0..{len(self.feature_info) - 1}")
        self.features_only = True
        self.feature_indices = list(out_indices)
        self._remove_heads()

    def extra_repr(self) -> str:
        return f"name={self.model_name}, num_classes={self.num_classes}, in_chans={self.in_chans}"
