"""Class activation maps through the grad-cam package (``pytorch_grad_cam``), for 2-D images
and 3-D volumes, plus overlays and the pointing game."""

from __future__ import annotations

import contextlib
import copy
import io
import logging
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, DataError, InputShapeError
from ..utils import check_option

__all__ = ["CAM_METHODS", "cam_methods", "compute_cam", "overlay", "pointing_game"]

logger = logging.getLogger(__name__)

# name -> (class name in pytorch_grad_cam, works on 3-D inputs, why not)
_METHODS: dict[str, tuple[str, bool, str]] = {
    "gradcam": ("GradCAM", True, ""),
    "gradcam++": ("GradCAMPlusPlus", True, ""),
    "hirescam": ("HiResCAM", True, ""),
    "layercam": ("LayerCAM", True, ""),
    "scorecam": ("ScoreCAM", True, ""),
    "xgradcam": ("XGradCAM", True, ""),
    "eigencam": ("EigenCAM", True, ""),
    "eigengradcam": ("EigenGradCAM", True, ""),
    "gradcamelementwise": ("GradCAMElementWise", True, ""),
    "kpcacam": ("KPCA_CAM", True, ""),
    "shapleycam": ("ShapleyCAM", True, ""),
    "fem": ("FEM", True, ""),
    "finercam": ("FinerCAM", True, ""),
    "segeigencam": ("SegEigenCAM", True, ""),
    "randomcam": ("RandomCAM", True, ""),
    "ablationcam": ("AblationCAM", False,
                    "its ablation batches are built for (N, C, H, W) images"),
    "fullgrad": ("FullGrad", False,
                 "it collects the biases of Conv2d and BatchNorm2d layers only"),
    "sess": ("SESS", False, "it resizes and slides windows over 2-D images only"),
}
#: The CAM methods :class:`~latentaudit.Explainer` offers (grad-cam's, by lower-case name).
CAM_METHODS = tuple(_METHODS)
_ALIASES = {"gradcamplusplus": "gradcam++", "gradcampp": "gradcam++", "kpca_cam": "kpcacam",
            "grad-cam": "gradcam", "score-cam": "scorecam"}
# Methods that swap layers of the model while they run; they get a copy of it.
_MUTATING = ("ablationcam",)


def cam_methods(spatial_dims: int | None = None) -> list[str]:
    """The names of the CAM methods available, optionally only those that work in 3-D.

    Parameters
    ----------
    spatial_dims : {2, 3}, optional
        Keep only the methods that work on inputs with this many spatial dimensions.

    Returns
    -------
    list of str

    Examples
    --------
    >>> from latentaudit.explain import cam_methods
    >>> "gradcam" in cam_methods(3), "fullgrad" in cam_methods(3)
    (True, False)
    """
    if spatial_dims is None or spatial_dims == 2:
        return list(_METHODS)
    return [name for name, (_, in_3d, _) in _METHODS.items() if in_3d]


def check_method(method: str, spatial_dims: int) -> str:
    """Normalise a method name and check that it works in ``spatial_dims`` dimensions."""
    if isinstance(method, str):
        key = method.lower().replace(" ", "")
        key = _ALIASES.get(key, key)
    else:
        key = method
    check_option("method", key, CAM_METHODS)
    _, in_3d, why = _METHODS[key]
    if spatial_dims == 3 and not in_3d:
        raise ConfigError(
            f"method={method!r} does not work on 3-D inputs in grad-cam: {why}. Methods that "
            f"do: {', '.join(cam_methods(3))}")
    return key


def _score_cam_class(base):
    class _ScoreCAM(base):
        """Score-CAM for 2-D and 3-D inputs: grad-cam's version upsamples the activations
        bilinearly, which only exists for 2-D maps; this one interpolates in any dimension
        and scores the masked inputs in batches without a progress bar of its own."""

        batch_size = 32

        def get_cam_weights(self, input_tensor, target_layer, targets, activations, grads):
            with torch.no_grad():
                maps = torch.as_tensor(activations, device=self.device)
                mode = "bilinear" if maps.ndim == 4 else "trilinear"
                maps = F.interpolate(maps, size=tuple(input_tensor.shape[2:]), mode=mode,
                                     align_corners=True)
                flat = maps.flatten(2)
                low = flat.min(dim=-1).values
                high = flat.max(dim=-1).values
                shape = (*low.shape, *([1] * (maps.ndim - 2)))
                maps = (maps - low.view(shape)) / (high - low + 1e-8).view(shape)
                scores = torch.empty(maps.shape[:2])
                for i, (target, image) in enumerate(zip(targets, input_tensor, strict=True)):
                    for start in range(0, maps.shape[1], self.batch_size):
                        masks = maps[i, start:start + self.batch_size, None]
                        outputs = self.model(image[None] * masks)
                        scores[i, start:start + len(masks)] = torch.stack(
                            [target(o).detach().float().cpu() for o in outputs])
                return torch.softmax(scores, dim=-1).numpy()

    return _ScoreCAM


@contextlib.contextmanager
def _numpy_seed(seed: int):
    """Seed NumPy's legacy global generator for a block and restore it after (RandomCAM
    draws from it)."""
    state = np.random.get_state()  # noqa: NPY002 - the state RandomCAM draws from
    np.random.seed(seed)  # noqa: NPY002
    try:
        yield
    finally:
        np.random.set_state(state)  # noqa: NPY002


def _layer_resolution_class(base):
    class _AtLayerResolution(base):
        """Leaves 3-D maps at the target layer's resolution; :func:`compute_cam` upsamples
        them as grad-cam upsamples 2-D maps (see :func:`_upsample`)."""

        def get_target_width_height(self, input_tensor):
            if input_tensor.ndim == 5:
                self._volume_shape = tuple(input_tensor.shape[2:])
                return None
            return super().get_target_width_height(input_tensor)

        def aggregate_multi_layers(self, cam_per_target_layer):
            # Several target layers of a 3-D network: their maps (each scaled to [0, 1] at
            # its own resolution) are brought to the volume's shape before grad-cam
            # averages them, as grad-cam resizes 2-D maps to the image first.
            if len({cam.shape[2:] for cam in cam_per_target_layer}) > 1:
                cam_per_target_layer = [_upsample(cam[:, 0], self._volume_shape)[:, None]
                                        for cam in cam_per_target_layer]
            return super().aggregate_multi_layers(cam_per_target_layer)

    return _AtLayerResolution


def _upsample(maps: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Linear interpolation of layer-resolution maps ``(N, *layer)`` to ``shape``, each
    voxel read at its centre (``align_corners=False``): what OpenCV's bilinear ``resize``
    does for grad-cam's 2-D maps.  grad-cam's own 3-D path (scipy's ``zoom``: a cubic
    spline through the corner voxels) stretches a map's edge cells onto the volume's edge
    and overshoots between cells: the peak of a 4^3 map of a 16^3 volume lands up to a
    voxel and a half (plus the overshoot) away from the cell that holds the evidence."""
    if maps.shape[1:] == tuple(shape):
        return maps
    mode = "bilinear" if len(shape) == 2 else "trilinear"
    upsampled = F.interpolate(torch.from_numpy(np.ascontiguousarray(maps))[:, None],
                              size=tuple(shape), mode=mode, align_corners=False)
    return upsampled[:, 0].numpy()


def _build(method: str, model: nn.Module, target_layers: list[nn.Module]):
    # Imported on first use: grad-cam pulls in OpenCV, slow to import.
    import pytorch_grad_cam as gc

    name = _METHODS[method][0]
    cls = getattr(gc, name)
    if method == "scorecam":
        cls = _score_cam_class(cls)
    return _layer_resolution_class(cls)(model=model, target_layers=target_layers)


def _targets(method: str, model: nn.Module, images: torch.Tensor, categories: np.ndarray):
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if method != "finercam":
        return [ClassifierOutputTarget(int(c)) for c in categories]
    from pytorch_grad_cam.utils.model_targets import FinerWeightedTarget

    # Finer-CAM contrasts the target with the classes the model finds most alike; with two
    # classes that is the other one.
    with torch.no_grad():
        logits = model(images).float().cpu().numpy()
    targets = []
    for row, c in zip(logits, categories, strict=True):
        others = [int(k) for k in np.argsort(np.abs(row - row[int(c)])) if k != int(c)]
        targets.append(FinerWeightedTarget(int(c), others[:3], 1.0))
    return targets


def compute_cam(model: nn.Module, target_layers: Sequence[nn.Module], images: torch.Tensor,
                categories: Sequence[int], method: str = "gradcam", *,
                eigen_smooth: bool = False, aug_smooth: bool = False,
                score_batch_size: int = 32, seed: int = 0) -> np.ndarray:
    """Class activation maps of one batch through grad-cam.

    The CAM object is used as a context manager, so its hooks are released even when it
    fails.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier returning logits ``(N, n_classes)``; put in eval mode.
    target_layers : sequence of torch.nn.Module
        The layers whose activations (and gradients) make the map.
    images : torch.Tensor
        ``(N, C, *spatial)``, on the model's device.
    categories : sequence of int
        The class (logit index) to explain for every image.
    method : str, default "gradcam"
        One of :data:`CAM_METHODS`.
    eigen_smooth, aug_smooth : bool, default False
        grad-cam's smoothing options (``aug_smooth``: 2-D only).
    score_batch_size : int, default 32
        Masked inputs per forward pass for Score-CAM and Ablation-CAM.
    seed : int, default 0
        Seed for the methods that draw random numbers (RandomCAM).

    Returns
    -------
    numpy.ndarray
        float32 ``(N, *spatial)``, each map scaled to [0, 1] by grad-cam.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.ConfigError`) for an unknown method or one that
        does not work on 3-D inputs; (as :class:`latentaudit.errors.DataError`) when a map
        holds NaN or inf (non-finite activations or gradients: NaN in the images, a
        diverged model).
    """
    spatial_dims = images.ndim - 2
    method = check_method(method, spatial_dims)
    if aug_smooth and spatial_dims == 3:
        raise ConfigError("aug_smooth=True works on 2-D images only (grad-cam's test-time "
                          "augmentation flips and scales (N, C, H, W) batches)")
    if aug_smooth and method in ("finercam", "sess"):
        raise ConfigError(f"aug_smooth=True is not available for method={method!r}")
    if method in _MUTATING:
        names = {id(module): name for name, module in model.named_modules()}
        model = copy.deepcopy(model)
        copied = dict(model.named_modules())
        target_layers = [copied[names[id(layer)]] for layer in target_layers]
    model.eval()
    categories = np.asarray(categories, dtype=np.int64)
    targets = _targets(method, model, images, categories)
    captured = io.StringIO()
    error: BaseException | None = None
    maps = None
    # grad-cam prints warnings instead of using the warnings module; keep them off stdout.
    with contextlib.redirect_stdout(captured), torch.enable_grad(), _numpy_seed(seed):
        cam = _build(method, model, list(target_layers))
        if hasattr(cam, "batch_size"):
            cam.batch_size = score_batch_size
        with cam:
            # grad-cam's __exit__ swallows IndexError; catch everything here and re-raise
            # after the hooks are released.
            try:
                if method in ("finercam", "sess"):  # these take no aug_smooth
                    maps = cam(images, targets=targets, eigen_smooth=eigen_smooth)
                else:
                    maps = cam(images, targets=targets, aug_smooth=aug_smooth,
                               eigen_smooth=eigen_smooth)
            except Exception as err:  # re-raised below, after the hooks are gone
                error = err
    if captured.getvalue().strip():
        logger.debug("grad-cam said: %s", captured.getvalue().strip())
    model.zero_grad(set_to_none=True)
    if error is not None:
        raise error
    maps = np.asarray(maps, dtype=np.float32)
    if spatial_dims == 3:
        maps = _upsample(maps, tuple(images.shape[2:]))
    expected = (len(images), *images.shape[2:])
    if maps.shape != expected:  # pragma: no cover - guards against upstream changes
        raise InputShapeError(f"grad-cam's {method} returned maps of shape {maps.shape}, "
                              f"expected {expected}")
    broken = ~np.isfinite(maps.reshape(len(maps), -1)).all(axis=1)
    if broken.any():
        # A map grad-cam could not compute is not a map without evidence: zeros here would
        # let a broken model (NaN/inf activations or gradients) pass as one that looks
        # nowhere.
        raise DataError(
            f"grad-cam's {method} returned NaN or inf in {int(broken.sum())} of {len(maps)} "
            f"maps (first: image {int(np.flatnonzero(broken)[0])}); expected finite maps. "
            f"The model's activations or gradients at the target layers are not finite: "
            f"check the images for NaN/inf and the classifier for divergence")
    return maps


def overlay(image, cam, *, alpha: float = 0.45, cmap: str = "jet",
            vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """Blend a map over an image for plotting.

    Parameters
    ----------
    image : array-like
        A 2-D image ``(H, W)``, ``(1, H, W)`` or ``(3, H, W)`` (channels first, like
        latentaudit's images), or ``(H, W, 3)``.  Its intensities are scaled to [0, 1]
        between ``vmin`` and ``vmax``.  Slice a 3-D volume first.
    cam : array-like
        ``(H, W)`` map, e.g. a row of :meth:`Explainer.explain`; values are clipped to
        [0, 1].
    alpha : float, default 0.45
        Weight of the coloured map (0: the image alone, 1: the map alone).
    cmap : str, default "jet"
        A matplotlib colour map.
    vmin, vmax : float, optional
        Intensity range of the image; default its minimum and maximum.

    Returns
    -------
    numpy.ndarray
        float32 RGB ``(H, W, 3)`` in [0, 1], ready for ``plt.imshow``.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.InputShapeError`) if the shapes do not fit.

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit.explain import overlay
    >>> rgb = overlay(np.zeros((1, 8, 8)), np.eye(8))
    >>> rgb.shape, rgb.dtype
    ((8, 8, 3), dtype('float32'))
    """
    from matplotlib import colormaps

    image = np.asarray(image.detach().cpu() if isinstance(image, torch.Tensor) else image,
                       dtype=np.float32)
    cam = np.asarray(cam.detach().cpu() if isinstance(cam, torch.Tensor) else cam,
                     dtype=np.float32)
    if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[-1] != 3:
        image = np.moveaxis(image, 0, -1)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise InputShapeError(f"overlay needs a 2-D image (H, W), (1, H, W), (3, H, W) or "
                              f"(H, W, 3); got shape {image.shape} (slice volumes first)")
    if cam.shape != image.shape[:2]:
        raise InputShapeError(f"cam must be shaped like the image, {image.shape[:2]}, got "
                              f"{cam.shape}")
    if not 0 <= alpha <= 1:
        raise ConfigError(f"alpha must be in [0, 1], got {alpha!r}")
    low = float(np.min(image)) if vmin is None else float(vmin)
    high = float(np.max(image)) if vmax is None else float(vmax)
    image = np.clip((image - low) / max(high - low, 1e-8), 0, 1)
    heat = colormaps[cmap](np.clip(np.nan_to_num(cam), 0, 1))[..., :3]
    return ((1 - alpha) * image + alpha * heat).astype(np.float32)


def pointing_game(maps, masks, *, tolerance: int = 0) -> np.ndarray:
    """Whether each map's maximum falls inside its mask (the pointing game of Zhang et al.,
    2018).

    Parameters
    ----------
    maps : array-like
        ``(N, *spatial)`` maps, e.g. from :meth:`Explainer.explain`.
    masks : array-like of bool
        ``(N, *spatial)`` or ``(N, 1, *spatial)``: where the object (artefact) is.
    tolerance : int, default 0
        Dilate every mask by this many pixels (voxels) first, forgiving maps that miss by
        a little (the original game used 15 pixels).

    Returns
    -------
    numpy.ndarray
        bool ``(N,)``: a hit per map.  ``hits.mean()`` is the pointing-game rate.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.InputShapeError`) if the shapes differ.

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit.explain import pointing_game
    >>> maps = np.zeros((2, 4, 4)); maps[0, 1, 1] = maps[1, 3, 3] = 1
    >>> masks = np.zeros((2, 4, 4), bool); masks[:, :2, :2] = True
    >>> pointing_game(maps, masks).tolist()
    [True, False]
    """
    maps = np.asarray(maps, dtype=np.float32)
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim == maps.ndim + 1 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if masks.shape != maps.shape:
        raise InputShapeError(f"masks must be shaped like maps {maps.shape} (or with a "
                              f"channel axis of 1), got {masks.shape}")
    if tolerance:
        from scipy import ndimage

        structure = ndimage.generate_binary_structure(maps.ndim - 1, 1)
        masks = np.stack([ndimage.binary_dilation(m, structure, iterations=int(tolerance))
                          for m in masks])
    flat = np.nan_to_num(maps.reshape(len(maps), -1), nan=-np.inf)
    peak = flat.argmax(axis=1)
    return masks.reshape(len(masks), -1)[np.arange(len(masks)), peak]
