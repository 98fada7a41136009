"""Wrap any PyTorch module so that it works wherever latentaudit expects an encoder."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, InputShapeError, InputTypeError, LatentAuditError
from ..utils import check_option, check_spatial_dims
from ._base import BaseEncoder, eval_mode

__all__ = ["TorchEncoder"]

_POOLINGS = ("auto", "avg", "max", "flatten", "none")


class TorchEncoder(BaseEncoder):
    """Use a pretrained network, a foundation model or any :class:`torch.nn.Module` as an
    encoder.

    The module's output is turned into one vector per image by ``pooling``; the result
    meets the :class:`~latentaudit.encoders.Encoder` protocol, so it can be passed to
    ``la.embed`` and everything downstream.  The wrapper does not train the module and
    cannot save it (save the module yourself; latentaudit never pickles code).

    Parameters
    ----------
    module : torch.nn.Module
        Maps a batch ``(N, C, *spatial)`` to features: ``(N, F)``, feature maps
        ``(N, F, *spatial')`` or anything ``pooling`` understands.
    spatial_dims : {2, 3}, default 2
        2 for images, 3 for volumes.
    latent_dim : int, optional
        Length of the embedding.  Found by a dry run on zeros of ``input_shape`` when not
        given; one of the two is needed.
    input_shape : tuple of int, optional
        Shape of one image, channels first (``(C, H, W)`` or ``(C, D, H, W)``): used for
        the dry run and to check the channels of inputs.  Images of other sizes are
        passed through (the module decides whether it takes them).
    pooling : {"auto", "avg", "max", "flatten", "none"} or callable, default "auto"
        How the output becomes ``(N, latent_dim)``: ``"avg"``/``"max"`` pool over all
        axes after the second (global pooling of feature maps), ``"flatten"`` flattens
        them, ``"none"`` requires ``(N, latent_dim)`` already, and a callable gets the raw
        output (e.g. ``lambda out: out.last_hidden_state[:, 0]``).  ``"auto"`` keeps a
        2-D output, averages feature maps with ``spatial_dims`` spatial axes and flattens
        anything else.
    preprocess : callable, optional
        Applied to each batch (already on the module's device) before the module, e.g. to
        repeat a grey channel three times or to apply ImageNet normalisation.

    Attributes
    ----------
    module : torch.nn.Module
        The wrapped module.

    Raises
    ------
    ConfigError
        If neither ``latent_dim`` nor ``input_shape`` is given, or they disagree.

    Examples
    --------
    >>> import torch
    >>> from latentaudit.encoders import Encoder, TorchEncoder
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3), torch.nn.ReLU())
    >>> enc = TorchEncoder(net, input_shape=(1, 32, 32))   # global average pooling
    >>> enc.latent_dim, isinstance(enc, Encoder)
    (16, True)
    >>> enc.encode(torch.zeros(4, 1, 32, 32)).shape
    torch.Size([4, 16])
    """

    def __init__(self, module: nn.Module, *, spatial_dims: int = 2,
                 latent_dim: int | None = None, input_shape: tuple[int, ...] | None = None,
                 pooling: str | Callable = "auto",
                 preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        super().__init__()
        if not isinstance(module, nn.Module):
            raise InputTypeError(f"TorchEncoder wraps a torch.nn.Module, got "
                                 f"{type(module).__name__}")
        self.module = module
        self._spatial_dims = check_spatial_dims(spatial_dims)
        if not callable(pooling):
            check_option("pooling", pooling, _POOLINGS)
        self.pooling = pooling
        if preprocess is not None and not callable(preprocess):
            raise InputTypeError(f"preprocess must be callable, got {type(preprocess).__name__}")
        self.preprocess = preprocess
        if input_shape is not None:
            input_shape = tuple(int(s) for s in input_shape)
            if len(input_shape) != spatial_dims + 1 or min(input_shape) < 1:
                layout = "(C, H, W)" if spatial_dims == 2 else "(C, D, H, W)"
                raise ConfigError(f"input_shape must be one image's shape {layout} for "
                                  f"spatial_dims={spatial_dims}, got {input_shape!r}")
        self.input_shape = input_shape
        self._latent_dim: int | None = None
        if latent_dim is not None and (isinstance(latent_dim, bool) or not isinstance(
                latent_dim, (int, np.integer)) or latent_dim < 1):
            raise ConfigError(f"latent_dim must be a positive integer, got {latent_dim!r}")
        if latent_dim is None and input_shape is None:
            raise ConfigError("TorchEncoder needs latent_dim= or input_shape= (one image's "
                              "shape, channels first) so the embedding length can be found "
                              "by a dry run")
        if input_shape is not None:
            found = self._dry_run(input_shape)
            if latent_dim is not None and found != latent_dim:
                raise ConfigError(f"latent_dim={latent_dim} was given but the module's pooled "
                                  f"output for input_shape={input_shape} has {found} features")
            latent_dim = found
        self._latent_dim = int(latent_dim)

    @property
    def latent_dim(self) -> int:
        """Length of one embedding."""
        return self._latent_dim

    @property
    def spatial_dims(self) -> int:
        """2 for images, 3 for volumes."""
        return self._spatial_dims

    @property
    def in_channels(self) -> int | None:  # type: ignore[override]
        """Channels from ``input_shape``, or None (then any number is passed through)."""
        return None if self.input_shape is None else self.input_shape[0]

    def _dry_run(self, input_shape: tuple[int, ...]) -> int:
        x = torch.zeros((2, *input_shape), device=self.device)
        with torch.no_grad(), eval_mode(self):
            try:
                z = self._encode_batch(x)
            except LatentAuditError:
                raise
            except Exception as err:  # whatever the user's module raises
                raise ConfigError(f"the dry run of the wrapped {type(self.module).__name__} on "
                                  f"zeros of shape {tuple(x.shape)} failed: "
                                  f"{type(err).__name__}: {err}") from err
        return int(z.shape[1])

    def _pool(self, out) -> torch.Tensor:
        pooling = self.pooling
        if callable(pooling):
            out = pooling(out)
        elif not isinstance(out, torch.Tensor):
            raise InputTypeError(
                f"the wrapped {type(self.module).__name__} returned a "
                f"{type(out).__name__}, not a tensor; pass pooling=<callable> that picks the "
                f"features from it")
        elif pooling == "auto":
            if out.ndim == 2 + self.spatial_dims:
                out = out.mean(dim=tuple(range(2, out.ndim)))
            elif out.ndim > 2:
                out = out.flatten(1)
        elif pooling in ("avg", "max") and out.ndim > 2:
            dims = tuple(range(2, out.ndim))
            out = out.mean(dim=dims) if pooling == "avg" else out.amax(dim=dims)
        elif pooling == "flatten":
            out = out.flatten(1)
        if not isinstance(out, torch.Tensor) or out.ndim != 2:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise InputShapeError(
                f"TorchEncoder needs (N, latent_dim) features after pooling={pooling!r}, got "
                f"{shape}; choose another pooling")
        return out

    def _encode_batch(self, images: torch.Tensor) -> torch.Tensor:
        if self.preprocess is not None:
            images = self.preprocess(images)
        return self._pool(self.module(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled features of a batch (differentiable, in the current mode).

        Parameters
        ----------
        images : torch.Tensor
            ``(N, C, *spatial)``.

        Returns
        -------
        torch.Tensor
            ``(N, latent_dim)``.
        """
        return self._encode_batch(self._check_images(images))

    def extra_repr(self) -> str:
        pooling = self.pooling if isinstance(self.pooling, str) else "callable"
        return (f"spatial_dims={self.spatial_dims}, latent_dim={self._latent_dim}, "
                f"pooling={pooling!r}")
