"""The networks; importing this package registers them with :mod:`inception_resnet.registry`."""

from . import (  # noqa: F401
    bn_inception,
    googlenet,
    inception_resnet_v1,
    inception_resnet_v1_facenet,
    inception_resnet_v2,
    inception_v3,
    inception_v4,
)
