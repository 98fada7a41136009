"""The Explainer's class activation maps and their faithfulness metrics."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import torch

from ..errors import ConfigError, InputShapeError
from ..utils import check_option, check_random_state
from ._cam import check_method, compute_cam
from ._inputs import as_labels, kept_mask, seed_from

__all__: list[str] = []

_BASELINES = ("min", "mean", "blur")


class _Maps:
    """:class:`~latentaudit.Explainer`'s maps: ``explain``, ``mean_maps`` and
    ``faithfulness``."""

    def explain(self, images, target=None, *, cam: str | None = None,
                target_layer=None, batch_size: int = 32, eigen_smooth: bool = False,
                aug_smooth: bool = False) -> np.ndarray:
        """Class activation maps of images, at the input's resolution.

        Parameters
        ----------
        images : array-like, torch.Tensor or Dataset
            ``(N, C, H, W)`` or ``(N, C, D, H, W)`` images.
        target : object or array-like, optional
            The class to explain: one label of ``classes_`` for every image, one label
            per image, or None for each image's predicted class.
        cam : str, optional
            Override the Explainer's ``cam`` method for this call.
        target_layer : "auto", int, str, torch.nn.Module or a list of them, optional
            Take this call's maps from other layers of the classifier (as the
            Explainer's ``target_layer``: ``0`` is the first, finest stage; ``(0, 1)``
            averages the maps of the first two stages); default :attr:`target_layer_`.
            The classifier is not refitted.
        batch_size : int, default 32
            Images per pass.
        eigen_smooth : bool, default False
            grad-cam's smoothing by the first principal component of the activations.
        aug_smooth : bool, default False
            grad-cam's test-time augmentation (2-D only; several passes per image).

        Returns
        -------
        numpy.ndarray
            float32 ``(N, *spatial)``, each map scaled to [0, 1] (all zeros where the
            method found no positive evidence).

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
        ValueError
            (as :class:`latentaudit.errors.ConfigError`) for an unknown method, one that
            does not work on 3-D inputs, a target that is not a class, or a target layer
            that is not in the classifier;
            (as :class:`latentaudit.errors.DataError`) when a map holds NaN or inf (NaN in
            the images, a diverged classifier) instead of returning it as zeros.

        Examples
        --------
        >>> maps = exp.explain(images, target=1)  # doctest: +SKIP
        >>> maps.shape == images.shape[:1] + images.shape[2:]  # doctest: +SKIP
        True
        >>> fine = exp.explain(images, target=1, cam="layercam", target_layer=0)  # doctest: +SKIP
        """
        self._check_fitted()
        method = check_method(self.cam_ if cam is None else cam, self.spatial_dims)
        layers = (self._target_modules if target_layer is None
                  else self._resolve_target_layer(target_layer)[1])
        source = self._source(images)
        n = len(source)
        need_predictions = target is None
        categories = None
        if not need_predictions:
            categories = self._class_indices(target, n, None)
        device = self._device()
        seed = seed_from(self.random_state)
        maps = np.empty((n, *source.image_shape[1:]), dtype=np.float32)
        from tqdm.auto import tqdm

        with tqdm(total=n, disable=not self.verbose, unit="img",
                  desc=f"{method} maps") as bar:
            for k, (positions, batch) in enumerate(source.batches(np.arange(n), batch_size)):
                x = torch.from_numpy(batch).to(device)
                if need_predictions:
                    with torch.no_grad():
                        cats = self.model_(x).argmax(dim=1).cpu().numpy()
                else:
                    cats = categories[positions]
                maps[positions] = compute_cam(
                    self.model_, layers, x, cats, method,
                    eigen_smooth=eigen_smooth, aug_smooth=aug_smooth, seed=seed + k)
                bar.update(len(positions))
        self.model_.eval()
        return maps

    def mean_maps(self, images, labels=None, *, cam: str | None = None,
                  target_layer=None, batch_size: int = 32) -> np.ndarray:
        """The average map of each class, over the images of that class.

        Parameters
        ----------
        images : array-like, torch.Tensor or Dataset
            ``(N, C, *spatial)`` images.
        labels : array-like, optional
            The class of every image (values of ``classes_``; -1 is left out); default
            the classifier's predictions.  Each image is explained for its own class.
        cam : str, optional
            Override the CAM method.
        target_layer : "auto", int, str, torch.nn.Module or a list of them, optional
            Override the target layer(s) (see :meth:`explain`).
        batch_size : int, default 32
            Images per pass.

        Returns
        -------
        numpy.ndarray
            float32 ``(n_classes_, *spatial)`` in the order of ``classes_``; NaN for a
            class with no image.

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
        """
        self._check_fitted()
        source = self._source(images)
        if labels is None:
            labels = self.predict(source)
        labels = as_labels(labels, len(source))
        keep = np.flatnonzero(kept_mask(labels))
        out = np.full((self.n_classes_, *source.image_shape[1:]), np.nan, dtype=np.float32)
        if not len(keep):
            return out
        indices = self._class_indices(labels[keep], len(keep), None)
        maps = self.explain(source.subset(keep), target=self.classes_[indices],
                            cam=cam, target_layer=target_layer, batch_size=batch_size)
        for k in range(self.n_classes_):
            if np.any(indices == k):
                out[k] = maps[indices == k].mean(axis=0)
        return out

    def faithfulness(self, images, target=None, *, maps=None,
                     fractions=(0.05, 0.1, 0.2), baseline="min", road="auto",
                     batch_size: int = 32) -> pd.DataFrame:
        """How much the classifier's confidence drops when what the maps point at is
        removed.

        For every fraction ``f``, the top ``f`` of each image's pixels (voxels) by its map
        are replaced by ``baseline`` and the drop of the target class's softmax
        probability is averaged over the images; the same number of random pixels gives
        the chance level.  In 2-D, ROAD (Rong et al., 2022; grad-cam's
        ``pytorch_grad_cam.metrics.road``) imputes the removed pixels from their
        neighbours instead, which a classifier cannot read as a mask shape, for the most
        relevant (MoRF) and the least relevant (LeRF) pixels first.  A faithful map has
        ``drop`` well above ``drop_random`` and ``road_morf`` above ``road_lerf``.

        Parameters
        ----------
        images : array-like, torch.Tensor or Dataset
            ``(N, C, *spatial)`` images.
        target : object or array-like, optional
            The explained class (as in :meth:`explain`); default the predicted one.
        maps : array-like, optional
            ``(N, *spatial)`` maps to test; default :meth:`explain` with ``target``.
        fractions : sequence of float, default (0.05, 0.1, 0.2)
            Shares of the pixels to remove, each in (0, 1).
        baseline : {"min", "mean", "blur"} or float, default "min"
            What removed pixels become: the image's minimum (the background of an MRI),
            its mean, a Gaussian blur of it, or a constant.
        road : bool or "auto", default "auto"
            Also compute ROAD; "auto": in 2-D only (grad-cam's imputer is 2-D).
        batch_size : int, default 32
            Images per pass.

        Returns
        -------
        pandas.DataFrame
            One row per fraction: ``fraction``, ``confidence`` (mean probability of the
            target on the intact images), ``drop``, ``drop_random`` and, with ROAD,
            ``road_morf`` and ``road_lerf`` (mean probability drops).

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
        ValueError
            (as :class:`latentaudit.errors.ConfigError`) for invalid fractions or
            baseline, or ``road=True`` on 3-D inputs.
        """
        self._check_fitted()
        fractions = np.atleast_1d(np.asarray(fractions, dtype=np.float64))
        if fractions.size == 0 or np.any((fractions <= 0) | (fractions >= 1)):
            raise ConfigError(f"fractions must lie in (0, 1), got {fractions.tolist()}")
        if isinstance(baseline, str):
            check_option("baseline", baseline, _BASELINES)
        elif not np.isscalar(baseline) or not np.isfinite(baseline):
            raise ConfigError(f"baseline must be one of {_BASELINES} or a number, got "
                              f"{baseline!r}")
        if road == "auto":
            road = self.spatial_dims == 2
        elif road and self.spatial_dims == 3:
            raise ConfigError("ROAD works on 2-D images only: grad-cam's noisy linear "
                              "imputer fills pixels from their 2-D neighbours; use "
                              "road=False or 'auto' for volumes")
        source = self._source(images)
        n = len(source)
        device = self._device()
        predicted = None
        if target is None:
            predicted = self._proba(source, np.arange(n), batch_size).argmax(axis=1)
        categories = self._class_indices(target, n, predicted)
        if maps is None:
            maps = self.explain(source, target=self.classes_[categories],
                                batch_size=batch_size)
        maps = np.asarray(maps, dtype=np.float32)
        if maps.shape != (n, *source.image_shape[1:]):
            raise InputShapeError(f"maps must be {(n, *source.image_shape[1:])}, got "
                                  f"{maps.shape}")
        rng = check_random_state(self.random_state)
        n_pixels = int(np.prod(source.image_shape[1:]))
        sums = {key: np.zeros(len(fractions)) for key in
                ("confidence", "drop", "drop_random", "road_morf", "road_lerf")}
        for positions, batch in source.batches(np.arange(n), batch_size):
            x = torch.from_numpy(batch).to(device)
            cats = torch.as_tensor(categories[positions], device=device)
            p0 = self._target_probability(x, cats)
            flat_maps = maps[positions].reshape(len(positions), -1)
            order = np.argsort(-flat_maps, axis=1, kind="stable")
            fill = _baseline_images(batch, baseline)
            for j, fraction in enumerate(fractions):
                k = max(1, int(round(fraction * n_pixels)))
                top = np.zeros_like(flat_maps, dtype=bool)
                np.put_along_axis(top, order[:, :k], True, axis=1)
                random = np.zeros_like(top)
                for row in range(len(positions)):
                    random[row, rng.choice(n_pixels, k, replace=False)] = True
                for key, mask in (("drop", top), ("drop_random", random)):
                    removed = _remove(batch, fill, mask)
                    p1 = self._target_probability(torch.from_numpy(removed).to(device), cats)
                    sums[key][j] += float((p0 - p1).sum())
                sums["confidence"][j] += float(p0.sum())
                if road:
                    morf, lerf = self._road(x, maps[positions], categories[positions],
                                            fraction, seed=int(rng.randint(2**31 - 1)))
                    sums["road_morf"][j] += float(morf.sum())
                    sums["road_lerf"][j] += float(lerf.sum())
        table = pd.DataFrame({"fraction": fractions})
        keys = ["confidence", "drop", "drop_random"] + (["road_morf", "road_lerf"]
                                                        if road else [])
        for key in keys:
            table[key] = sums[key] / max(n, 1)
        return table

    def _target_probability(self, x: torch.Tensor, categories: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            proba = torch.softmax(self.model_(x).float(), dim=1)
        return proba.gather(1, categories[:, None])[:, 0].cpu().numpy()

    def _road(self, x: torch.Tensor, maps: np.ndarray, categories: np.ndarray,
              fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        from pytorch_grad_cam.metrics.road import ROADLeastRelevantFirst, ROADMostRelevantFirst
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

        targets = [ClassifierOutputSoftmaxTarget(int(c)) for c in categories]
        percentile = 100.0 * (1.0 - fraction)
        # ROAD's imputer adds noise from torch's global generator: seed it in a fork.
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            # grad-cam's imputer hands torch tensors to np.argwhere, which NumPy 2
            # deprecates; nothing the caller can act on.
            warnings.filterwarnings("ignore", category=DeprecationWarning,
                                    message=".*__array_wrap__.*")
            torch.manual_seed(seed)
            morf = ROADMostRelevantFirst(percentile=percentile)(x, maps, targets, self.model_)
            lerf = ROADLeastRelevantFirst(percentile=percentile)(x, maps, targets,
                                                                 self.model_)
        # grad-cam reports after minus before; a drop is before minus after.
        return -np.asarray(morf, dtype=np.float64), -np.asarray(lerf, dtype=np.float64)


def _baseline_images(batch: np.ndarray, baseline) -> np.ndarray:
    """What removed pixels are replaced by, one image per input."""
    spatial_axes = tuple(range(1, batch.ndim))
    if isinstance(baseline, str):
        if baseline == "min":
            return np.broadcast_to(batch.min(axis=spatial_axes, keepdims=True), batch.shape)
        if baseline == "mean":
            return np.broadcast_to(batch.mean(axis=spatial_axes, keepdims=True), batch.shape)
        from scipy import ndimage

        sigma = [0, 0] + [max(1.0, s / 16) for s in batch.shape[2:]]
        return ndimage.gaussian_filter(batch, sigma=sigma)
    return np.full_like(batch, float(baseline))


def _remove(batch: np.ndarray, fill: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``batch`` with the pixels in ``mask`` ``(N, n_pixels)`` (all channels) replaced by
    ``fill``."""
    mask = mask.reshape(len(batch), 1, *batch.shape[2:])
    return np.where(mask, fill, batch).astype(np.float32)
