"""What latentaudit expects of an encoder, and of one that can also decode."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import torch

from ..errors import InputShapeError, InputTypeError

__all__ = ["Encoder", "GenerativeEncoder", "concat_codes", "interpolate_codes", "select_codes"]


@runtime_checkable
class Encoder(Protocol):
    """Anything that maps images to fixed-length embeddings.

    latentaudit's own encoders meet this protocol, :class:`~latentaudit.TorchEncoder`
    makes any :class:`torch.nn.Module` meet it, and a user's class meets it by having these
    members (no inheritance needed); ``isinstance(obj, Encoder)`` checks for them.

    Attributes
    ----------
    latent_dim : int
        Length of one embedding.
    spatial_dims : int
        2 for images ``(N, C, H, W)``, 3 for volumes ``(N, C, D, H, W)``.

    Examples
    --------
    >>> import torch
    >>> from latentaudit.encoders import Encoder
    >>> class MeanIntensity:
    ...     latent_dim, spatial_dims = 1, 2
    ...     def encode(self, x):
    ...         return torch.as_tensor(x).float().mean(dim=(1, 2, 3))[:, None]
    >>> isinstance(MeanIntensity(), Encoder)
    True
    """

    latent_dim: int
    spatial_dims: int

    def encode(self, x) -> torch.Tensor:
        """Embed images.

        Parameters
        ----------
        x : torch.Tensor, numpy.ndarray, Dataset or DataLoader
            A batch ``(N, C, *spatial)``, or a dataset/loader whose items are
            ``{"image": ..., "index": ...}`` dicts (latentaudit's datasets).

        Returns
        -------
        torch.Tensor
            ``(N, latent_dim)`` float32.
        """
        ...


@runtime_checkable
class GenerativeEncoder(Encoder, Protocol):
    """An :class:`Encoder` that can also turn embeddings back into images.

    Two methods make the protocol, and code that decodes (counterfactuals,
    :meth:`Interpolator.generate <latentaudit.Interpolator.generate>`, the report) uses
    these two only:

    - ``invert(x, **options) -> codes``: what the decoder needs besides the embedding to
      reproduce the images ``x``: a Diffusion Autoencoder's stochastic code ``x_T``, a
      GAN's per-image noise or W+ residual, ``None`` for a β-VAE (its embedding is
      enough).  Codes are ``None``, a tensor ``(N, ...)`` or a tuple/list/dict of such
      tensors; :func:`select_codes`, :func:`concat_codes` and :func:`interpolate_codes`
      handle all of these.
    - ``decode(z, codes=None, *, generator=None, **options) -> images``: with the codes of
      :meth:`invert`, the images come back; with ``codes=None`` whatever is missing is
      drawn from ``generator`` (a :class:`torch.Generator`; ``None`` means a fresh default
      generator, never the global random state), so the same generator state gives the
      same images.

    One option is shared by every family: ``steps``, the number of steps of an iterative
    inversion or decoder (DDIM steps, per-image optimisation steps); an encoder whose
    decoding is one pass accepts it and ignores it, so callers pass it without asking
    which family they hold.

    Examples
    --------
    >>> import torch
    >>> from latentaudit.encoders import BetaVAEEncoder, GenerativeEncoder
    >>> enc = BetaVAEEncoder(image_size=16, channels=(4, 8), latent_dim=8)
    >>> isinstance(enc, GenerativeEncoder)
    True
    >>> x = torch.zeros(2, 1, 16, 16)
    >>> codes = enc.invert(x)
    >>> enc.decode(enc.encode(x), codes).shape
    torch.Size([2, 1, 16, 16])
    """

    def invert(self, x, **options) -> Any:
        """What :meth:`decode` needs besides the embeddings of ``x`` to reproduce ``x``
        (``None`` when the embedding is enough)."""
        ...

    def decode(self, z, codes=None, *, generator: torch.Generator | None = None,
               **options) -> torch.Tensor:
        """Decode embeddings ``(N, latent_dim)`` (and codes from :meth:`invert`) into
        images ``(N, C, *spatial)`` in [-1, 1]."""
        ...


# -- codes: None, a tensor (N, ...), or a tuple/list/dict of them --------------------------

def _map_codes(fn: Callable[..., torch.Tensor], first, *others, where: str = "codes"):
    if first is None:
        if any(o is not None for o in others):
            raise InputTypeError(f"{where}: cannot combine None codes with codes")
        return None
    if isinstance(first, torch.Tensor):
        if not all(isinstance(o, torch.Tensor) for o in others):
            raise InputTypeError(f"{where}: codes of different structure (a tensor and "
                                 f"{', '.join(type(o).__name__ for o in others)})")
        return fn(first, *others)
    if isinstance(first, Mapping):
        if any(not isinstance(o, Mapping) or set(o) != set(first) for o in others):
            raise InputTypeError(f"{where}: codes dicts with different keys")
        return {k: _map_codes(fn, first[k], *(o[k] for o in others), where=where)
                for k in first}
    if isinstance(first, (tuple, list)):
        if any(not isinstance(o, (tuple, list)) or len(o) != len(first) for o in others):
            raise InputTypeError(f"{where}: codes sequences of different lengths")
        return type(first)(_map_codes(fn, item, *(o[i] for o in others), where=where)
                           for i, item in enumerate(first))
    raise InputTypeError(f"{where}: codes must be None, a tensor, or a tuple/list/dict of "
                         f"tensors, got {type(first).__name__}")


def select_codes(codes, rows):
    """The codes of some images: every tensor of ``codes`` indexed along its first axis.

    Parameters
    ----------
    codes : None, torch.Tensor, or tuple/list/dict of tensors
        Codes of ``N`` images, from a generative encoder's ``invert``.
    rows : array-like of int, slice or torch.Tensor
        Which images.

    Returns
    -------
    The codes of those images, in the same structure (``None`` stays ``None``).

    Examples
    --------
    >>> import torch
    >>> from latentaudit.encoders import select_codes
    >>> select_codes((torch.arange(4), torch.arange(4) * 10), [3, 0])
    (tensor([3, 0]), tensor([30,  0]))
    >>> select_codes(None, [1]) is None
    True
    """
    if not isinstance(rows, slice):
        rows = torch.as_tensor(rows, dtype=torch.long)
    return _map_codes(lambda t: t[rows.to(t.device) if isinstance(rows, torch.Tensor)
                                  else rows], codes, where="select_codes")


def concat_codes(chunks: Sequence):
    """Join the codes of consecutive batches of images into the codes of all of them.

    Parameters
    ----------
    chunks : sequence of codes
        Codes of each batch, all of the same structure.

    Returns
    -------
    The codes of all the images (``None`` if the batches' codes are ``None``).

    Raises
    ------
    InputTypeError
        If the batches' codes differ in structure.

    Examples
    --------
    >>> import torch
    >>> from latentaudit.encoders import concat_codes
    >>> concat_codes([torch.zeros(2, 3), torch.ones(1, 3)]).shape
    torch.Size([3, 3])
    >>> concat_codes([None, None]) is None
    True
    """
    chunks = list(chunks)
    if not chunks:
        return None
    return _map_codes(lambda *ts: torch.cat(ts), chunks[0], *chunks[1:], where="concat_codes")


def interpolate_codes(a, b, weight):
    """Codes between two images' codes: :func:`~latentaudit.nn.slerp` of every tensor.

    Spherical interpolation keeps Gaussian codes (a DAE's ``x_T``, a GAN's noise) at the
    norm such codes have, where a straight line would shrink them.

    Parameters
    ----------
    a, b : codes
        Codes of ``N`` images each, of the same structure.
    weight : float or array-like of shape (N,)
        0 gives ``a``, 1 gives ``b``.

    Returns
    -------
    The interpolated codes (``None`` for ``None`` codes).

    Raises
    ------
    InputShapeError
        If the tensors of ``a`` and ``b`` differ in shape.

    Examples
    --------
    >>> import torch
    >>> from latentaudit.encoders import interpolate_codes
    >>> interpolate_codes(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]), 0.5)
    tensor([[0.7071, 0.7071]])
    """
    from ..nn import slerp

    def one(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape:
            raise InputShapeError(f"interpolate_codes: codes of shapes {tuple(x.shape)} and "
                                  f"{tuple(y.shape)}")
        return slerp(x, y.to(x.device), weight)

    return _map_codes(one, a, b, where="interpolate_codes")
