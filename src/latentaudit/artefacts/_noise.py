"""Noise: a different noise level, spikes in k-space."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import ConfigError
from ._base import Artefact, check_range, check_seed

__all__ = ["RicianNoise", "Spikes"]


def mean_object_signal(signal: np.ndarray, support: np.ndarray) -> float:
    """Mean signal over the object's support (the whole image if it has none)."""
    values = signal[:, support] if support.any() else signal
    mean = float(values.mean())
    return mean if mean > 0 else 1.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class RicianNoise(Artefact):
    """More noise: complex Gaussian noise added to the magnitude image (Rician statistics).

    Each pixel becomes ``sqrt((s + sigma * n1) ** 2 + (sigma * n2) ** 2)`` with ``n1, n2``
    standard normal, as in a magnitude MR image whose noise grew (fewer averages, a weaker
    coil, a faster sequence).  Physical quantity: the signal-to-noise ratio of the added
    noise, ``S / sigma``, where ``S`` is the mean signal over the object: at strength 1 it
    is ``snr_db`` (15 dB by default: sigma = 18% of ``S``), and ``snr_db - 20 * log10
    (strength)`` dB below (strength 0.1: 35 dB).  The same ``random_state`` draws the same
    noise at every strength.

    Parameters
    ----------
    strength : float, default 1.0
        In [0, 1].
    snr_db : float, default 15.0
        SNR of the added noise at strength 1, in dB (20 log10 of the amplitude ratio),
        within -20 to 80.
    value_range : tuple of two floats or None, default (-1.0, 1.0)
        See :class:`Artefact`.

    Notes
    -----
    The mask marks the pixels whose value changed (all of them, in practice).

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit.artefacts import RicianNoise
    >>> image = np.zeros((1, 64, 64)); image[0, 16:48, 16:48] = 0.5
    >>> out, mask = RicianNoise(strength=1.0, value_range=(0, 1))(image, random_state=0)
    >>> round(float(out[0, 20:44, 20:44].std()), 2), bool(mask.all())
    (0.09, True)
    """

    snr_db: float = 15.0

    name = "rician_noise"
    family = "noise"

    def _check(self) -> None:
        check_range("snr_db", self.snr_db, -20.0, 80.0)

    def _apply(self, signal, rng, support):
        real = rng.standard_normal(signal.shape)
        imaginary = rng.standard_normal(signal.shape)
        sigma = self.strength * mean_object_signal(signal, support) * 10 ** (-self.snr_db / 20)
        return np.sqrt((signal + sigma * real) ** 2 + (sigma * imaginary) ** 2), None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Spikes(Artefact):
    """Spike noise: single corrupted k-space samples, seen as stripes across the image
    (the "herringbone" or "corduroy" artefact of an electrostatic discharge in the room).

    A spike of height ``h`` at k-space position ``k`` adds the plane wave
    ``(h / N) exp(i (2 pi k.x / N + phase))`` to the complex image; the result is shown as
    a magnitude image.  Physical quantity: the stripes' amplitude ``h / N`` relative to the
    mean signal over the object: ``strength * max_amplitude`` (strength 1 = 30% by
    default).  Each image gets ``n_spikes`` spikes at random positions away from the centre
    of k-space (more than 15% of the bandwidth out along at least one axis) with random
    phases; the same ``random_state`` gives the same spikes at every strength.  With
    ``pattern_seed`` the positions are the same for every image (one source of
    interference at one scanner) and only the phases vary.

    Parameters
    ----------
    strength : float, default 1.0
        In [0, 1].
    max_amplitude : float, default 0.3
        Stripe amplitude at strength 1, relative to the mean object signal, in (0, 10].
    n_spikes : int, default 1
        Spikes per image, 1 to 16.
    pattern_seed : int, optional
        Seed of spike positions shared by every image; default new positions per image.
    value_range : tuple of two floats or None, default (-1.0, 1.0)
        See :class:`Artefact`.

    Notes
    -----
    The mask marks the pixels whose value changed (all of them: the stripes cover the
    image).

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit.artefacts import Spikes
    >>> image = np.zeros((1, 32, 32)); image[0, 8:24, 8:24] = 0.5
    >>> out, _ = Spikes(strength=1.0, value_range=(0, 1))(image, random_state=0)
    >>> round(float(np.abs(out - image)[0, :4, :4].max()), 2)   # stripes in the background
    0.15
    """

    max_amplitude: float = 0.3
    n_spikes: int = 1
    pattern_seed: int | None = None

    name = "spikes"
    family = "noise"

    def _check(self) -> None:
        check_range("max_amplitude", self.max_amplitude, 0.0, 10.0, low_open=True)
        if isinstance(self.n_spikes, bool) or self.n_spikes not in range(1, 17):
            raise ConfigError(f"n_spikes must be an integer from 1 to 16, got "
                              f"{self.n_spikes!r}")
        check_seed("pattern_seed", self.pattern_seed)

    def _apply(self, signal, rng, support):
        spatial = signal.shape[1:]
        grid = np.indices(spatial, dtype=np.float64)
        amplitude = self.strength * self.max_amplitude * mean_object_signal(signal, support)
        wave = np.zeros(spatial, dtype=np.complex128)
        where = rng if self.pattern_seed is None else np.random.default_rng(self.pattern_seed)
        for _ in range(self.n_spikes):
            frequency = _spike_position(spatial, where)
            phase = rng.uniform(0, 2 * np.pi)
            argument = sum(f * g for f, g in zip(frequency, grid, strict=True))
            wave += np.exp(1j * (2 * np.pi * argument + phase))
        return np.abs(signal + amplitude * wave[None]), None


def _spike_position(spatial: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A k-space position (cycles per pixel) outside the central 15% band."""
    while True:
        frequency = np.array([rng.integers(-(n // 2), (n + 1) // 2) / n for n in spatial])
        if np.abs(frequency).max() > 0.15:
            return frequency
