"""The Explainer: a classifier trained on a delineation (this module), its class activation
maps and their faithfulness (``_maps``), and views of the clusters themselves
(``_views``: mean and difference images, decoded counterfactuals)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator
from torch import nn

from .._identity import DEFAULT_ID_COLUMN
from ..data._rows import RowImages
from ..embeddings import Embeddings
from ..errors import ConfigError, DataError, InputShapeError, NotFittedError
from ..nn._resnet import RESNET_LAYERS, ResNet
from ..utils import check_option, check_spatial_dims, resolve_device
from ._cam import check_method
from ._inputs import as_labels, image_rows, kept_mask, seed_from
from ._maps import _Maps
from ._views import _ClusterViews

__all__ = ["Explainer"]

logger = logging.getLogger(__name__)

# "auto" picks the deepest residual stage whose maps still have this many pixels per side:
# the last stage of a ResNet on 64x64 images is 2x2, too coarse to point at anything.
_MIN_CAM_SIDE = 8


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


class _MeanLogits(nn.Module):
    """Several classifiers as one: the mean of their logits.  Grad-CAM through it with one
    target layer per member gives each member's own map (the mean's gradient reaches a
    member's layer through that member only), and grad-cam averages the maps, each scaled
    to [0, 1]."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x) for member in self.members]).mean(dim=0)


class Explainer(_Maps, _ClusterViews, BaseEstimator):
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
    cam : str, default "gradcam"
        The class activation map method (see :data:`latentaudit.explain.CAM_METHODS`):
        ``"gradcam"``,
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
    stem : {"auto", "standard", "strided", "small"}, default "auto"
        The ResNet's stem (see :class:`latentaudit.nn.ResNet`): "standard" downsamples 4x
        before the first stage, "strided" 2x (the same strided convolution without the
        max pooling), "small" keeps the full resolution.  "auto" is "small" for
        images smaller than 32 pixels (voxels) on a side, where the standard stem leaves
        maps of at most 4 per side, too coarse to point at anything (a 16^3 volume's maps
        would be 4^3), and "standard" otherwise.
    padding_mode : {"zeros", "replicate", "reflect"}, default "zeros"
        What the ResNet's convolutions pad with.  With "zeros", a background that is not
        zero (-1 in images scaled to [-1, 1]) makes every side of the image an edge, and
        the maps can peak on the border of the field of view, away from any evidence;
        "replicate" repeats the border pixels (voxels), so the border looks like more
        background.  See the Notes for 3-D volumes.
    target_layer : "auto", int, str, torch.nn.Module or a list of them, default "auto"
        Where the maps are taken: ``"auto"`` is the deepest residual stage whose feature
        maps are at least 8 pixels (voxels) per side; an int ``i`` is ``stages[i]``; a
        string names a submodule of the ResNet (``"stages.2"``, ``"stages.3.0.conv2"``);
        a module must belong to the ResNet.  A list or tuple of layers, e.g. ``(0, 1)``,
        averages their maps (each scaled to [0, 1] and brought to the input's size, as
        grad-cam does with several target layers, and as LayerCAM's authors fuse stages).
        :meth:`explain` can take the maps of other layers of the same classifier.  See
        the Notes for 3-D volumes.
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
    n_members : int, default 1
        Train this many classifiers on the same split, each from its own seed
        (``random_state + k``: initialisation and data order), and use them together:
        predictions from the mean of their logits, maps the mean of their maps (each
        scaled to [0, 1]).  Where one small classifier's maps depend on its seed (see the
        Notes), a few members make them steadier; fitting and explaining take
        ``n_members`` times as long.
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
    cam_ : str
        The CAM method the maps use (``cam`` with aliases resolved).
    n_classes_ : int
        Their number.
    model_ : latentaudit.nn.ResNet or torch.nn.Module
        The trained classifier (in eval mode); with ``n_members > 1`` a module returning
        the mean of the members' logits.
    members_ : list of latentaudit.nn.ResNet
        The trained classifiers (``[model_]`` with ``n_members=1``).
    history_ : pandas.DataFrame
        The training history from :func:`latentaudit.training.train` (with a ``member``
        column when ``n_members > 1``).
    train_indices_, test_indices_ : numpy.ndarray
        Positions (in the images given to ``fit``) of the training and held-out items.
    accuracy_ : float
        Accuracy on the held-out items (NaN with ``test_size=0``).
    balanced_accuracy_ : float
        Mean per-class recall on the held-out items.
    confusion_matrix_ : numpy.ndarray
        ``(n_classes_, n_classes_)`` held-out counts, rows true, columns predicted.
    held_out_ : pandas.DataFrame
        One row per held-out item: ``index`` (position), the id column (the
        Embeddings' or dataset's ids, else the positions), ``label``, ``predicted``,
        ``probability`` (of the true label).
    row_images_ : latentaudit.data.RowImages
        The images ``fit`` was given, read lazily.
    labels_ : numpy.ndarray
        The labels ``fit`` was given, one per image.
    embeddings_ : Embeddings or None
        The :class:`~latentaudit.Embeddings` ``fit`` was given (their ``z`` is what
        :meth:`counterfactual` moves, when they are in the encoder's latent space).
    id_column_ : str
        The name of the ids' column in :attr:`held_out_`.
    target_layer_ : str or tuple of str
        Name of the layer the maps are taken from (a tuple of names for several layers).
    cam_shape_ : tuple of int
        Spatial shape of that layer's maps for the fitted image size (a tuple of shapes
        for several layers).
    stem_ : str
        The stem the ResNet was built with ("auto" resolved).
    image_shape_ : tuple of int
        Shape of one training image, ``(C, *spatial)``.

    Notes
    -----
    **Which layer and method for 3-D volumes.**  Grad-CAM weights each channel of the
    target layer by its gradient averaged over the whole map, so its map is a weighted sum
    of that layer's channels.  An artefact that fills a large region (a shifted field of
    view) is pointed at well by Grad-CAM at the ``"auto"`` layer.  A thin artefact (a
    head-rest: a shell one voxel thick in a 16^3 volume) is not: the deeper layers'
    cells are too coarse and their receptive fields span the head, and the shallow ones
    hold few, class-agnostic channels (edges, bright tissue), so Grad-CAM's maximum lands
    on anatomy far from the artefact (the face, the vertex, a corner), although the
    classifier is accurate and relies on the artefact (removing it flips the
    prediction).  Methods that weight every voxel by its own gradient keep the
    localisation at the full-resolution stage: ``cam="layercam"`` (LayerCAM, Jiang et al.,
    2021, made for shallow layers) or ``"hirescam"`` with ``target_layer=0``.  On the 3-D
    demo cohort at 16^3 (the test settings: widths (4, 8, 8, 16), 120 steps), the
    pointing game within one voxel over seeds 0-4 is 0.94-1.00 for Grad-CAM at the
    ``"auto"`` layer on site B (shifted field of view) but 0.00-1.00 on site C
    (head-rest), where LayerCAM at ``target_layer=0`` reaches 0.88-1.00 (and 0.25-1.00
    on site B).  Neither setting serves both, so look at both: fit once and call
    ``explain(images, cam="layercam", target_layer=0)`` beside the default maps.
    Such small classifiers' maps also depend on the seed: over seeds 5-9 the same
    settings give 0.00-1.00 (B) and 0.31-0.94 (C).  ``n_members=5`` (maps averaged over
    five seeded classifiers) raised the share of splits at 0.8 or more from about half to
    8 of 10 for each site, not to all (``benchmarks/bench_explain_3d.py`` and
    ``bench_explain_3d_members.py``; docs/benchmarks.md).  These figures are from a 2-core
    Intel Xeon (AVX-512); a CPU with other arithmetic trains other classifiers: on a
    2-core AMD EPYC (AVX2) LayerCAM at stage 0 gave site C 0.75 at seed 1 (12 of 16
    held-out volumes), and the wider setting below fell to 0.75 at one site and seed.

    **Wider classifiers in 3-D: LayerCAM at stage 2, three members.**  Most of these
    failures are the tiny network's.  With ``widths=(32, 64, 128, 256)`` (same training,
    120 steps), ``cam="layercam", target_layer=2`` (LayerCAM at the third stage, 4^3 maps
    of a 16^3 volume) points into both planted artefacts within one voxel at every one of
    seeds 0-9 on the Intel machine: 0.88-1.00 on site B and on site C.  On the AMD
    machine one classifier a fit fell to 0.75 at site C, seed 8; with ``n_members=3``
    (three classifiers on the same split, their maps averaged) it held there at every
    one of seeds 0-9 (site B 1.00, site C 0.88-1.00; 0.94 at seed 8), at three times
    the cost (about 280 s a fit on one CPU thread).  So ``Explainer(spatial_dims=3,
    widths=(32, 64, 128, 256), n_members=3, cam="layercam", target_layer=2)`` is the
    16^3 setting; with one classifier a fit, LayerCAM at stage 2 is the one setting
    measured that held for both sites at every seed on the first machine.  LayerCAM
    averaged over the first two stages (``target_layer=(0, 1)``) finds site B at every
    seed (1.00) but falls to 0.31-0.69 on site C at seeds 6, 8 and 9; LayerCAM at
    stage 0 holds site C (0.81-1.00) but not B (0.50, 0.62 at seeds 8, 9); plain
    Grad-CAM stays unreliable on the wider network (at the ``"auto"`` layer 0.19-1.00 on
    B and 0.00-0.75 on C).
    Stage 2's maps are coarse: their maximum lands in the artefact, but much of their
    mass lies around it, and on this cohort the artefacts sit at about the same place in
    every volume, so the pointing game alone does not prove a map follows the artefact
    from volume to volume.
    The default widths are wider still, slower on a CPU, and were not measured here.  It
    is a setting for 16^3 volumes: at 32^3 stage 2's maps are 2^3 and miss the head-rest
    at every seed (next paragraph).  Figures: ``benchmarks/bench_explain_3d.py --widths
    32,64,128,256`` (with ``--members 3`` for three members; docs/benchmarks.md).

    **32^3 volumes: replicate padding, LayerCAM at stage 0, three members.**  With the
    default zero padding, the same wider classifier's maps of 32^3 volumes (standard stem:
    stage 0's maps 8^3) held for no setting measured (seeds 0-4: site C at best 0.13-0.17 at
    seed 3, site B 0.00-0.03 at some seed for every setting).  The misses were not
    scattered: at seed 3 LayerCAM's maximum at stage 0 lay, for all but one missed volume,
    on the same voxel of air on a face of the volume beside the head-rest, where blanking
    the image changes nothing.  The images' background is -1 and the padding 0, so every
    face of the volume is an edge to the first convolution.  ``padding_mode="replicate"``
    pads every convolution with its border voxels, so the border looks like more air; at
    seed 3 LayerCAM at stage 0 went from 0.13 to 1.00 within one voxel (shifting the images
    so that the air is 0 did the same, in a run outside the benchmark).
    ``Explainer(spatial_dims=3, widths=(32, 64, 128, 256), padding_mode="replicate",
    cam="layercam", target_layer=0)`` (300 steps on 200 volumes, half of site C) points into
    site C's head-rest within one voxel at every one of seeds 0-4 (0.93-1.00) and at seeds
    5, 6, 8 and 9 (0.97-1.00), but not at seed 7 (0.70; 0.93 within two voxels): there the
    maximum falls on the 8^3 cell just behind the head-rest, a near miss of maps whose cells
    span 4 voxels; training longer (500 steps) moves the miss to seed 6 (0.73) rather than
    removing it.  **With** ``n_members=3`` (three classifiers on the same split, their maps
    averaged) the same setting points into the head-rest within one voxel at every one of
    seeds 0-9 (0.87-1.00; 0.93 at seed 7): ``Explainer(spatial_dims=3, widths=(32, 64, 128,
    256), padding_mode="replicate", n_members=3, cam="layercam", target_layer=0)`` is the
    32^3 setting that held at every seed tested, at three times the cost of fitting and
    explaining (199-358 s a fit on one shared CPU thread, against 61-157 s for one
    classifier under less load).  With one classifier HiResCAM at stage 0 (0.50 at seed 7,
    0.60 at seed 9) and LayerCAM over stages 0+1 (0.60 at seed 7) do worse; Grad-CAM at
    ``"auto"`` (0.00-1.00) stays unreliable.  A stem that halves once (``stem="strided"``:
    stage 0's maps 16^3) does worse and fits more slowly (LayerCAM at stage 0: 0.70 at seed
    0, 0.30 at seed 6).  Site B's shifted field of view is not found with this setting
    either (one classifier; LayerCAM at stage 0 0.00-0.77 over seeds 0-4, Grad-CAM at
    ``"auto"`` 0.63-1.00); blanking B's mask never changes the class, so B's evidence is
    global and its pointing game of doubtful meaning.  Figures:
    ``benchmarks/bench_explain_3d.py --size 32 --widths 32,64,128,256 --padding replicate``
    and the same with ``--members 3`` (docs/benchmarks.md).

    Examples
    --------
    >>> import numpy as np
    >>> import latentaudit as la
    >>> rng = np.random.default_rng(0)
    >>> images = rng.normal(size=(64, 1, 24, 24)).astype("float32")
    >>> labels = np.repeat([0, 1], 32)
    >>> images[labels == 1, :, 3:8, 15:20] += 3  # cluster 1 carries a bright patch
    >>> exp = la.Explainer(widths=(4, 8, 16, 32), max_steps=30, batch_size=16,
    ...                    random_state=0)
    >>> exp = exp.fit(images, labels)
    >>> exp.explain(images[:4]).shape
    (4, 24, 24)

    LayerCAM at another stage (the 16^3 setting of the Notes is ``target_layer=2``), or
    averaged over the first two stages, from the same classifier:

    >>> exp.explain(images[:4], target=1, cam="layercam", target_layer=2).shape
    (4, 24, 24)
    >>> exp.explain(images[:4], target=1, cam="layercam", target_layer=(0, 1)).shape
    (4, 24, 24)
    """

    def __init__(self, spatial_dims: int = 2, arch: str = "resnet10", cam: str = "gradcam",
                 *, widths=None, norm: str = "batch", stem: str = "auto",
                 padding_mode: str = "zeros",
                 target_layer="auto", one_vs_rest=None, test_size: float = 0.2,
                 max_steps: int = 1000, batch_size: int = 32, lr: float = 1e-3,
                 weight_decay: float = 1e-4, class_weight: str | None = "balanced",
                 n_members: int = 1, training_options: dict | None = None, device=None,
                 random_state=None, verbose: bool = False) -> None:
        self.spatial_dims = spatial_dims
        self.arch = arch
        self.cam = cam
        self.widths = widths
        self.norm = norm
        self.stem = stem
        self.padding_mode = padding_mode
        self.target_layer = target_layer
        self.one_vs_rest = one_vs_rest
        self.test_size = test_size
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.class_weight = class_weight
        self.n_members = n_members
        self.training_options = training_options
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # -- fitting ------------------------------------------------------------------------
    def fit(self, X, labels) -> Explainer:
        """Train the classifier on a delineation and measure it on a held-out split.

        Parameters
        ----------
        X : Embeddings, array-like, torch.Tensor or Dataset
            :class:`~latentaudit.Embeddings` that carry their images (e.g. from
            :func:`~latentaudit.embed`), images ``(N, C, *spatial)``, or a dataset of
            them (latentaudit's datasets, read lazily item by item).
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
        self.cam_ = check_method(self.cam, spatial_dims)
        check_option("class_weight", self.class_weight, ("balanced", None))
        if isinstance(self.n_members, bool) or not isinstance(self.n_members, (int, np.integer)) \
                or self.n_members < 1:
            raise ConfigError(f"n_members must be a positive integer, got {self.n_members!r}")
        if not (isinstance(self.test_size, (int, float)) and 0 <= self.test_size < 1):
            raise ConfigError(f"test_size must be a fraction in [0, 1), got {self.test_size!r}")
        source = image_rows(X, "X", spatial_dims)
        embeddings = X if isinstance(X, Embeddings) else None
        id_column = X.id_column if embeddings is not None else DEFAULT_ID_COLUMN
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
        seed = seed_from(self.random_state)
        if self.test_size > 0:
            too_small = [classes[k] for k in range(len(classes)) if counts[k] < 2]
            if too_small:
                raise DataError(f"classes {too_small} have fewer than two items; a held-out "
                                f"split needs two per class (or set test_size=0)")
            n_test = int(np.ceil(self.test_size * len(positions)))
            if min(n_test, len(positions) - n_test) < len(classes):
                raise DataError(
                    f"{len(positions)} items are too few for a held-out split with "
                    f"test_size={self.test_size} and {len(classes)} classes (one held-out "
                    f"and one training item per class); give more items or set test_size=0")
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
        stem = check_option("stem", self.stem, ("auto", "standard", "strided", "small"))
        if stem == "auto":
            small = min(source.image_shape[1:]) < 4 * _MIN_CAM_SIDE
            stem = "small" if small else "standard"
        train_set = source.subset(positions[train_pos], labels=y[train_pos])
        test_set = (source.subset(positions[test_pos], labels=y[test_pos])
                    if len(test_pos) else None)
        members, histories = [], []
        for k in range(int(self.n_members)):
            # Initialise from our own seed without disturbing the caller's global generator.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed + k)
                net = ResNet(spatial_dims=spatial_dims, in_channels=source.image_shape[0],
                             num_classes=len(classes), layers=RESNET_LAYERS[self.arch],
                             widths=tuple(widths), norm=self.norm, stem=stem,
                             padding_mode=self.padding_mode)
            module = _ClassifierModule(net, weights)
            if self.device is not None:
                module.to(self.device)
            options = {
                "lr": self.lr, "weight_decay": self.weight_decay, "lr_schedule": "cosine",
                "warmup_steps": min(100, self.max_steps // 10), "validation": test_set,
                "val_every": max(1, self.max_steps // 5), "random_state": seed + k,
                "verbose": self.verbose,
            }
            options.update(self.training_options or {})
            if self.n_members > 1 and options.get("checkpoint_dir") is not None:
                options["checkpoint_dir"] = Path(options["checkpoint_dir"]) / f"member{k}"
            history = train(module, train_set, max_steps=self.max_steps,
                            batch_size=min(self.batch_size, len(train_set)), **options)
            if self.n_members > 1:
                history.insert(0, "member", k)
            net.eval()
            members.append(net)
            histories.append(history)
        self.history_ = (histories[0] if len(histories) == 1
                         else pd.concat(histories, ignore_index=True))
        self.members_ = members
        self.model_ = members[0] if len(members) == 1 else _MeanLogits(members).eval()
        self.classes_ = classes
        self.n_classes_ = len(classes)
        self.image_shape_ = tuple(source.image_shape)
        self.stem_ = stem
        self.train_indices_ = positions[train_pos]
        self.test_indices_ = positions[test_pos]
        self.target_layer_, self._target_modules, self.cam_shape_ = \
            self._resolve_target_layer(self.target_layer)
        self.row_images_ = source
        self.labels_ = labels
        self.embeddings_ = embeddings
        self.id_column_ = id_column

        if len(test_pos):
            proba = self._proba(source, positions[test_pos])
            predicted = proba.argmax(axis=1)
            truth = y[test_pos]
            self.accuracy_ = float(np.mean(predicted == truth))
            self.balanced_accuracy_ = float(balanced_accuracy_score(truth, predicted))
            self.confusion_matrix_ = confusion_matrix(truth, predicted,
                                                      labels=np.arange(len(classes)))
            self.held_out_ = pd.DataFrame({
                "index": positions[test_pos], id_column: source.ids[positions[test_pos]],
                "label": classes[truth],
                "predicted": classes[predicted],
                "probability": proba[np.arange(len(truth)), truth]})
            logger.info("Explainer: held-out accuracy %.3f (balanced %.3f) on %d items",
                        self.accuracy_, self.balanced_accuracy_, len(test_pos))
        else:
            self.accuracy_ = self.balanced_accuracy_ = math.nan
            self.confusion_matrix_ = np.zeros((len(classes), len(classes)), dtype=np.int64)
            self.held_out_ = pd.DataFrame(columns=["index", id_column, "label", "predicted",
                                                   "probability"])
        return self

    def _resolve_target_layer(self, spec):
        """The name (in each member), the modules (one per member) and the map shape of a
        ``target_layer`` specification; for a list or tuple of layers, a tuple of names,
        the modules of every layer (one per member each) and a tuple of shapes."""
        if isinstance(spec, (list, tuple)):
            if not spec:
                raise ConfigError("target_layer is an empty list; give at least one layer")
            resolved = [self._resolve_target_layer(one) for one in spec]
            names = tuple(name for name, _, _ in resolved)
            if len(set(names)) < len(names):
                raise ConfigError(f"target_layer names a layer more than once: {names}")
            if len(names) == 1:
                return resolved[0]
            return (names, [m for _, modules, _ in resolved for m in modules],
                    tuple(shape for _, _, shape in resolved))
        members = getattr(self, "members_", None) or [self.model_]
        net = members[0]
        named = dict(net.named_modules())
        stage_names = [f"stages.{i}" for i in range(len(net.stages))]
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
            found = [name for member in members for name, module in member.named_modules()
                     if module is spec and name]
            if not found:
                raise ConfigError("target_layer is a module that is not part of the "
                                  "Explainer's ResNet; give a name such as 'stages.2' instead")
            candidates = found[:1]
        else:
            raise ConfigError(f"target_layer must be 'auto', a stage index, a module name, "
                              f"a module or a list of them, got {spec!r}")
        shapes = self._layer_shapes(net, [named[name] for name in candidates])
        if isinstance(spec, str) and spec == "auto":
            fine = [name for name, shape in zip(candidates, shapes, strict=True)
                    if min(shape) >= _MIN_CAM_SIDE]
            # Small images: take the stage with the finest maps.
            name = fine[-1] if fine else candidates[0]
        else:
            name = candidates[0]
        modules = [dict(member.named_modules())[name] for member in members]
        return name, modules, shapes[candidates.index(name)]

    def _layer_shapes(self, net: nn.Module, modules: list[nn.Module]) -> list[tuple[int, ...]]:
        shapes: dict[int, tuple[int, ...]] = {}
        handles = [m.register_forward_hook(
            lambda mod, inp, out, k=k: shapes.__setitem__(k, tuple(out.shape[2:])))
            for k, m in enumerate(modules)]
        try:
            with torch.no_grad():
                net(torch.zeros(1, *self.image_shape_, device=self._device()))
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

    def _source(self, images, name: str = "images") -> RowImages:
        source = image_rows(images, name, self.spatial_dims)
        if source.image_shape[0] != self.image_shape_[0]:
            raise InputShapeError(f"{name} have {source.image_shape[0]} channel(s), the "
                                  f"Explainer was fitted on {self.image_shape_[0]}")
        return source

    def _proba(self, source: RowImages, positions, batch_size: int = 64) -> np.ndarray:
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
