"""Inception-ResNet-v1 as trained for face recognition by facenet (Sandberg) and ported by facenet-pytorch.

The paper's Inception-ResNet-v1 body (:mod:`.inception_resnet_v1`: stem to 35x35x256, 5 x A, Reduction-A,
10 x B, Reduction-B, 5 x C) plus facenet's sixth Inception-ResNet-C block, unscaled (scale 1.0) and without
the ReLU after the sum (``block8``), and facenet's head: average pooling, dropout, a 1792 -> 512 linear
layer without bias (``last_linear``), BatchNorm1d (``last_bn``, eps 1e-3) and, in embedding mode, L2
normalisation. Module names are facenet-pytorch's, so its VGGFace2 and
CASIA-WebFace state dicts load key for key and give the same embeddings.

``num_classes`` is the number of identities of the optional ``logits`` layer (8631 for VGGFace2, 10575 for
CASIA-WebFace, 0 for none). As in facenet-pytorch, the model returns the normalised 512-d embedding unless
built with ``classify=True``; :meth:`InceptionResNetV1Facenet.embed` always returns the embedding.
Inputs are 160x160 aligned faces standardised as ``(pixel - 127.5) / 128``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .inception_resnet_blocks import block8
from .inception_resnet_v1 import WIDTHS, InceptionResNetV1
from .layers import BN_EPS, Widths, init_weights
from .metadata import FeatureInfo, ModelMetadata
from .registry import register_model

FACE_CLASSES = {"vggface2": 8631, "casia-webface": 10575}

METADATA = ModelMetadata(
    name="inception_resnet_v1_facenet",
    source="facenet / facenet-pytorch InceptionResnetV1: paper IR-v1 body + unscaled 6th C block + 512-d embedding",
    input_size=(3, 160, 160),
    mean=(127.5 / 255, 127.5 / 255, 127.5 / 255),
    std=(128 / 255, 128 / 255, 128 / 255),
    crop_pct=1.0,
    interpolation="bilinear",
    num_classes=0,
)


class InceptionResNetV1Facenet(InceptionResNetV1):
    """facenet's Inception-ResNet-v1: 5/10/5 blocks + an unscaled C block, a 512-d embedding, optional logits."""

    def __init__(
        self,
        num_classes: int = 0,
        in_chans: int = 3,
        drop_rate: float = 0.6,
        embedding_size: int = 512,
        classify: bool = False,
        width_multiplier: float = 1.0,
        shortcut: bool = True,
    ) -> None:
        if classify and num_classes <= 0:
            raise ValueError(
                "inception_resnet_v1_facenet: classify=True needs logits; pass num_classes "
                f"(e.g. {FACE_CLASSES['vggface2']} for VGGFace2, {FACE_CLASSES['casia-webface']} for CASIA-WebFace)"
            )
        super().__init__(
            num_classes=0,
            in_chans=in_chans,
            drop_rate=drop_rate,
            width_multiplier=width_multiplier,
            blocks=(5, 10, 5),
            metadata=METADATA,
            shortcut=shortcut,
        )
        c = Widths(width_multiplier)
        del self.classif
        cin = self.mixed_7a.out_channels
        self.block8 = block8(cin, c, **WIDTHS.block_c, scale=1.0, activate=False, shortcut=shortcut)
        self.last_linear = nn.Linear(cin, embedding_size, bias=False)
        self.last_bn = nn.BatchNorm1d(embedding_size, eps=BN_EPS)
        self.classifier_name = "logits"
        self.num_features = embedding_size
        self.num_classes = num_classes
        self.logits = self._make_classifier(embedding_size, num_classes)
        self.classify_output = classify
        self.feature_info = [*self.feature_info[:4], FeatureInfo("block8", cin, 32)]
        init_weights(self)

    def forward_body(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.forward_blocks(x)
        return self.block8(x), None

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool, dropout, ``last_linear``, ``last_bn``; then logits (``classify``) or the L2-normalised embedding.

        ``pre_logits=True`` returns the embedding before normalisation (the logits layer's input).
        """
        x = self.forward_pool(x)
        x = self.head_drop(x)
        x = self.last_linear(x)
        x = self.last_bn(x)
        if pre_logits:
            return x
        if self.classify_output:
            return self.logits(x)
        return F.normalize(x, p=2.0, dim=1)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x)

    def _head_module_names(self) -> list[str]:
        return [*super()._head_module_names(), "last_linear", "last_bn"]

    def _remove_heads(self) -> None:
        """Without its head (embedding layers included) the model returns its final map, as the others do."""
        super()._remove_heads()
        self.last_linear = nn.Identity()
        self.last_bn = nn.Identity()
        self.classify_output = True

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The L2-normalised 512-d face embedding, whatever ``classify`` says."""
        return F.normalize(self.forward_head(self.forward_features(x), pre_logits=True), p=2.0, dim=1)


register_model("inception_resnet_v1_facenet")(InceptionResNetV1Facenet)
