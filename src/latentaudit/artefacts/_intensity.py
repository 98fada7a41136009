"""Intensity: the same anatomy, other grey values (gain, contrast curve, bias field)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..errors import ConfigError
from ._base import Artefact, check_range, check_seed

__all__ = ["BiasField", "ContrastCurve", "Gain"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Gain(Artefact):
    """A different receiver gain or scaling: every signal multiplied by one factor.

    Physical quantity: the gain change in decibels (of amplitude),
    ``strength * max_gain_db`` (strength 1 = +3 dB, a factor of 1.41, by default; a
    negative ``max_gain_db`` darkens).  Signals above full scale are clipped, as a display
    window saturates.  Deterministic.

    Parameters
    ----------
    strength : float, default 1.0
        In [0, 1].
    max_gain_db : float, default 3.0
        Gain at strength 1 in dB (factor ``10 ** (dB / 20)``), non-zero, within +-40.
    value_range : tuple of two floats or None, default (-1.0, 1.0)
        See :class:`Artefact`.

    Notes
    -----
    The mask marks the pixels whose value changed (those with signal).

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit.artefacts import Gain
    >>> out, mask = Gain(strength=1.0, max_gain_db=-6.0, value_range=(0, 1))(
    ...     np.array([[[0.0, 0.5, 1.0]]]))
    >>> out.round(3).tolist(), mask.tolist()
    ([[[0.0, 0.251, 0.501]]], [[[False, True, True]]])
    """

    max_gain_db: float = 3.0

    name = "gain"
    family = "intensity"

    def _check(self) -> None:
        check_range("max_gain_db", self.max_gain_db, -40.0, 40.0)
        if self.max_gain_db == 0:
            raise ConfigError("max_gain_db must not be 0 (that gain changes nothing)")

    def _apply(self, signal, rng, support):
        return signal * 10 ** (self.strength * self.max_gain_db / 20), None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ContrastCurve(Artefact):
    """Another contrast curve: the signal passed through a power law (a different
    windowing, reconstruction filter or weighting).

    Physical quantity: the exponent ``gamma = max_gamma ** strength`` of
    ``signal ** gamma`` (signal in [0, 1]); strength 1 = gamma 1.5 by default, which
    darkens mid-greys and stretches the bright end; ``max_gamma < 1`` brightens.
    Black and full white stay where they are.  Deterministic.

    Parameters
    ----------
    strength : float, default 1.0
        In [0, 1].
    max_gamma : float, default 1.5
        Exponent at strength 1, in [0.1, 10], not 1.
    value_range : tuple of two floats or None, default (-1.0, 1.0)
        See :class:`Artefact`.

    Notes
    -----
    The mask marks the pixels whose value changed (signal strictly between 0 and 1).

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit.artefacts import ContrastCurve
    >>> out, _ = ContrastCurve(strength=1.0, max_gamma=2.0, value_range=(0, 1))(
    ...     np.array([[[0.0, 0.5, 1.0]]]))
    >>> out.tolist()
    [[[0.0, 0.25, 1.0]]]
    """

    max_gamma: float = 1.5

    name = "contrast_curve"
    family = "intensity"

    def _check(self) -> None:
        check_range("max_gamma", self.max_gamma, 0.1, 10.0)
        if self.max_gamma == 1:
            raise ConfigError("max_gamma must not be 1 (that curve changes nothing)")

    def _apply(self, signal, rng, support):
        return np.clip(signal, 0, None) ** (self.max_gamma ** self.strength), None


@dataclasses.dataclass(frozen=True, kw_only=True)
class BiasField(Artefact):
    """A smooth multiplicative intensity non-uniformity (an MR bias field from the
    receive coil's sensitivity and B1 inhomogeneity).

    The field is ``exp(strength * log(1 + max_nonuniformity) * f)``, where ``f`` is a
    random polynomial of total degree ``order`` in the image coordinates (each scaled to
    [-1, 1]; coefficients N(0, 1), then ``f`` rescaled so its largest absolute value over
    the image is 1).  Physical quantity: the field's extremes, ``(1 + max_nonuniformity)
    ** (+- strength)``: at strength 1 with the default 0.4 the field spans at most 0.71 to
    1.4, the range N4 is usually asked to correct at 1.5-3 T.  With ``pattern_seed=None``
    every image gets its own field (the same ``random_state`` gives the same pattern at
    every strength); with an integer every image gets the same field, as from one
    scanner's coil.

    Parameters
    ----------
    strength : float, default 1.0
        In [0, 1].
    max_nonuniformity : float, default 0.4
        ``(largest field value) - 1`` at strength 1, in (0, 10].
    order : int, default 2
        Total degree of the polynomial, 1 to 5 (low: the field is smooth).
    pattern_seed : int, optional
        Seed of one field shared by every image; default a new field per image.
    value_range : tuple of two floats or None, default (-1.0, 1.0)
        See :class:`Artefact`.

    Notes
    -----
    The mask marks the pixels whose value changed (those with signal).

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit.artefacts import BiasField
    >>> flat = np.full((1, 16, 16), 0.5)
    >>> out, _ = BiasField(strength=1.0, value_range=(0, 1))(flat, random_state=0)
    >>> bool(0.5 / 1.4 - 1e-9 <= out.min() < out.max() <= 0.5 * 1.4 + 1e-9)
    True
    """

    max_nonuniformity: float = 0.4
    order: int = 2
    pattern_seed: int | None = None

    name = "bias_field"
    family = "intensity"

    def _check(self) -> None:
        check_range("max_nonuniformity", self.max_nonuniformity, 0.0, 10.0, low_open=True)
        if isinstance(self.order, bool) or self.order not in range(1, 6):
            raise ConfigError(f"order must be an integer from 1 to 5, got {self.order!r}")
        check_seed("pattern_seed", self.pattern_seed)

    def _apply(self, signal, rng, support):
        own = rng if self.pattern_seed is None else np.random.default_rng(self.pattern_seed)
        field = _smooth_field(signal.shape[1:], self.order, own)
        scale = self.strength * math.log1p(self.max_nonuniformity)
        return signal * np.exp(scale * field)[None], None


def _smooth_field(shape: tuple[int, ...], order: int, rng: np.random.Generator) -> np.ndarray:
    """A random polynomial of total degree ``order`` over the grid, max |value| = 1."""
    from itertools import product

    from numpy.polynomial import legendre

    coordinates = [np.linspace(-1, 1, n) for n in shape]
    powers = [p for p in product(range(order + 1), repeat=len(shape))
              if 0 < sum(p) <= order]
    coefficients = rng.standard_normal(len(powers))
    field = np.zeros(shape)
    for weight, power in zip(coefficients, powers, strict=True):
        term = np.ones(shape)
        for axis, (degree, c) in enumerate(zip(power, coordinates, strict=True)):
            basis = legendre.legval(c, [0] * degree + [1])
            view = [1] * len(shape)
            view[axis] = len(c)
            term = term * basis.reshape(view)
        field += weight * term
    peak = np.abs(field).max()
    return field / peak if peak > 0 else field
