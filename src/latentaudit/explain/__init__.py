"""Explain a delineation: a classifier trained on it with its Grad-CAM maps, cluster mean
and difference images, and decoded counterfactuals.

- :class:`Explainer`: trains a ResNet (2-D or 3-D) on cluster labels, reports held-out
  accuracy, and gives class activation maps (grad-cam's methods), per-class mean maps,
  faithfulness scores, cluster mean/difference images and counterfactuals.
- :func:`mean_images`, :func:`difference_map`: per-cluster means and voxel-wise tests with
  Benjamini-Hochberg FDR control, without a classifier.
- :func:`counterfactual`, :func:`latent_direction`: moves in a generative encoder's latent
  space, decoded.
- :func:`overlay`, :func:`pointing_game`: for plotting and checking maps.
"""

from ._cam import CAM_METHODS, cam_methods, overlay, pointing_game
from ._counterfactual import Counterfactual, counterfactual, latent_direction
from ._difference import DifferenceMap, difference_map, mean_images
from ._explainer import Explainer

__all__ = [
    "CAM_METHODS",
    "Counterfactual",
    "DifferenceMap",
    "Explainer",
    "cam_methods",
    "counterfactual",
    "difference_map",
    "latent_direction",
    "mean_images",
    "overlay",
    "pointing_game",
]
