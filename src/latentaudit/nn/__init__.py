"""Building blocks shared by every model, written once for 2-D and 3-D."""

from ._factories import (
    Attention,
    Downsample,
    Upsample,
    conv,
    conv_transpose,
    group_count,
    norm,
    pool,
    timestep_embedding,
)

__all__ = [
    "Attention",
    "Downsample",
    "Upsample",
    "conv",
    "conv_transpose",
    "group_count",
    "norm",
    "pool",
    "timestep_embedding",
]
