"""Parametric imaging artefacts for positive controls, 2-D and 3-D, NumPy/SciPy only.

Every artefact is a small frozen dataclass; ``strength`` in [0, 1] sets its size through one
physical quantity named in its docstring, and calling it returns the changed image and a
mask of where it acted::

    image, mask = BiasField(strength=0.3)(image, random_state=0)

Strength 0 returns the image unchanged, bit for bit.  Images are channel-first, ``(C, H, W)``
or ``(C, D, H, W)``, or batches of them (``spatial_dims=`` tells a batch of 2-D images from
one volume); intensities are read in signal units through ``value_range`` (latentaudit's
[-1, 1] by default: -1 is no signal).  :func:`latentaudit.sensitivity` plants them in a
hidden group of a user's own images to measure how weak an artefact an audit still finds.

==============  ==================================================================
family          artefacts (``name``): physical quantity set by ``strength``
==============  ==================================================================
geometry        :class:`FieldOfViewShift` (``fov_shift``): shift, % of the field of view;
                :class:`Tilt` (``tilt``): rotation, degrees
objects         :class:`HeadRest` (``head_rest``), :class:`Bar` (``bar``): visibility;
                :class:`BurnedInText` (``burned_in_text``): contrast
intensity       :class:`Gain` (``gain``): dB; :class:`ContrastCurve` (``contrast_curve``):
                gamma; :class:`BiasField` (``bias_field``): non-uniformity
noise           :class:`RicianNoise` (``rician_noise``): SNR in dB;
                :class:`Spikes` (``spikes``): stripe amplitude
resolution      :class:`Blur` (``blur``): FWHM in pixels;
                :class:`Downsampling` (``downsampling``): resolution loss factor
acquisition     :class:`Ghosting` (``ghosting``): ghost-to-object ratio;
                :class:`WrapAround` (``wrap_around``): field-of-view reduction
==============  ==================================================================

The demo cohort's site artefacts are two of them: site B is ``FieldOfViewShift(strength=
0.78125)`` (50 of 256 pixels; the renderer moves the field of view itself, so what comes
into view is anatomy) and site C a :class:`HeadRest`.

Examples
--------
>>> import numpy as np
>>> from latentaudit import artefacts
>>> image = -np.ones((1, 32, 32), dtype=np.float32); image[0, 8:24, 10:22] = 0.6
>>> for strength in (0.0, 0.5, 1.0):
...     out, mask = artefacts.Ghosting(strength=strength)(image)
...     print(strength, round(float(np.abs(out - image).mean()), 3), int(mask.sum()))
0.0 0.0 0
0.5 0.048 384
1.0 0.104 384
>>> sorted(artefacts.ARTEFACTS)[:3]
['bar', 'bias_field', 'blur']
>>> artefacts.get_artefact("tilt", strength=0.2)
Tilt(strength=0.2, value_range=(-1.0, 1.0), max_angle=15.0, direction=1, axes=(-2, -1))
"""

from __future__ import annotations

from ._acquisition import Ghosting, WrapAround
from ._base import Artefact, estimate_support
from ._geometry import FieldOfViewShift, Tilt, moved_region
from ._intensity import BiasField, ContrastCurve, Gain
from ._noise import RicianNoise, Spikes
from ._objects import Bar, BurnedInText, HeadRest, cushion
from ._resolution import Blur, Downsampling

#: Every artefact class by its ``name``, in family order.
ARTEFACTS: dict[str, type[Artefact]] = {
    cls.name: cls
    for cls in (FieldOfViewShift, Tilt, HeadRest, Bar, BurnedInText, Gain, ContrastCurve,
                BiasField, RicianNoise, Spikes, Blur, Downsampling, Ghosting, WrapAround)
}


def get_artefact(name: str, **params) -> Artefact:
    """Build an artefact from its name (as in tables and on the command line).

    Parameters
    ----------
    name : str
        One of :data:`ARTEFACTS` (e.g. ``"bias_field"``); a close misspelling gets a
        suggestion.
    **params
        Parameters of the artefact, e.g. ``strength=0.5``.

    Returns
    -------
    Artefact

    Raises
    ------
    ValueError
        (as :class:`~latentaudit.errors.ConfigError`) for an unknown name or parameter.

    Examples
    --------
    >>> from latentaudit.artefacts import get_artefact
    >>> get_artefact("blur", strength=0.5, max_fwhm=2.0)
    Blur(strength=0.5, value_range=(-1.0, 1.0), max_fwhm=2.0, axes=None)
    """
    from ..errors import ConfigError
    from ..utils import check_option

    if not isinstance(name, str):
        raise ConfigError(f"artefact name must be a string, got {type(name).__name__}")
    cls = ARTEFACTS[check_option("artefact", name, ARTEFACTS)]
    try:
        return cls(**params)
    except TypeError as err:
        raise ConfigError(f"{cls.__name__}: {err}") from None


__all__ = [
    "ARTEFACTS",
    "Artefact",
    "Bar",
    "BiasField",
    "Blur",
    "BurnedInText",
    "ContrastCurve",
    "Downsampling",
    "FieldOfViewShift",
    "Gain",
    "Ghosting",
    "HeadRest",
    "RicianNoise",
    "Spikes",
    "Tilt",
    "WrapAround",
    "cushion",
    "estimate_support",
    "get_artefact",
    "moved_region",
]
