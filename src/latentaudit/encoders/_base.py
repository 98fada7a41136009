"""Behaviour shared by every encoder: input handling for ``encode``, configs, presets
and ``fit`` as a thin call into :func:`latentaudit.training.train`."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..data._rows import item_image
from ..errors import ConfigError, InputShapeError, InputTypeError
from ..utils import resolve_device
from ._saving import SaveLoadMixin

__all__ = ["BaseEncoder", "ModelEncoder"]

logger = logging.getLogger(__name__)

@contextlib.contextmanager
def eval_mode(module: nn.Module):
    """Put ``module`` in eval mode for a block and restore its previous mode after."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


class BaseEncoder(nn.Module):
    """Base class of latentaudit's encoders: the ``encode`` machinery.

    Subclasses provide ``latent_dim``, ``spatial_dims``, ``in_channels`` (or None),
    :meth:`_expected_spatial_shape` and :meth:`_encode_batch`.
    """

    #: Number of channels the encoder expects, or None when it takes any.
    in_channels: int | None = None

    @property
    def device(self) -> torch.device:
        """Device of the encoder's first parameter or buffer (CPU if it has none)."""
        return resolve_device(None, self)

    def _expected_spatial_shape(self) -> tuple[int, ...] | None:
        """The spatial shape the encoder needs, or None when any size works."""
        return None

    def _encode_batch(self, images: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def _check_images(self, x, what: str = "images") -> torch.Tensor:
        """Validate a batch of images and return it as a float32 tensor."""
        name = type(self).__name__
        if isinstance(x, np.ndarray):
            if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
                raise InputTypeError(f"{name} expects real-valued {what}, got a NumPy array "
                                     f"of dtype {x.dtype}")
            x = torch.from_numpy(np.ascontiguousarray(x))
        if not isinstance(x, torch.Tensor):
            raise InputTypeError(
                f"{name} expects {what} as a torch.Tensor or numpy.ndarray, got "
                f"{type(x).__name__}")
        if x.is_complex():
            raise InputTypeError(f"{name} expects real-valued {what}, got dtype {x.dtype}")
        sd = self.spatial_dims
        layout = "(N, C, H, W)" if sd == 2 else "(N, C, D, H, W)"
        if x.ndim == sd + 1:
            maybe_2d = (" or a batch of 2-D images, which this spatial_dims=3 model does not "
                        "take" if sd == 3 else "")
            raise InputShapeError(
                f"{name} expects a batch of {what} shaped {layout}; got shape "
                f"{tuple(x.shape)}, a single image{maybe_2d}; add a batch axis to a single "
                f"image, e.g. x[None]")
        if x.ndim != sd + 2:
            raise InputShapeError(
                f"{name} (spatial_dims={sd}) expects {what} shaped {layout}, got shape "
                f"{tuple(x.shape)}")
        channels = self.in_channels
        if channels is not None and x.shape[1] != channels:
            raise InputShapeError(
                f"{name} expects {channels} channel(s), got {x.shape[1]} (batch of shape "
                f"{tuple(x.shape)}); images are channel-first, {layout}")
        spatial = self._expected_spatial_shape()
        if spatial is not None and tuple(x.shape[2:]) != tuple(spatial):
            want = "x".join(map(str, spatial))
            got = "x".join(map(str, x.shape[2:]))
            raise InputShapeError(
                f"{name} was built for {what} of size {want}, got {got} (batch of shape "
                f"{tuple(x.shape)}); resize, pad or crop them to {want} (the datasets' size= "
                f"option does this)")
        if x.dtype != torch.float32:
            x = x.float()
        return x

    def _image_batches(self, x, batch_size: int) -> tuple[Iterator, int | None, bool]:
        """Batches of images from any accepted input, their total count if known, and
        whether the input was a tensor (the output then goes to its device)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        if isinstance(x, (torch.Tensor, np.ndarray)):
            x = self._check_images(x)
            return iter(x.split(batch_size)), len(x), True
        if isinstance(x, DataLoader):
            total = len(x.dataset) if hasattr(x.dataset, "__len__") else None
            return (item_image(b) for b in x), total, False
        if hasattr(x, "__getitem__") and hasattr(x, "__len__") and not isinstance(
                x, (str, bytes, list, tuple, dict)):
            loader = DataLoader(x, batch_size=batch_size, shuffle=False)
            return (item_image(b) for b in loader), len(x), False
        raise InputTypeError(
            f"{type(self).__name__}.encode expects a tensor or NumPy array of images, a "
            f"dataset or a DataLoader, got {type(x).__name__}")

    def encode(self, x, *, batch_size: int = 64, verbose: bool = False) -> torch.Tensor:
        """Embed images.

        Runs in eval mode without gradients, on the encoder's device, in batches; the
        encoder's previous mode is restored.

        Parameters
        ----------
        x : torch.Tensor, numpy.ndarray, Dataset or DataLoader
            A batch ``(N, C, H, W)`` or ``(N, C, D, H, W)``, or a dataset or loader whose
            items are ``{"image": ..., "index": ...}`` dicts (or tuples whose first element
            is the image).
        batch_size : int, default 64
            Images per forward pass (for datasets and large arrays).
        verbose : bool, default False
            Show a progress bar.

        Returns
        -------
        torch.Tensor
            ``(N, latent_dim)`` float32: on the input's device for a tensor, else on the
            CPU.

        Raises
        ------
        InputShapeError
            For images of the wrong number of dimensions, channels or size.
        InputTypeError
            For inputs of another type.

        Examples
        --------
        >>> import torch
        >>> from latentaudit.encoders import BetaVAEEncoder
        >>> enc = BetaVAEEncoder(image_size=16, channels=(4, 8), latent_dim=8)
        >>> enc.encode(torch.zeros(3, 1, 16, 16)).shape
        torch.Size([3, 8])
        """
        batches, total, _ = self._image_batches(x, batch_size)
        out_device = x.device if isinstance(x, torch.Tensor) else torch.device("cpu")
        device = self.device
        outputs = []
        from tqdm.auto import tqdm

        with torch.no_grad(), eval_mode(self), tqdm(
                total=total, disable=not verbose, unit="img",
                desc=f"encoding with {type(self).__name__}") as bar:
            for images in batches:
                images = self._check_images(images)
                z = self._encode_batch(images.to(device))
                if z.ndim != 2 or z.shape != (len(images), self.latent_dim):
                    raise InputShapeError(
                        f"{type(self).__name__} produced embeddings of shape "
                        f"{tuple(z.shape)} for {len(images)} images; expected "
                        f"({len(images)}, {self.latent_dim})")
                outputs.append(z.float().to(out_device))
                bar.update(len(images))
        if not outputs:
            return torch.empty(0, self.latent_dim, device=out_device)
        return torch.cat(outputs)


class _BuiltFromPresets(type(nn.Module)):
    """Lets every family be built as ``Family(preset="tiny", latent_dim=8)``: with
    ``preset`` the call is :meth:`ModelEncoder.from_preset`, the other parameters
    overriding the preset's."""

    def __call__(cls, *args, preset: str | None = None, **kwargs):
        if preset is None:
            return super().__call__(*args, **kwargs)
        if args:
            raise ConfigError(f"{cls.__name__}(preset={preset!r}, ...) takes the other "
                              f"parameters by name only")
        return cls.from_preset(preset, **kwargs)

    @property
    def __signature__(cls):
        # What help() and the docs show: __init__'s parameters plus preset=.
        import inspect

        sig = inspect.signature(cls.__init__)
        params = list(sig.parameters.values())[1:]
        if "preset" not in sig.parameters and not any(
                p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            params.append(inspect.Parameter("preset", inspect.Parameter.KEYWORD_ONLY,
                                            default=None))
        return sig.replace(parameters=params)


class ModelEncoder(SaveLoadMixin, BaseEncoder, metaclass=_BuiltFromPresets):
    """Base class of latentaudit's own, trainable encoders.

    Each subclass is built from one config dataclass (``config_class``), names itself by
    ``model_type``, and implements ``loss(batch, *, generator)``.  Every subclass can be
    built from a named configuration, ``Family(preset="tiny", latent_dim=8)`` (the same as
    :meth:`from_preset`).  This class adds

    - ``save_pretrained`` / ``from_pretrained``: a JSON config plus safetensors weights,
      no pickled code;
    - ``config_hash``: a stable SHA-256 of the config, for provenance;
    - ``fit``: a thin call into :func:`latentaudit.training.train`, with the model's
      default training options (``default_training``).

    Parameters
    ----------
    config : dataclass instance
        The model's config, an instance of ``config_class``.
    """

    model_type: ClassVar[str] = ""
    config_class: ClassVar[type] = type(None)
    default_training: ClassVar[dict[str, Any]] = {}
    #: Named configurations: preset name -> config fields (the rest keep their defaults).
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    #: The preset :meth:`for_images` starts from when none is named.
    default_preset: ClassVar[str | None] = None

    def __init__(self, config) -> None:
        super().__init__()
        if not isinstance(config, self.config_class):
            raise InputTypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, "
                                 f"got {type(config).__name__}")
        self.config = config
        self._training_step = 0
        self._count_steps = True

    # -- properties of the protocol -------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        """Length of one embedding."""
        return int(self.config.latent_dim)

    @property
    def spatial_dims(self) -> int:
        """2 for images, 3 for volumes."""
        return int(self.config.spatial_dims)

    @property
    def in_channels(self) -> int:  # type: ignore[override]
        """Number of image channels."""
        return int(self.config.in_channels)

    # -- configs --------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config):
        """Build the model from its config dataclass.

        Parameters
        ----------
        config : dataclass instance or dict
            An instance of ``config_class`` or a dict of its fields.

        Returns
        -------
        ModelEncoder
        """
        if isinstance(config, Mapping):
            config = cls._config_from_dict(dict(config), source="the config dict")
        if not isinstance(config, cls.config_class):
            raise InputTypeError(f"{cls.__name__}.from_config needs a "
                                 f"{cls.config_class.__name__} or a dict, got "
                                 f"{type(config).__name__}")
        return cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(config)})

    @classmethod
    def _check_option_names(cls, options: Mapping[str, Any], what: str = "option") -> None:
        """Refuse names that are not fields of the config, with the closest one."""
        names = sorted(f.name for f in dataclasses.fields(cls.config_class))
        for key in options:
            if key not in names:
                import difflib

                close = difflib.get_close_matches(str(key), names, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"{cls.__name__} has no {what} {key!r}{hint} (its options: "
                                  f"{', '.join(names)})")

    @classmethod
    def from_preset(cls, name: str, **overrides):
        """Build the model from one of its named configurations (``presets``).

        Parameters
        ----------
        name : str
            A key of the class's ``presets``.
        **overrides
            Fields to change, e.g. ``latent_dim=8``.

        Returns
        -------
        ModelEncoder

        Raises
        ------
        ConfigError
            For an unknown preset or field (with the closest known name).

        Examples
        --------
        >>> from latentaudit.encoders import BetaVAEEncoder
        >>> BetaVAEEncoder.from_preset("tiny", latent_dim=4).latent_dim
        4
        """
        from ..utils import check_option

        if not cls.presets:
            raise ConfigError(f"{cls.__name__} has no presets; build it with its "
                              f"parameters instead")
        check_option("preset", name, tuple(cls.presets))
        cls._check_option_names(overrides, "field")
        return cls.from_config(cls.config_class(**{**cls.presets[name], **overrides}))

    @classmethod
    def for_images(cls, image_shape, *, preset: str | None = None, **overrides):
        """Build the model for images of a given shape, from a preset.

        What the command line and :func:`~latentaudit.encoders.build_encoder` call to make
        a new encoder of any family: ``spatial_dims``, ``in_channels`` and ``image_size``
        come from ``image_shape``, the rest from the preset and ``overrides``.

        Parameters
        ----------
        image_shape : tuple of int
            ``(C, *spatial)`` of one image (2 or 3 spatial axes).
        preset : str, optional
            A key of ``presets``; default ``default_preset`` (or the constructor's
            defaults for a family without presets).
        **overrides
            Fields to change.

        Returns
        -------
        ModelEncoder

        Raises
        ------
        ConfigError
            For an unknown preset or field, or an image shape that is not ``(C, H, W)``
            or ``(C, D, H, W)``.

        Examples
        --------
        >>> from latentaudit.encoders import BetaVAEEncoder
        >>> enc = BetaVAEEncoder.for_images((1, 32, 32), preset="tiny")
        >>> enc.config.image_size, enc.spatial_dims
        (32, 2)
        """
        shape = tuple(image_shape)
        if len(shape) not in (3, 4) or not all(
                isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0
                for s in shape):
            raise ConfigError(f"image_shape must be (C, H, W) or (C, D, H, W) with positive "
                              f"integer sizes, got {image_shape!r}")
        sizes = tuple(int(s) for s in shape[1:])
        geometry = {"spatial_dims": len(sizes), "in_channels": int(shape[0]),
                    "image_size": sizes[0] if len(set(sizes)) == 1 else sizes}
        fields = {**geometry, **overrides}
        preset = preset if preset is not None else cls.default_preset
        if preset is None:
            cls._check_option_names(fields)
            return cls(**fields)
        return cls.from_preset(preset, **fields)

    # -- latents --------------------------------------------------------------------------
    def _check_latents(self, z) -> torch.Tensor:
        """Validate latents ``(N, latent_dim)`` and return them as a float32 tensor."""
        if isinstance(z, np.ndarray):
            z = torch.from_numpy(np.ascontiguousarray(z))
        if not isinstance(z, torch.Tensor):
            raise InputTypeError(f"latents must be a torch.Tensor or numpy.ndarray, got "
                                 f"{type(z).__name__}")
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            hint = "; add a batch axis, e.g. z[None]" if z.ndim == 1 else ""
            raise InputShapeError(f"{type(self).__name__} expects latents of shape (N, "
                                  f"{self.latent_dim}), got {tuple(z.shape)}{hint}")
        return z.float()

    def _map_latents(self, z, fn, batch_size: int, item_shape: tuple[int, ...]) -> torch.Tensor:
        """Apply ``fn`` to batches of latents in eval mode without gradients; the result
        goes to ``z``'s device for a tensor, else to the CPU."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        z = self._check_latents(z)
        device = self.device
        outputs = []
        with torch.no_grad(), eval_mode(self):
            for chunk in z.split(batch_size):
                outputs.append(fn(chunk.to(device)).float().to(z.device))
        if not outputs:
            return torch.empty(0, *item_shape, device=z.device)
        return torch.cat(outputs).contiguous()

    # -- training -------------------------------------------------------------------------
    def set_training_step(self, step: int) -> None:
        """Tell the model which optimiser step it is at (for schedules inside ``loss``).

        :func:`latentaudit.training.train` calls this before every step.  A model never
        told counts its own training-mode ``loss`` calls instead.

        Parameters
        ----------
        step : int
            Number of optimiser steps done so far.
        """
        self._training_step = int(step)
        self._count_steps = False

    def _current_step(self) -> int:
        step = self._training_step
        if self._count_steps and self.training and torch.is_grad_enabled():
            self._training_step += 1
        return step

    def _training_dataset(self, dataset):
        from ..data import ArrayDataset

        if isinstance(dataset, (np.ndarray, torch.Tensor)):
            self._check_images(dataset, "training images")
            return ArrayDataset(dataset)
        if hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__") and len(dataset):
            first = item_image(dataset[0])
            first = torch.as_tensor(first)
            self._check_images(first[None], "training images")
        return dataset

    def fit(self, dataset, *, max_steps: int, batch_size: int = 32, device=None,
            checkpoint_dir: str | os.PathLike | None = None, resume: bool = False,
            verbose: bool = False, **options):
        """Train the model with :func:`latentaudit.training.train`.

        Parameters
        ----------
        dataset : Dataset, numpy.ndarray or torch.Tensor
            Training images: a map-style dataset yielding ``{"image", "index"}`` dicts
            (latentaudit's datasets) or an array ``(N, C, *spatial)``.
        max_steps : int
            Optimiser steps of the whole run.
        batch_size : int, default 32
            Images per step (per micro-batch with gradient accumulation).
        device : str or torch.device, optional
            Where to train (the model stays there).  Default: where the model is.
        checkpoint_dir : str or os.PathLike, optional
            Folder for atomic checkpoints, from which ``resume=True`` continues.
        resume : bool, default False
            Continue the run saved in ``checkpoint_dir``.
        verbose : bool, default False
            Show a progress bar.
        **options
            Any other option of :func:`latentaudit.training.train` (``lr``,
            ``ema_decay``, ``validation``, ``precision``, ``time_limit``, ...); the model's
            ``default_training`` fills in the ones not given.

        Returns
        -------
        self
            With ``history_``, the training history (a DataFrame).

        Raises
        ------
        InputShapeError
            If the dataset's images do not fit the model.
        TrainingError
            If the loss becomes NaN or infinite.
        """
        from ..training import train

        dataset = self._training_dataset(dataset)
        merged = {**self.default_training, **options}
        self.history_ = train(self, dataset, max_steps=max_steps, batch_size=batch_size,
                              device=device, checkpoint_dir=checkpoint_dir, resume=resume,
                              verbose=verbose, **merged)
        return self

    def loss(self, batch):  # pragma: no cover - abstract
        """The training loss of one batch; see the subclass."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"model_type={self.model_type!r}, latent_dim={self.latent_dim}"
