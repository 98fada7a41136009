"""Delineations drawn on a report's map: the file format and the identity of a map.

The interactive map of an audit report exports the groups drawn on it as a small JSON file:
the polygons in map coordinates, the ids they selected, and the fingerprints of the map and
of the embeddings it was made from (:func:`map_identity`).  :class:`Delineation` reads it
and refuses to label any other map or embeddings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import DataError, InputShapeError, InputTypeError
from ._delineate import _as_points, _as_polygons, _check_label, _label_by_groups

__all__ = ["DELINEATION_FORMAT", "Delineation", "embeddings_fingerprint", "ids_fingerprint",
           "map_fingerprint", "map_identity"]

#: The ``format`` field of a delineation file.
DELINEATION_FORMAT = "latentaudit.delineation"
_DELINEATION_VERSION = 1
_FINGERPRINT_LENGTH = 16  # hex digits: 64 bits tell maps apart, not adversaries


# --------------------------------------------------------------------------------------
def _digest(kind: str):
    return hashlib.sha256(f"latentaudit.{kind}\0".encode())


def map_fingerprint(xy) -> str:
    """The fingerprint of a 2-D map: a hash of its coordinates as float32, in row order.

    Parameters
    ----------
    xy : array-like of shape (n_points, 2)
        The map.

    Returns
    -------
    str
        16 hexadecimal digits.

    Examples
    --------
    >>> map_fingerprint([[0.0, 1.0], [2.0, 3.0]]) == map_fingerprint([[0, 1], [2, 3]])
    True
    """
    points = np.ascontiguousarray(_as_points(xy), dtype="<f4")
    digest = _digest("map")
    digest.update(points.tobytes())
    return digest.hexdigest()[:_FINGERPRINT_LENGTH]


def ids_fingerprint(ids) -> str:
    """The fingerprint of a set of subjects: a hash of their sorted ids.

    It does not depend on the order of the rows, so a folder of images that holds the
    same subjects in another order has the same fingerprint.

    Parameters
    ----------
    ids : sequence
        Subject ids (converted to str).

    Returns
    -------
    str
        16 hexadecimal digits.

    Examples
    --------
    >>> ids_fingerprint(["b", "a"]) == ids_fingerprint(["a", "b"])
    True
    """
    digest = _digest("ids")
    digest.update("\n".join(sorted(str(i) for i in ids)).encode("utf-8"))
    return digest.hexdigest()[:_FINGERPRINT_LENGTH]


def embeddings_fingerprint(z, *, chunk_rows: int = 8192) -> str:
    """The fingerprint of embeddings: a hash of their float32 values, in row order.

    Parameters
    ----------
    z : array-like of shape (n_rows, latent_dim)
        The embeddings (a memory-map is read in chunks).
    chunk_rows : int, default 8192
        Rows hashed at a time.

    Returns
    -------
    str
        16 hexadecimal digits.

    Examples
    --------
    >>> import numpy as np
    >>> len(embeddings_fingerprint(np.zeros((3, 4), dtype="float32")))
    16
    """
    if not hasattr(z, "shape"):
        z = np.asarray(z, dtype=np.float32)
    if len(z.shape) != 2:
        raise InputShapeError(f"embeddings must have shape (n_rows, latent_dim), got "
                              f"{tuple(z.shape)}")
    digest = _digest("embeddings")
    digest.update(np.asarray(z.shape, dtype="<i8").tobytes())
    for start in range(0, z.shape[0], chunk_rows):
        block = np.ascontiguousarray(np.asarray(z[start:start + chunk_rows]), dtype="<f4")
        digest.update(block.tobytes())
    return digest.hexdigest()[:_FINGERPRINT_LENGTH]


@dataclasses.dataclass(frozen=True, eq=False)
class Delineation:
    """Groups drawn on a 2-D map, the subjects they selected, and the map they were drawn on.

    Usually read from the JSON file exported by the interactive map of an audit report
    (:meth:`read`), then turned into labels by :func:`delineate` (from the map) or
    :meth:`labels` (from the subjects' ids) for ``latentaudit audit --delineation`` /
    ``latentaudit explain --delineation``, a :class:`~latentaudit.audit.ClusterAuditor`
    or the Explainer.  Every use is first checked against the fingerprints: a delineation
    is refused on another map or other embeddings.

    Parameters
    ----------
    polygons : dict of int to list of numpy.ndarray
        Each group's polygons in map coordinates (a group may be drawn as several shapes).
        Groups are in drawing order; where they overlap, the first wins.
    selected : dict of int to tuple of str
        The ids of the subjects inside each group, as the map selected them.
    outside : int, default -1
        The label of subjects in no group: ``-1`` leaves them out of the comparison;
        another label makes "the rest" a group of its own.
    map_fingerprint : str, optional
        :func:`map_fingerprint` of the map it was drawn on.
    ids_fingerprint : str, optional
        :func:`ids_fingerprint` of the map's subjects.
    embeddings_fingerprint : str, optional
        :func:`embeddings_fingerprint` of the embeddings the map was made from.
    n_points : int, optional
        Points on the map.
    provenance : dict, optional
        What else is known: the projection method, the report's title and date, when the
        groups were drawn.

    Examples
    --------
    >>> drawn = Delineation.draw([[0, 0], [5, 5], [6, 5]], ["a", "b", "c"],
    ...                          {1: [[4, 4], [7, 4], [7, 6], [4, 6]]})
    >>> drawn.selected
    {1: ('b', 'c')}
    >>> drawn.labels(["c", "b", "a"]).tolist()
    [1, 1, -1]
    """

    polygons: dict
    selected: dict = dataclasses.field(default_factory=dict)
    outside: int = -1
    map_fingerprint: str | None = None
    ids_fingerprint: str | None = None
    embeddings_fingerprint: str | None = None
    n_points: int | None = None
    provenance: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        outside = self.outside
        if isinstance(outside, bool) or not isinstance(outside, (int, np.integer)):
            raise InputTypeError(f"outside must be an integer label, got {outside!r}")
        if not isinstance(self.polygons, Mapping) or not self.polygons:
            raise InputTypeError("polygons must be a non-empty mapping of int labels to "
                                 "polygons")
        polygons = {_check_label(label, outside): _as_polygons(value, f"group {label!r}")
                    for label, value in self.polygons.items()}
        selected = {}
        for label, ids in dict(self.selected).items():
            if int(label) not in polygons:
                raise DataError(f"the selection names group {label!r}, which has no polygon "
                                f"(groups: {sorted(polygons)})")
            selected[int(label)] = tuple(str(i) for i in ids)
        object.__setattr__(self, "polygons", polygons)
        object.__setattr__(self, "selected", selected)
        object.__setattr__(self, "outside", int(outside))

    def __repr__(self) -> str:
        sizes = ", ".join(f"{label}: {len(self.selected.get(label, ()))} subjects"
                          for label in self.polygons)
        return (f"Delineation({sizes}; outside -> {self.outside}; map "
                f"{self.map_fingerprint or 'unknown'})")

    # -- making and storing ------------------------------------------------------------
    @classmethod
    def draw(cls, xy, ids, polygons, *, outside: int = -1, z=None,
             provenance: Mapping | None = None) -> Delineation:
        """A delineation of a map from polygons, as the report's map makes one.

        Parameters
        ----------
        xy : array-like of shape (n_points, 2)
            The map.
        ids : sequence of str
            The subject of every point.
        polygons : mapping of int to polygon(s)
            Each group's polygon, or list of polygons, in map coordinates.
        outside : int, default -1
            The label of subjects in no group.
        z : array-like, optional
            The embeddings the map was made from (their fingerprint is recorded).
        provenance : mapping, optional
            Recorded as given.

        Returns
        -------
        Delineation
        """
        points = _as_points(xy)
        ids = [str(i) for i in ids]
        if len(ids) != len(points):
            raise DataError(f"got {len(ids)} ids for {len(points)} points")
        identity = map_identity(points, ids, z=z)
        drawn = cls(polygons=dict(polygons), outside=outside, **_identity_fields(identity),
                    provenance={**identity["map"], **dict(provenance or {})})
        labels = _label_by_groups(points, drawn.polygons.items(), drawn.outside)
        selected = {label: tuple(np.asarray(ids, dtype=object)[labels == label])
                    for label in drawn.polygons}
        return dataclasses.replace(drawn, selected=selected)

    @classmethod
    def from_dict(cls, record: Mapping, *, source: str = "the delineation") -> Delineation:
        """Read the JSON document of a delineation file (see :meth:`to_dict`).

        Raises
        ------
        ValueError
            (as :class:`~latentaudit.errors.DataError`) when it is not a delineation of a
            known version, or lacks the fingerprints of its map.
        """
        if not isinstance(record, Mapping) or record.get("format") != DELINEATION_FORMAT:
            found = record.get("format") if isinstance(record, Mapping) else type(
                record).__name__
            raise DataError(f"{source} is not a latentaudit delineation (expected format "
                            f"{DELINEATION_FORMAT!r}, got {found!r}); export one from the "
                            f"map of an audit report")
        version = record.get("version")
        if version != _DELINEATION_VERSION:
            raise DataError(f"{source} has version {version!r}; this latentaudit reads "
                            f"version {_DELINEATION_VERSION}")
        try:
            drawn_map, embeddings = dict(record["map"]), dict(record["embeddings"])
            groups = list(record["groups"])
            polygons = {int(g["label"]): g["polygons"] for g in groups}
            selected = {int(g["label"]): g["ids"] for g in groups if g.get("ids") is not None}
            fingerprints = (drawn_map["fingerprint"], embeddings["ids_fingerprint"])
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"{source} is incomplete or malformed ({type(err).__name__}: "
                            f"{err}); export it again from the report's map") from err
        if not all(isinstance(f, str) and f for f in fingerprints):
            raise DataError(f"{source} does not record the fingerprints of the map it was "
                            f"drawn on; export it again from the report's map")
        if len(set(polygons)) != len(groups):
            raise DataError(f"{source} lists a group label twice")
        try:
            return cls(polygons=polygons, selected=selected,
                       outside=int(record.get("outside", -1)),
                       map_fingerprint=drawn_map["fingerprint"],
                       ids_fingerprint=embeddings["ids_fingerprint"],
                       embeddings_fingerprint=embeddings.get("fingerprint"),
                       n_points=drawn_map.get("n_points"),
                       provenance={k: v for k, v in {**drawn_map, **dict(
                           record.get("source") or {})}.items() if k != "fingerprint"})
        except (InputShapeError, InputTypeError) as err:
            raise DataError(f"{source}: {err}") from err

    @classmethod
    def read(cls, path: str | os.PathLike) -> Delineation:
        """Read a delineation file (JSON) exported from a report's map.

        Raises
        ------
        ValueError
            (as :class:`~latentaudit.errors.DataError`) for a missing or unreadable file,
            or one that is not a delineation.
        """
        path = Path(path)
        if not path.is_file():
            raise DataError(f"delineation file {str(path)!r} does not exist")
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DataError(f"delineation file {path.name!r} is not valid JSON: {err}") from err
        return cls.from_dict(record, source=f"delineation file {path.name!r}")

    def to_dict(self) -> dict:
        """The JSON document of the delineation (what the report's map exports).

        Returns
        -------
        dict
            ``format``, ``version``, ``map`` (``fingerprint``, ``n_points`` and the
            projection's provenance), ``embeddings`` (``ids_fingerprint``,
            ``fingerprint``), ``outside``, ``groups`` (``label``, ``polygons``, ``ids``,
            ``n``) and ``source``.
        """
        map_keys = ("method", "n_points")
        provenance = dict(self.provenance)
        return {
            "format": DELINEATION_FORMAT, "version": _DELINEATION_VERSION,
            "map": {"fingerprint": self.map_fingerprint, "n_points": self.n_points,
                    **{k: provenance.pop(k) for k in map_keys if k in provenance}},
            "embeddings": {"ids_fingerprint": self.ids_fingerprint,
                           "fingerprint": self.embeddings_fingerprint},
            "outside": self.outside,
            "groups": [{"label": label,
                        "polygons": [p.tolist() for p in polygons],
                        "ids": (list(self.selected[label]) if label in self.selected
                                else None),
                        "n": len(self.selected.get(label, ()))}
                       for label, polygons in self.polygons.items()],
            "source": provenance,
        }

    def write(self, path: str | os.PathLike) -> Path:
        """Write the delineation as a JSON file.

        Returns
        -------
        pathlib.Path
        """
        path = Path(path)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")
        os.replace(partial, path)
        return path

    # -- checks and labels ------------------------------------------------------------
    def check(self, *, xy=None, ids=None, z=None) -> Delineation:
        """Raise unless the map, subjects and embeddings given are those it was drawn on.

        Fingerprints the delineation does not record are not checked.

        Parameters
        ----------
        xy : array-like of shape (n_points, 2), optional
            A map.
        ids : sequence of str, optional
            Subject ids (in any order).
        z : array-like of shape (n_rows, latent_dim), optional
            Embeddings, rows in the order the map was made from them.

        Returns
        -------
        Delineation
            ``self``.

        Raises
        ------
        ValueError
            (as :class:`~latentaudit.errors.DataError`) naming what differs.
        """
        if xy is not None and self.map_fingerprint is not None:
            points = _as_points(xy)
            found = map_fingerprint(points)
            if found != self.map_fingerprint:
                raise DataError(
                    f"this delineation was drawn on another map: {self._drawn_on()} (map "
                    f"fingerprint {self.map_fingerprint}), but the map given has "
                    f"{len(points)} points (fingerprint {found}); use the map_x/map_y of "
                    f"the report it was drawn on, or draw it again on this map")
        if ids is not None and self.ids_fingerprint is not None:
            ids = [str(i) for i in ids]
            found = ids_fingerprint(ids)
            if found != self.ids_fingerprint:
                known = set(ids)
                absent = [i for group in self.selected.values() for i in group
                          if i not in known]
                detail = (f"; {len(absent)} of its selected subjects are not among them, "
                          f"e.g. {', '.join(repr(a) for a in absent[:3])}" if absent else "")
                raise DataError(
                    f"this delineation was drawn on other subjects: {self._drawn_on()} "
                    f"(ids fingerprint {self.ids_fingerprint}), but {len(ids)} subjects "
                    f"were given (fingerprint {found}){detail}; use the embeddings or "
                    f"subjects table of the report it was drawn on")
        if z is not None and self.embeddings_fingerprint is not None:
            found = embeddings_fingerprint(z)
            if found != self.embeddings_fingerprint:
                raise DataError(
                    f"this delineation was drawn on the map of other embeddings "
                    f"(fingerprint {self.embeddings_fingerprint}) than those given "
                    f"(fingerprint {found}); use the embeddings the report was made from")
        return self

    def _drawn_on(self) -> str:
        method = self.provenance.get("method")
        title = self.provenance.get("report")
        what = f"a {method} map" if method else "a map"
        size = f" of {self.n_points} points" if self.n_points is not None else ""
        origin = f" in the report {title!r}" if title else ""
        return f"{what}{size}{origin}"

    def labels(self, ids, *, z=None) -> np.ndarray:
        """One label per subject, from the ids the drawing selected.

        Parameters
        ----------
        ids : sequence of str
            The subjects to label, in any order; they must be the map's subjects.
        z : array-like, optional
            Their embeddings, in the order of ``ids``, checked against the recorded
            fingerprint.

        Returns
        -------
        numpy.ndarray of int64
            The group of each subject; :attr:`outside` for those in none.

        Raises
        ------
        ValueError
            (as :class:`~latentaudit.errors.DataError`) for other subjects or embeddings
            than those it was drawn on, or a delineation that recorded no selection.
        """
        ids = [str(i) for i in ids]
        self.check(ids=ids, z=z)
        missing = [label for label in self.polygons if label not in self.selected]
        if missing:
            raise DataError(f"this delineation records no selected ids for group(s) "
                            f"{missing}; label the map's points with delineate(xy, ...)")
        group_of = {}
        for label in self.polygons:
            for subject in self.selected[label]:
                group_of.setdefault(subject, label)  # the first group wins, as on the map
        return np.array([group_of.get(i, self.outside) for i in ids], dtype=np.int64)

    def check_selection(self, labels, ids=None, *, outside: int | None = None) -> None:
        """Raise unless labels made from the polygons select what the map selected.

        Parameters
        ----------
        labels : array-like of int
            Labels of the map's points from the polygons.
        ids : sequence of str, optional
            The points' ids; without them only the group sizes are compared.
        outside : int, optional
            The label ``labels`` gives points in no group (default :attr:`outside`).
        """
        if not self.selected:
            return
        labels = np.asarray(labels)
        outside = self.outside if outside is None else int(outside)
        if ids is not None:
            expected = self.labels(ids)
            expected = np.where(expected == self.outside, outside, expected)
            differ = int(np.sum(expected != labels))
        else:
            differ = sum(abs(int(np.sum(labels == label)) - len(self.selected.get(label, ())))
                         for label in self.polygons)
        if differ:
            raise DataError(f"the polygons select {differ} subject(s) differently on this map "
                            f"than when they were drawn; the delineation file was edited or "
                            f"belongs to another map")


def map_identity(xy, ids, *, z=None, method: str | None = None) -> dict:
    """What a map records so that a delineation drawn on it can be checked later.

    Parameters
    ----------
    xy : array-like of shape (n_points, 2)
        The map.
    ids : sequence of str
        The subject of every point.
    z : array-like, optional
        The embeddings the map was made from.
    method : str, optional
        The projection ("tsne", "pca", "umap").

    Returns
    -------
    dict
        ``{"map": {"fingerprint", "n_points", "method"}, "embeddings":
        {"ids_fingerprint", "fingerprint", "n_rows"}}``, the two entries of a
        delineation file that identify its map.

    Examples
    --------
    >>> sorted(map_identity([[0, 0], [1, 1]], ["a", "b"])["map"])
    ['fingerprint', 'method', 'n_points']
    """
    points = _as_points(xy)
    ids = [str(i) for i in ids]
    if len(ids) != len(points):
        raise DataError(f"got {len(ids)} ids for {len(points)} points")
    return {"map": {"fingerprint": map_fingerprint(points), "n_points": int(len(points)),
                    "method": method},
            "embeddings": {"ids_fingerprint": ids_fingerprint(ids),
                           "fingerprint": None if z is None else embeddings_fingerprint(z),
                           "n_rows": int(len(ids))}}


def _identity_fields(identity: Mapping) -> dict:
    return {"map_fingerprint": identity["map"]["fingerprint"],
            "ids_fingerprint": identity["embeddings"]["ids_fingerprint"],
            "embeddings_fingerprint": identity["embeddings"]["fingerprint"],
            "n_points": identity["map"]["n_points"]}
