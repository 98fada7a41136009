"""The Explainer: a classifier trained on a delineation, its Grad-CAM maps, their
faithfulness, cluster mean and difference images, and decoded counterfactuals."""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator
from torch import nn
from torch.utils.data import Dataset

from ..errors import ConfigError, DataError, InputShapeError, NotFittedError
from ..nn._resnet import RESNET_LAYERS, ResNet
from ..utils import check_option, check_random_state, check_spatial_dims, resolve_device
from ._cam import check_method, compute_cam
from ._counterfactual import Counterfactual, counterfactual
from ._difference import DifferenceMap, difference_map, mean_images
from ._inputs import ImageSource, as_labels, kept_mask

__all__ = ["Explainer"]

logger = logging.getLogger(__name__)

# "auto" picks the deepest residual stage whose maps still have this many pixels per side:
# the last stage of a ResNet on 64x64 images is 2x2, too coarse to point at anything.
_MIN_CAM_SIDE = 8
_BASELINES = ("min", "mean", "blur")


class _LabelledImages(Dataset):
    """Items ``{"image", "label", "index"}`` of some positions of an image source."""

    def __init__(self, source: ImageSource, positions: np.ndarray, y: np.ndarray) -> None:
        self.source = source
        self.positions = np.asarray(positions, dtype=np.int64)
        self.y = np.asarray(y, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> dict:
        position = int(self.positions[i])
        image = self.source.get([position])[0]
        return {"image": torch.from_numpy(image), "label": torch.tensor(int(self.y[i])),
                "index": position}


class _ClassifierModule(nn.Module):
    """The network plus the loss the shared training loop minimises."""

    def __init__(self, net: nn.Module, class_weights: torch.Tensor | None) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("class_weights", class_weights, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def loss(self, batch: dict):
        logits = self.net(batch["image"])
        target = batch["label"]
        loss = F.cross_entropy(logits.float(), target, weight=self.class_weights)
        accuracy = (logits.argmax(dim=1) == target).float().mean()
        return loss, {"accuracy": accuracy.detach()}


def _seed_from(random_state) -> int:
    return int(check_random_state(random_state).randint(0, 2**31 - 1))


class Explainer(BaseEstimator):
    """Explain a delineation: train a classifier on it, then show where it looks.

    After clustering embeddings (e.g. with :class:`~latentaudit.ClusterAuditor`), the
    clusters that should not exist are delineated by their labels.  ``fit`` trains a
    ResNet (ResNet10 by default, 2-D or 3-D) to tell them apart from the images, on the
    shared training loop, and reports its accuracy on a held-out split; ``explain`` gives
    class activation maps (Grad-CAM and the other methods of the grad-cam package) at
    the input's resolution; :meth:`faithfulness` checks them by removing the pixels they
    point at.  What only a generative model adds: :meth:`mean_images` and
    :meth:`difference_map` (voxel-wise tests with FDR control) and
    :meth:`counterfactual` (decoded moves from one cluster toward another).

    Parameters
    ----------
    spatial_dims : {2, 3}, default 2
        2 for images ``(N, C, H, W)``, 3 for volumes ``(N, C, D, H, W)``.
    arch : {"resnet10", "resnet18", "resnet34"}, default "resnet10"
        The classifier.
    method : str, default "gradcam"
        The CAM method (see :data:`latentaudit.explain.CAM_METHODS`): ``"gradcam"``,
        ``"gradcam++"``, ``"hirescam"``, ``"layercam"``, ``"scorecam"``, ``"xgradcam"``,
        ``"eigencam"``, ``"eigengradcam"``, ``"gradcamelementwise"``, ``"kpcacam"``,
        ``"shapleycam"``, ``"fem"``, ``"finercam"``, ``"segeigencam"``,
        ``"randomcam"`` (a random baseline), and in 2-D only ``"ablationcam"``,
        ``"fullgrad"`` and ``"sess"``.
    widths : tuple of int, optional
        Channels of the ResNet's four stages; default (64, 128, 256, 512).  Smaller
        widths, e.g. (16, 32, 64, 128), train much faster on a CPU.
    norm : str, default "batch"
        The ResNet's normalisation ("batch", "group", "instance", "layer").
    stem : {"standard", "small"}, default "standard"
        The ResNet's stem (see :class:`latentaudit.nn.ResNet`); "small" keeps the full
        resolution for tiny images.
    target_layer : "auto", int, str or torch.nn.Module, default "auto"
        Where the maps are taken: ``"auto"`` is the deepest residual stage whose feature
        maps are at least 8 pixels (voxels) per side; an int ``i`` is ``stages[i]``; a
        string names a submodule of the ResNet (``"stages.2"``, ``"stages.3.0.conv2"``);
        a module must belong to the ResNet.
    one_vs_rest : object, optional
        Train ``one_vs_rest`` against every other cluster (classes ``["rest", label]``)
        instead of one class per cluster.
    test_size : float, default 0.2
        Fraction of the items held out (stratified by label) to measure accuracy; 0
        trains on everything and leaves the accuracy undefined.
    max_steps : int, default 1000
        Optimiser steps of the training.
    batch_size : int, default 32
        Images per step.
    lr : float, default 1e-3
        Peak learning rate (AdamW, cosine schedule with warm-up).
    weight_decay : float, default 1e-4
        AdamW's weight decay.
    class_weight : {"balanced"} or None, default "balanced"
        Weight the loss by inverse class frequency, so a small cluster is not ignored.
    training_options : dict, optional
        Further options of :func:`latentaudit.training.train` (``ema_decay``,
        ``precision``, ``checkpoint_dir``, ``time_limit``, ...); they override the
        defaults above.
    device : str or torch.device, optional
        Where to train and explain; default the CPU.
    random_state : int, RandomState or None, default None
        Seed of the split, the network's initialisation, the data order, the random
        pixels of :meth:`faithfulness` and the permutations of :meth:`difference_map`.
    verbose : bool, default False
        Show progress bars.

    Attributes
    ----------
    classes_ : numpy.ndarray
        The labels the classifier tells apart (cluster labels, or ``["rest", label]``).
    n_classes_ : int
        Their number.
    model_ : latentaudit.nn.ResNet
        The trained classifier (in eval mode).
    history_ : pandas.DataFrame
        The training history from :func:`latentaudit.training.train`.
    train_indices_, test_indices_ : numpy.ndarray
        Positions (in the images given to ``fit``) of the training and held-out items.
    accuracy_ : float
        Accuracy on the held-out items (NaN with ``test_size=0``).
    balanced_accuracy_ : float
        Mean per-class recall on the held-out items.
    confusion_matrix_ : numpy.ndarray
        ``(n_classes_, n_classes_)`` held-out counts, rows true, columns predicted.
    held_out_ : pandas.DataFrame
        One row per held-out item: ``index`` (position), ``label``, ``predicted``,
        ``probability`` (of the true label).
    target_layer_ : str
        Name of the layer the maps are taken from.
    cam_shape_ : tuple of int
        Spatial shape of that layer's maps for the fitted image size.
    image_shape_ : tuple of int
        Shape of one training image, ``(C, *spatial)``.

    Examples
    --------
    >>> import numpy as np
    >>> import latentaudit as la
    >>> rng = np.random.default_rng(0)
    >>> images = rng.normal(size=(64, 1, 32, 32)).astype("float32")
    >>> labels = np.repeat([0, 1], 32)
    >>> images[labels == 1, :, 4:10, 20:26] += 3  # cluster 1 carries a bright patch
    >>> exp = la.Explainer(widths=(8, 16, 32, 64), max_steps=60, random_state=0)
    >>> exp = exp.fit(images, labels)
    >>> exp.explain(images[:4]).shape
    (4, 32, 32)
    """

    def __init__(self, spatial_dims: int = 2, arch: str = "resnet10", method: str = "gradcam",
                 *, widths=None, norm: str = "batch", stem: str = "standard",
                 target_layer="auto", one_vs_rest=None, test_size: float = 0.2,
                 max_steps: int = 1000, batch_size: int = 32, lr: float = 1e-3,
                 weight_decay: float = 1e-4, class_weight: str | None = "balanced",
                 training_options: dict | None = None, device=None, random_state=None,
                 verbose: bool = False) -> None:
        self.spatial_dims = spatial_dims
        self.arch = arch
        self.method = method
        self.widths = widths
        self.norm = norm
        self.stem = stem
        self.target_layer = target_layer
        self.one_vs_rest = one_vs_rest
        self.test_size = test_size
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.class_weight = class_weight
        self.training_options = training_options
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # -- fitting ------------------------------------------------------------------------
    def fit(self, X, labels) -> Explainer:
        """Train the classifier on a delineation and measure it on a held-out split.

        Parameters
        ----------
        X : array-like, torch.Tensor or Dataset
            Images ``(N, C, *spatial)``, or a dataset of them (latentaudit's datasets,
            read lazily item by item).
        labels : array-like
            One label per image, e.g. ``ClusterAuditor.labels_``; items labelled -1
            (noise) are left out.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            (as :class:`latentaudit.errors.ConfigError`, ``DataError`` or
            ``InputShapeError``) for invalid options, images of the wrong shape, labels
            that do not match, fewer than two classes, or a class too small to split.
        TrainingError
            If the loss becomes NaN or infinite.
        """
        from sklearn.metrics import balanced_accuracy_score, confusion_matrix
        from sklearn.model_selection import train_test_split

        from ..training import train

        spatial_dims = check_spatial_dims(self.spatial_dims)
        check_option("arch", self.arch, tuple(RESNET_LAYERS))
        self.method_ = check_method(self.method, spatial_dims)
        check_option("class_weight", self.class_weight, ("balanced", None))
        if not (isinstance(self.test_size, (int, float)) and 0 <= self.test_size < 1):
            raise ConfigError(f"test_size must be a fraction in [0, 1), got {self.test_size!r}")
        source = ImageSource(X, "X", spatial_dims)
        labels = as_labels(labels, len(source))
        keep = kept_mask(labels)
        positions = np.flatnonzero(keep)
        kept = labels[keep]
        if self.one_vs_rest is not None:
            if not np.any(kept == self.one_vs_rest):
                raise DataError(f"one_vs_rest={self.one_vs_rest!r} is not among the labels "
                                f"{sorted(set(kept.tolist()), key=str)}")
            classes = np.array(["rest", self.one_vs_rest], dtype=object)
            y = (kept == self.one_vs_rest).astype(np.int64)
        else:
            classes, y = np.unique(kept, return_inverse=True)
        if len(classes) < 2:
            raise DataError(f"need at least two classes to train a classifier, got "
                            f"{len(classes)} ({classes.tolist()}) after dropping noise (-1)")
        counts = np.bincount(y, minlength=len(classes))
        seed = _seed_from(self.random_state)
        if self.test_size > 0:
            too_small = [classes[k] for k in range(len(classes)) if counts[k] < 2]
            if too_small:
                raise DataError(f"classes {too_small} have fewer than two items; a held-out "
                                f"split needs two per class (or set test_size=0)")
            train_pos, test_pos = train_test_split(
                np.arange(len(positions)), test_size=self.test_size, stratify=y,
                random_state=seed)
        else:
            train_pos, test_pos = np.arange(len(positions)), np.array([], dtype=np.int64)
        train_pos, test_pos = np.sort(train_pos), np.sort(test_pos)

        weights = None
        if self.class_weight == "balanced":
            train_counts = np.bincount(y[train_pos], minlength=len(classes)).astype(np.float64)
            if (train_counts == 0).any():
                raise DataError(f"class(es) {classes[train_counts == 0].tolist()} have no "
                                f"training item; lower test_size")
            weights = torch.tensor(len(train_pos) / (len(classes) * train_counts),
                                   dtype=torch.float32)
        widths = (64, 128, 256, 512) if self.widths is None else self.widths
        # Initialise from our own seed without disturbing the caller's global generator.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = ResNet(spatial_dims=spatial_dims, in_channels=source.image_shape[0],
                         num_classes=len(classes), layers=RESNET_LAYERS[self.arch],
                         widths=tuple(widths), norm=self.norm, stem=self.stem)
        module = _ClassifierModule(net, weights)
        if self.device is not None:
            module.to(self.device)

        train_set = _LabelledImages(source, positions[train_pos], y[train_pos])
        test_set = (_LabelledImages(source, positions[test_pos], y[test_pos])
                    if len(test_pos) else None)
        options = {
            "lr": self.lr, "weight_decay": self.weight_decay, "lr_schedule": "cosine",
            "warmup_steps": min(100, self.max_steps // 10), "validation": test_set,
            "val_every": max(1, self.max_steps // 5), "random_state": seed,
            "verbose": self.verbose,
        }
        options.update(self.training_options or {})
        self.history_ = train(module, train_set, max_steps=self.max_steps,
                              batch_size=min(self.batch_size, len(train_set)), **options)
        net.eval()
        self.model_ = net
        self.classes_ = classes
        self.n_classes_ = len(classes)
        self.image_shape_ = tuple(source.image_shape)
        self.train_indices_ = positions[train_pos]
        self.test_indices_ = positions[test_pos]
        self.target_layer_, self._target_module, self.cam_shape_ = self._resolve_target_layer()
        self._fit_source = source
        self._fit_labels = labels

        if len(test_pos):
            proba = self._proba(source, positions[test_pos])
            predicted = proba.argmax(axis=1)
            truth = y[test_pos]
            self.accuracy_ = float(np.mean(predicted == truth))
            self.balanced_accuracy_ = float(balanced_accuracy_score(truth, predicted))
            self.confusion_matrix_ = confusion_matrix(truth, predicted,
                                                      labels=np.arange(len(classes)))
            self.held_out_ = pd.DataFrame({
                "index": positions[test_pos], "label": classes[truth],
                "predicted": classes[predicted],
                "probability": proba[np.arange(len(truth)), truth]})
            logger.info("Explainer: held-out accuracy %.3f (balanced %.3f) on %d items",
                        self.accuracy_, self.balanced_accuracy_, len(test_pos))
        else:
            self.accuracy_ = self.balanced_accuracy_ = math.nan
            self.confusion_matrix_ = np.zeros((len(classes), len(classes)), dtype=np.int64)
            self.held_out_ = pd.DataFrame(columns=["index", "label", "predicted",
                                                   "probability"])
        return self

    def _resolve_target_layer(self) -> tuple[str, nn.Module, tuple[int, ...]]:
        net = self.model_
        named = dict(net.named_modules())
        stage_names = [f"stages.{i}" for i in range(len(net.stages))]
        spec = self.target_layer
        if isinstance(spec, str) and spec == "auto":
            candidates = stage_names
        elif isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
            if not -len(stage_names) <= int(spec) < len(stage_names):
                raise ConfigError(f"target_layer={spec} is not a stage index; the ResNet has "
                                  f"{len(stage_names)} stages (0 to {len(stage_names) - 1})")
            candidates = [stage_names[int(spec)]]
        elif isinstance(spec, str):
            check_option("target_layer", spec, [n for n in named if n])
            candidates = [spec]
        elif isinstance(spec, nn.Module):
            found = [name for name, module in named.items() if module is spec and name]
            if not found:
                raise ConfigError("target_layer is a module that is not part of the "
                                  "Explainer's ResNet; give a name such as 'stages.2' instead")
            candidates = found[:1]
        else:
            raise ConfigError(f"target_layer must be 'auto', a stage index, a module name or "
                              f"a module, got {spec!r}")
        shapes = self._layer_shapes([named[name] for name in candidates])
        if isinstance(spec, str) and spec == "auto":
            fine = [name for name, shape in zip(candidates, shapes, strict=True)
                    if min(shape) >= _MIN_CAM_SIDE]
            # Small images: take the stage with the finest maps.
            name = fine[-1] if fine else candidates[0]
        else:
            name = candidates[0]
        return name, named[name], shapes[candidates.index(name)]

    def _layer_shapes(self, modules: list[nn.Module]) -> list[tuple[int, ...]]:
        shapes: dict[int, tuple[int, ...]] = {}
        handles = [m.register_forward_hook(
            lambda mod, inp, out, k=k: shapes.__setitem__(k, tuple(out.shape[2:])))
            for k, m in enumerate(modules)]
        try:
            with torch.no_grad():
                self.model_(torch.zeros(1, *self.image_shape_, device=self._device()))
        finally:
            for handle in handles:
                handle.remove()
        return [shapes[k] for k in range(len(modules))]

    # -- helpers ------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call "
                                 f"fit(images, labels) first")

    def _device(self) -> torch.device:
        return resolve_device(None, self.model_)

    def _source(self, images, name: str = "images") -> ImageSource:
        source = ImageSource(images, name, self.spatial_dims)
        if source.image_shape[0] != self.image_shape_[0]:
            raise InputShapeError(f"{name} have {source.image_shape[0]} channel(s), the "
                                  f"Explainer was fitted on {self.image_shape_[0]}")
        return source

    def _proba(self, source: ImageSource, positions, batch_size: int = 64) -> np.ndarray:
        out = []
        device = self._device()
        self.model_.eval()
        with torch.no_grad():
            for _, batch in source.batches(positions, batch_size):
                logits = self.model_(torch.from_numpy(batch).to(device))
                out.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
        if not out:
            return np.empty((0, self.n_classes_), dtype=np.float32)
        return np.concatenate(out)

    def _class_indices(self, target, n: int, predicted: np.ndarray | None) -> np.ndarray:
        if target is None:
            return predicted
        lookup = {value: k for k, value in enumerate(self.classes_.tolist())}
        if np.isscalar(target) or isinstance(target, (str, bytes)):
            values = [target] * n
        else:
            values = as_labels(target, n, "target").tolist()
        missing = sorted({v for v in values if v not in lookup}, key=str)
        if missing:
            raise ConfigError(f"target label(s) {missing} are not among the classes "
                              f"{self.classes_.tolist()}")
        return np.array([lookup[v] for v in values], dtype=np.int64)

    # -- prediction ---------------------------------------------------------------------
    def predict_proba(self, images, *, batch_size: int = 64) -> np.ndarray:
        """Class probabilities of images.

        Parameters
        ----------
        images : array-like, torch.Tensor or Dataset
            ``(N, C, *spatial)`` images.
        batch_size : int, default 64
            Images per forward pass.

        Returns
        -------
        numpy.ndarray
            float32 ``(N, n_classes_)``, columns in the order of ``classes_``.

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
        """
        self._check_fitted()
        source = self._source(images)
        return self._proba(source, np.arange(len(source)), batch_size)

    def predict(self, images, *, batch_size: int = 64) -> np.ndarray:
        """The most probable class of each image.

        Parameters
        ----------
        images : array-like, torch.Tensor or Dataset
            ``(N, C, *spatial)`` images.
        batch_size : int, default 64
            Images per forward pass.

        Returns
        -------
        numpy.ndarray
            ``(N,)`` labels from ``classes_``.

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
        """
        self._check_fitted()
        return self.classes_[self.predict_proba(images, batch_size=batch_size).argmax(axis=1)]

    # -- maps ---------------------------------------------------------------------------
    def explain(self, images, target=None, *, method: str | None = None,
                batch_size: int = 32, eigen_smooth: bool = False,
                aug_smooth: bool = False) -> np.ndarray:
        """Class activation maps of images, at the input's resolution.

        Parameters
        ----------
        images : array-like, torch.Tensor or Dataset
            ``(N, C, H, W)`` or ``(N, C, D, H, W)`` images.
        target : object or array-like, optional
            The class to explain: one label of ``classes_`` for every image, one label
            per image, or None for each image's predicted class.
        method : str, optional
            Override the Explainer's ``method`` for this call.
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
            does not work on 3-D inputs, or a target that is not a class.

        Examples
        --------
        >>> maps = exp.explain(images, target=1)  # doctest: +SKIP
        >>> maps.shape == images.shape[:1] + images.shape[2:]  # doctest: +SKIP
        True
        """
        self._check_fitted()
        method = check_method(self.method_ if method is None else method, self.spatial_dims)
        source = self._source(images)
        n = len(source)
        need_predictions = target is None
        categories = None
        if not need_predictions:
            categories = self._class_indices(target, n, None)
        device = self._device()
        seed = _seed_from(self.random_state)
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
                    self.model_, [self._target_module], x, cats, method,
                    eigen_smooth=eigen_smooth, aug_smooth=aug_smooth, seed=seed + k)
                bar.update(len(positions))
        self.model_.eval()
        return maps

    def mean_maps(self, images, labels=None, *, method: str | None = None,
                  batch_size: int = 32) -> np.ndarray:
        """The average map of each class, over the images of that class.

        Parameters
        ----------
        images : array-like, torch.Tensor or Dataset
            ``(N, C, *spatial)`` images.
        labels : array-like, optional
            The class of every image (values of ``classes_``; -1 is left out); default
            the classifier's predictions.  Each image is explained for its own class.
        method : str, optional
            Override the CAM method.
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
        maps = self.explain(_Subset(source, keep), target=self.classes_[indices],
                            method=method, batch_size=batch_size)
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

    # -- images of the clusters ---------------------------------------------------------
    def _data_and_labels(self, images, labels):
        if images is None:
            self._check_fitted()
            images = self._fit_source
            labels = self._fit_labels if labels is None else labels
        elif labels is None:
            self._check_fitted()
            labels = self.predict(images)
        return images, labels

    def mean_images(self, images=None, labels=None, *, batch_size: int = 256):
        """The mean image of every cluster.

        Parameters
        ----------
        images : array-like, torch.Tensor or Dataset, optional
            Default: the images the Explainer was fitted on.
        labels : array-like, optional
            One label per image (-1 is left out); default the labels given to ``fit``
            (for the fitted images) or the classifier's predictions (for new images).
        batch_size : int, default 256
            Images read at a time.

        Returns
        -------
        classes : numpy.ndarray
            The sorted labels.
        means : numpy.ndarray
            float32 ``(n_classes, C, *spatial)``.

        See Also
        --------
        latentaudit.explain.mean_images : the same without an Explainer.
        """
        images, labels = self._data_and_labels(images, labels)
        return mean_images(images, labels, batch_size=batch_size)

    def difference_map(self, source, target=None, *, images=None, labels=None,
                       test: str = "welch", alpha: float = 0.05,
                       min_difference: float = 0.0, n_permutations: int = 1000,
                       batch_size: int = 256) -> DifferenceMap:
        """Voxel-wise difference between two clusters' mean images, with the voxels that
        differ significantly (Welch or permutation tests, Benjamini-Hochberg FDR).

        Parameters
        ----------
        source : object
            The first cluster's label.
        target : object, optional
            The second cluster's label; default every other cluster.
        images, labels : optional
            As in :meth:`mean_images`.
        test : {"welch", "permutation"}, default "welch"
            The per-voxel test.
        alpha : float, default 0.05
            False discovery rate of the significance mask.
        min_difference : float, default 0.0
            Also require ``|difference| >= min_difference`` for a marked voxel.
        n_permutations : int, default 1000
            Shuffles of the permutation test (seeded by ``random_state``).
        batch_size : int, default 256
            Images read at a time.

        Returns
        -------
        DifferenceMap

        See Also
        --------
        latentaudit.explain.difference_map : the same without an Explainer.
        """
        images, labels = self._data_and_labels(images, labels)
        return difference_map(images, labels, source, target, test=test, alpha=alpha,
                              min_difference=min_difference, n_permutations=n_permutations,
                              random_state=self.random_state, batch_size=batch_size)

    def counterfactual(self, encoder, images, source, target, *, steps: int = 5,
                       direction: str = "centroid", embeddings=None, labels=None,
                       scale: float = 1.0, diffusion_steps: int | None = None,
                       batch_size: int = 32) -> Counterfactual:
        """Decode images moved in ``encoder``'s latent space from cluster ``source``
        toward cluster ``target``.

        The move is the difference of the two clusters' mean embeddings (``"centroid"``)
        or a linear probe's normal (``"probe"``), computed from ``embeddings`` and
        ``labels`` when given, otherwise by encoding the images the Explainer was fitted
        on (only those of the two clusters).  Each image decodes with its own codes from
        ``encoder.invert`` (a Diffusion Autoencoder's stochastic code), so the subject
        stays recognisable.  See :func:`latentaudit.explain.counterfactual`.

        Parameters
        ----------
        encoder : GenerativeEncoder
            With ``encode``, ``invert`` and ``decode`` (``DAEEncoder``,
            ``BetaVAEEncoder``, ...).
        images : array-like, torch.Tensor or Dataset
            ``(N, C, *spatial)`` images to move.
        source, target : object
            Cluster labels (as given to ``fit``).
        steps : int, default 5
            Decoded images per input, the unmoved one included.
        direction : {"centroid", "probe"} or array-like, default "centroid"
            How to move, or the ``(latent_dim,)`` move itself.
        embeddings, labels : array-like, optional
            Embeddings (from ``encoder``) and their cluster labels to compute the move
            from.
        scale : float, default 1.0
            How far to go, in units of the centroid gap.
        diffusion_steps : int, optional
            Passed as ``steps`` to ``invert`` and ``decode`` (a Diffusion Autoencoder's
            DDIM steps; one-pass decoders ignore it).
        batch_size : int, default 32
            Images per encode/decode call.

        Returns
        -------
        Counterfactual
            ``images`` ``(N, steps, C, *spatial)``, ``difference`` (last minus first
            step), ``latents``, ``alphas`` and ``direction``.

        Raises
        ------
        NotFittedError
            Before :meth:`fit`, when the fitted images are needed.
        TypeError
            (as :class:`latentaudit.errors.InputTypeError`) for an encoder that cannot
            decode.
        """
        if isinstance(direction, str) and (embeddings is None or labels is None):
            self._check_fitted()
            fitted = self._fit_labels
            keep = kept_mask(fitted)
            for name, value in (("source", source), ("target", target)):
                if not np.any(keep & (fitted == value)):
                    raise DataError(f"no fitted image has the {name} label {value!r}; "
                                    f"labels: {sorted(set(fitted[keep].tolist()), key=str)}")
            positions = np.flatnonzero(keep & ((fitted == source) | (fitted == target)))
            chunks = []
            with torch.no_grad():
                for _, batch in self._fit_source.batches(positions, batch_size):
                    z = encoder.encode(torch.from_numpy(batch))
                    chunks.append(torch.as_tensor(z).detach().float().cpu().numpy())
            embeddings, labels = np.concatenate(chunks), fitted[positions]
        return counterfactual(encoder, images, source, target, embeddings=embeddings,
                              labels=labels, direction=direction, steps=steps, scale=scale,
                              diffusion_steps=diffusion_steps, batch_size=batch_size,
                              random_state=self.random_state, verbose=self.verbose)


class _Subset(Dataset):
    """Some items of an image source, as a dataset of ``{"image"}`` dicts."""

    def __init__(self, source: ImageSource, positions: np.ndarray) -> None:
        self.source = source
        self.positions = np.asarray(positions, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.source.get([int(self.positions[i])])[0]}


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
