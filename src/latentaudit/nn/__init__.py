"""Building blocks shared by every model, written once for 2-D and 3-D."""

from ._factories import (
    Attention,
    Downsample,
    GroupNorm,
    Upsample,
    conv,
    conv_transpose,
    group_count,
    group_norm,
    norm,
    norm_removes_bias,
    pool,
    timestep_embedding,
)
from ._functional import slerp
from ._resnet import RESNET_LAYERS, BasicBlock, ResNet, resnet10, resnet18, resnet34

__all__ = [
    "RESNET_LAYERS",
    "Attention",
    "BasicBlock",
    "Downsample",
    "GroupNorm",
    "Upsample",
    "conv",
    "conv_transpose",
    "group_count",
    "group_norm",
    "norm",
    "norm_removes_bias",
    "ResNet",
    "pool",
    "resnet10",
    "resnet18",
    "resnet34",
    "slerp",
    "timestep_embedding",
]
