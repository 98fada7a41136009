"""The whole audit in one call: embeddings (plus, optionally, their images and a generative
encoder) in, an :class:`~latentaudit.report.AuditReport` out.

:func:`run_audit` ties the layers together the way the paper uses them: project the
embeddings and colour the map by every metadata column; cluster and test the clusters
against the metadata (:class:`~latentaudit.audit.ClusterAuditor`); probe the columns;
list the subjects whose labels disagree with their neighbours; and, with images, show
what sets the unexpected clusters apart (mean and difference images, a classifier's
Grad-CAM maps, decoded counterfactuals).  :func:`run_explain` does the last part for a
delineation made elsewhere.  Every step that cannot run on what was given, or fails, is
reported as such in its section, never filled with something else.
"""

from __future__ import annotations

import copy
import logging
import math
import numbers
import platform
import time
import traceback
from collections.abc import Mapping
from importlib import metadata as importlib_metadata

import numpy as np
import pandas as pd

from .errors import ConfigError, DataError, InputShapeError, InputTypeError, LatentAuditError
from .options import AUDIT_SECTIONS, OPTIONS
from .report._report import AuditReport, ReportFigure, ReportSection, ReportTable
from .utils import check_option

__all__ = ["AUDIT_DEFAULTS", "check_audit_options", "check_metadata", "merge_options",
           "run_audit", "run_explain"]

logger = logging.getLogger(__name__)

#: Options of :func:`run_audit` and :func:`run_explain`, by section, with their defaults.
#: ``None`` means "decided from the data" (see :func:`run_audit`).  Their types and ranges
#: are those of :data:`latentaudit.options.OPTIONS`, which checks them.
AUDIT_DEFAULTS: dict = OPTIONS.defaults(AUDIT_SECTIONS)

_NOISE = -1
_MISSING_MARKERS_HINT = "leave missing values empty"


# --------------------------------------------------------------------------------------
# options
# --------------------------------------------------------------------------------------
def merge_options(defaults: Mapping, *overrides: Mapping | None, where: str = "") -> dict:
    """Merge nested option dictionaries; later ones win.  Unknown keys are errors.

    Parameters
    ----------
    defaults : mapping
        Every allowed key with its default; a nested mapping is a section.
    *overrides : mapping or None
        Options to apply in order.
    where : str
        Prefix of key names in messages (e.g. ``"audit."``).

    Returns
    -------
    dict
        A new nested dictionary.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.ConfigError`) for an unknown key (with the
        closest known one), or a section given a plain value.

    Examples
    --------
    >>> merge_options({"audit": {"method": "hdbscan"}}, {"audit": {"method": "kmeans"}})
    {'audit': {'method': 'kmeans'}}
    """
    result = copy.deepcopy(dict(defaults))
    for override in overrides:
        if not override:
            continue
        if not isinstance(override, Mapping):
            raise ConfigError(f"options{' of ' + where.rstrip('.') if where else ''} must be a "
                              f"table (mapping), got {type(override).__name__}")
        for key, value in override.items():
            check_option(f"option '{where}{key}' (known options)", key, list(result))
            if isinstance(result[key], Mapping):
                if not isinstance(value, Mapping):
                    raise ConfigError(f"'{where}{key}' is a section of options (a TOML table), "
                                      f"got the value {value!r}")
                result[key] = merge_options(result[key], value, where=f"{where}{key}.")
            else:
                result[key] = copy.deepcopy(value)
    return result


def check_audit_options(options: Mapping | None, metadata: pd.DataFrame | None = None) -> dict:
    """Merge audit options into :data:`AUDIT_DEFAULTS` and check them against the metadata.

    Run it before anything slow, so a misspelt column ends the run at once.

    Parameters
    ----------
    options : mapping or None
        Options by section (see :func:`run_audit`).
    metadata : pandas.DataFrame, optional
        The table the audit will see; the column names in the options must be among its
        columns.

    Returns
    -------
    dict
        The merged options.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.ConfigError`) for an unknown option, method or
        column, suggesting the closest one, or a value of the wrong type or out of range
        (checked by :data:`latentaudit.options.OPTIONS`).

    Examples
    --------
    >>> import pandas as pd
    >>> opts = check_audit_options({"audit": {"nuisance": ["site"]}},
    ...                            pd.DataFrame({"site": ["A", "B"]}))
    >>> opts["audit"]["nuisance"]
    ['site']
    """
    opts = OPTIONS.merge(options, sections=AUDIT_SECTIONS)
    if metadata is not None:
        known = [str(c) for c in metadata.columns]
        for section, key in (("audit", "columns"), ("audit", "expected"),
                             ("audit", "nuisance"), ("audit", "within"),
                             ("probes", "columns"), ("label_issues", "columns")):
            names = opts[section][key]
            if names is None:
                continue
            if isinstance(names, str):
                names = [names]
            if not isinstance(names, (list, tuple)):
                raise ConfigError(f"{section}.{key} must be a column name or a list of them, "
                                  f"got {names!r}")
            for name in names:
                check_option(f"{section}.{key} (a metadata column)", name, known)
    return opts


# --------------------------------------------------------------------------------------
# metadata checks
# --------------------------------------------------------------------------------------
def _value_kind(value) -> str | None:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, numbers.Number):
        return None if isinstance(value, float) and math.isnan(value) else "number"
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            float(text)
        except ValueError:
            return "text"
        return "number"
    return "text"


def check_metadata(metadata: pd.DataFrame, *, id_column: str | None = None,
                   source: str = "the metadata table") -> pd.DataFrame:
    """Reject metadata columns that mix numbers and text.

    A column such as ``age`` holding ``52``, ``61.5`` and ``"n/a"`` is read as text, so it
    would be tested as a category with one level per age.  This check names the column
    and the offending values instead.

    Parameters
    ----------
    metadata : pandas.DataFrame
        The table.
    id_column : str, optional
        The id column, which may mix anything.
    source : str
        What the table is, for messages (e.g. the CSV file's name).

    Returns
    -------
    pandas.DataFrame
        ``metadata`` unchanged.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.DataError`) naming the first mixed column, how
        many values of each kind it holds, examples and the rows they are in.

    Examples
    --------
    >>> import pandas as pd
    >>> check_metadata(pd.DataFrame({"age": [50, 61]})).shape
    (2, 1)
    """
    if not isinstance(metadata, pd.DataFrame):
        raise InputTypeError(f"metadata must be a pandas DataFrame, got "
                             f"{type(metadata).__name__}")
    for column in metadata.columns:
        if column == id_column:
            continue
        values = metadata[column]
        if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
            continue  # numbers, booleans, dates and categories are one kind each
        kinds = values.astype(object).map(_value_kind)
        counts = kinds.value_counts()
        if counts.get("number", 0) and counts.get("text", 0):
            minority = "text" if counts["text"] <= counts["number"] else "number"
            rows = np.flatnonzero((kinds == minority).to_numpy())
            examples = pd.unique(values.iloc[rows].astype(str))[:3]
            if id_column is not None and id_column in metadata.columns:
                where = "subjects " + ", ".join(
                    repr(str(v)) for v in metadata[id_column].iloc[rows[:3]])
            else:
                where = "rows " + ", ".join(str(int(r) + 1) for r in rows[:3])
            more = f" and {len(rows) - 3} more" if len(rows) > 3 else ""
            shown = ", ".join(repr(str(e)) for e in examples)
            if minority == "text":
                fix = (f"make it all numbers ({_MISSING_MARKERS_HINT} instead of writing "
                       f"{shown})")
            else:
                fix = "make it all text (or all numbers)"
            raise DataError(
                f"column {str(column)!r} of {source} mixes numbers and text: "
                f"{int(counts['number'])} numeric and {int(counts['text'])} text values, e.g. "
                f"{shown} at {where}{more}; {fix}")
    return metadata


def _is_categorical(values: pd.Series, max_levels: int = 10) -> bool:
    """Text, boolean and category columns, and numbers with at most ``max_levels`` values."""
    present = values.dropna()
    if present.nunique() < 2:
        return False
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return present.nunique() <= max_levels
    return present.nunique() < len(present)


def _id_column(metadata: pd.DataFrame, ids) -> str | None:
    """The metadata column that holds the row ids, if any."""
    ids = pd.Series([str(i) for i in ids])
    for column in metadata.columns:
        if len(metadata) and metadata[column].astype(str).reset_index(drop=True).equals(ids):
            return str(column)
    return None


# --------------------------------------------------------------------------------------
# steps
# --------------------------------------------------------------------------------------
class _Unavailable(Exception):
    """Raised inside a step whose inputs are missing; the message becomes the note."""


class _Step:
    """Times one section's step; an error marks the section instead of ending the run."""

    def __init__(self, section: ReportSection, timings: dict, strict: bool) -> None:
        self.section = section
        self.timings = timings
        self.strict = strict

    def __enter__(self) -> ReportSection:
        logger.info("%s ...", self.section.title)
        self.start = time.perf_counter()
        return self.section

    def __exit__(self, kind, error, tb) -> bool:
        seconds = time.perf_counter() - self.start
        # a section may be worked on in several steps (the map, then its clusters)
        total = (self.section.seconds or 0.0) + seconds
        self.section.seconds = round(total, 3)
        self.timings[self.section.key] = round(total, 3)
        if error is None:
            return False
        if isinstance(error, _Unavailable):
            self.section.mark("unavailable", str(error))
            logger.info("%s: unavailable (%s)", self.section.title, error)
            return True
        # a wrong option is the user's to fix, not a section to report as failed
        if not isinstance(error, Exception) or self.strict or isinstance(error, ConfigError):
            return False
        what = error if isinstance(error, LatentAuditError) else (
            f"{type(error).__name__}: {error}")
        self.section.mark("failed", f"This step failed: {what}")
        logger.warning("%s failed: %s", self.section.title, what)
        logger.debug("".join(traceback.format_exception(kind, error, tb)))
        return True


class _RowImages:
    """One image per embedding row, drawn from a dataset or an array (read lazily)."""

    def __init__(self, images, positions: np.ndarray, ids=None) -> None:
        self.images = images
        self.positions = np.asarray(positions, dtype=np.int64)
        self.ids = (np.array([str(i) for i in range(len(self.positions))], dtype=object)
                    if ids is None else np.asarray([str(i) for i in ids], dtype=object))
        self._array = images if isinstance(images, np.ndarray) else None

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> dict:
        import torch

        position = int(self.positions[int(i)])
        if self._array is not None:
            image = self._array[position]
        else:
            item = self.images[position]
            image = item["image"] if isinstance(item, Mapping) else item
        if hasattr(image, "detach"):
            image = image.detach().cpu().numpy()
        return {"image": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)),
                "index": int(i)}

    def get(self, rows) -> np.ndarray:
        return np.stack([self[int(r)]["image"].numpy() for r in rows])

    def names(self, rows) -> list[str]:
        """Short captions of rows: their ids."""
        return [str(self.ids[int(r)]) for r in rows]


def _row_images(images, ids) -> tuple[_RowImages | None, str]:
    """Match images to embedding rows: one per row, the middle slice of a subject's slices."""
    if images is None:
        return None, "no images were given"
    if isinstance(images, np.ndarray) or hasattr(images, "detach"):
        array = np.asarray(images.detach().cpu().numpy() if hasattr(images, "detach")
                           else images, dtype=np.float32)
        if array.ndim not in (4, 5):
            raise InputShapeError(f"images must be (N, C, H, W) or (N, C, D, H, W), got "
                                  f"shape {array.shape}")
        if len(array) != len(ids):
            raise DataError(f"got {len(array)} images for {len(ids)} embedding rows; give one "
                            f"image per row, or a dataset with subject ids")
        return _RowImages(array, np.arange(len(ids)), ids), ""
    dataset_ids = getattr(images, "ids", None)
    if dataset_ids is None:
        if len(images) != len(ids):
            raise DataError(f"the image dataset has {len(images)} items for {len(ids)} "
                            f"embedding rows, and no ids to match them by")
        return _RowImages(images, np.arange(len(ids)), ids), ""
    dataset_ids = np.asarray([str(i) for i in dataset_ids], dtype=object)
    slices = np.asarray(getattr(images, "slice_index", np.zeros(len(dataset_ids))))
    if len(dataset_ids) == len(ids) and np.array_equal(
            dataset_ids, np.asarray([str(i) for i in ids], dtype=object)):
        return _RowImages(images, np.arange(len(ids)), ids), ""
    frame = pd.DataFrame({"id": dataset_ids, "slice": slices,
                          "position": np.arange(len(dataset_ids))})
    chosen = {}
    for subject, group in frame.groupby("id", sort=False):
        ordered = group.sort_values("slice")
        chosen[subject] = int(ordered["position"].iloc[(len(ordered) - 1) // 2])
    missing = [i for i in ids if str(i) not in chosen]
    if missing:
        raise DataError(f"{len(missing)} embedding id(s) have no image, e.g. "
                        f"{', '.join(repr(str(m)) for m in missing[:3])}; give the images the "
                        f"embeddings were made from")
    note = ("one image per subject is shown: the middle of its slices"
            if len(dataset_ids) > len(ids) else "")
    return _RowImages(images, np.array([chosen[str(i)] for i in ids]), ids), note


def _versions() -> dict:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in ("latentaudit", "numpy", "scipy", "pandas", "scikit-learn", "torch",
                 "openTSNE", "matplotlib", "grad-cam", "nibabel"):
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = None
    return out


def _thumbnails(images: _RowImages | None, rows) -> list | None:
    if images is None:
        return None
    from .report._figures import thumbnail_png

    return [thumbnail_png(images.get([int(r)])[0]) for r in rows]


def _cluster_names(labels: np.ndarray) -> pd.Series:
    return pd.Series(np.where(labels == _NOISE, "none", labels.astype(str)), dtype=object)


def _bulk_of(labels: np.ndarray, metadata: pd.DataFrame, within: str | None) -> dict:
    """For every cluster, the largest cluster of its group (its reference)."""
    clusters = [int(c) for c in np.unique(labels) if c != _NOISE]
    if not clusters:
        return {}
    sizes = {c: int(np.sum(labels == c)) for c in clusters}
    if within is None or within not in metadata.columns:
        largest = max(clusters, key=lambda c: (sizes[c], -c))
        return {c: largest for c in clusters}
    group = {}
    for c in clusters:
        values = metadata.loc[labels == c, within].dropna()
        group[c] = values.mode().iloc[0] if len(values) else None
    out = {}
    for c in clusters:
        same = [k for k in clusters if group[k] == group[c]]
        out[c] = max(same, key=lambda k: (sizes[k], -k))
    return out


def _clusters_of_interest(auditor, metadata: pd.DataFrame, within: str | None,
                          limit: int) -> tuple[list[int], dict]:
    """Clusters named by significant findings of columns that are not expected, in the order
    of the findings, leaving out each group's largest cluster (the reference)."""
    bulk = _bulk_of(auditor.labels_, metadata, within)
    findings = auditor.findings_
    roles = findings["column"].map(auditor.column_roles_)
    rows = findings[(findings["kind"] == "cluster") & findings["cluster"].notna()
                    & (findings["q_value"] <= auditor.alpha) & (roles != "expected")]
    chosen: list[int] = []
    for cluster in rows["cluster"]:
        cluster = int(cluster)
        if cluster == _NOISE or bulk.get(cluster) == cluster or cluster in chosen:
            continue
        chosen.append(cluster)
        if len(chosen) >= limit:
            break
    return chosen, bulk


def _sample_rows(labels: np.ndarray, cluster: int, n: int, seed: int) -> np.ndarray:
    members = np.flatnonzero(labels == cluster)
    rng = np.random.default_rng([seed, cluster + 1])
    return np.sort(rng.choice(members, size=min(n, members.size), replace=False))


# --------------------------------------------------------------------------------------
# a linear baseline encoder
# --------------------------------------------------------------------------------------
class _PixelPCA:
    """Pixel PCA as an encoder: principal components of the flattened images.

    A linear autoencoder fitted in seconds, without a deep model: ``encode`` projects an
    image on the leading components, ``decode`` maps a latent back to pixels.  The command
    line's ``--encoder pca`` uses it for quick looks and fast tests; it meets the encoder
    protocol (``latent_dim``, ``spatial_dims``, ``encode``, ``decode``).
    """

    name = "pixel PCA"

    def __init__(self, latent_dim: int = 32) -> None:
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, numbers.Integral) \
                or latent_dim < 1:
            raise ConfigError(f"latent_dim must be a positive integer, got {latent_dim!r}")
        self.latent_dim = int(latent_dim)
        self.config = {"model_type": "pixel_pca", "latent_dim": self.latent_dim}

    def fit(self, images, random_state=0) -> _PixelPCA:
        from sklearn.decomposition import PCA

        images = np.asarray(images, dtype=np.float32)
        if images.ndim not in (4, 5):
            raise InputShapeError(f"images must be (N, C, H, W) or (N, C, D, H, W), got "
                                  f"shape {images.shape}")
        flat = images.reshape(len(images), -1)
        k = min(self.latent_dim, *flat.shape)
        pca = PCA(n_components=k, svd_solver="randomized", random_state=random_state)
        pca.fit(flat)
        self.latent_dim = int(k)
        self.config["latent_dim"] = self.latent_dim
        self.spatial_dims = images.ndim - 2
        self.image_shape = tuple(images.shape[1:])
        self.mean_ = pca.mean_.astype(np.float32)
        self.components_ = pca.components_.astype(np.float32)
        self.explained_variance_ratio_ = pca.explained_variance_ratio_
        return self

    def encode(self, x, **_):
        import torch

        x = torch.as_tensor(np.asarray(x.detach().cpu() if hasattr(x, "detach") else x,
                                       dtype=np.float32))
        flat = x.reshape(len(x), -1) - torch.from_numpy(self.mean_)
        return flat @ torch.from_numpy(self.components_).T

    def invert(self, x, **_):
        return None  # the components are all decode needs

    def decode(self, z, codes=None, *, generator=None, **_):
        import torch

        z = torch.as_tensor(np.asarray(z.detach().cpu() if hasattr(z, "detach") else z,
                                       dtype=np.float32))
        flat = z @ torch.from_numpy(self.components_) + torch.from_numpy(self.mean_)
        return flat.reshape(len(z), *self.image_shape)


# --------------------------------------------------------------------------------------
# the audit
# --------------------------------------------------------------------------------------
def run_audit(embeddings, *, images=None, encoder=None, options: Mapping | None = None,
              random_state: int = 0, provenance: Mapping | None = None,
              verbose: bool = False, strict: bool = False) -> AuditReport:
    """Audit embeddings: map, clusters, findings, probes, label issues and explanations.

    Parameters
    ----------
    embeddings : Embeddings or tuple of (array-like, pandas.DataFrame)
        The embeddings with their metadata (one row per subject), e.g. from
        :func:`latentaudit.embed` or :meth:`latentaudit.Embeddings.load`.
    images : array-like or dataset, optional
        The images the embeddings were made from: an array with one image per row, or a
        latentaudit dataset (its ids are matched to the rows; of a subject's slices the
        middle one is shown).  Without images the sections that show images (thumbnails,
        cluster images, Grad-CAM, counterfactuals) say they are unavailable.
    encoder : generative encoder, optional
        The encoder that made the embeddings; with ``decode`` it gives the counterfactual
        strips.
    options : mapping, optional
        Options by section, merged into :data:`AUDIT_DEFAULTS`:

        - ``projection``: ``method`` ("tsne", "pca", "umap"), ``perplexity``,
          ``max_iter`` (see :class:`latentaudit.Projector`).
        - ``audit``: ``method``, ``n_clusters``, ``min_cluster_size``, ``columns``,
          ``expected``, ``nuisance``, ``within``, ``n_permutations``, ``alpha`` (see
          :class:`latentaudit.audit.ClusterAuditor`).
        - ``probes``: ``columns`` (default every tested column), ``model``,
          ``n_permutations``.
        - ``label_issues``: ``columns`` (default the categorical ``expected`` columns,
          or every categorical column when none is expected) and ``show`` (rows listed
          per column).
        - ``explain``: ``enabled``, ``clusters`` (most explained), ``images`` (per
          cluster), ``classifier_steps``, ``batch_size``, ``widths``, ``method`` (CAM),
          ``counterfactual_images``, ``counterfactual_steps``, ``diffusion_steps``.
        - ``report``: ``title``, ``thumbnails`` (on the map), ``top_findings``.
    random_state : int, default 0
        Seed of every random choice.
    provenance : mapping, optional
        What to record about the data and the encoder (merged into the report's
        provenance with the versions, seeds, options and timings).
    verbose : bool, default False
        Show the layers' progress bars.
    strict : bool, default False
        Raise a step's error instead of reporting the section as failed.

    Returns
    -------
    AuditReport
        Sections ``overview``, ``findings``, ``projection``, ``clusters``, ``probes``,
        ``label_issues``, ``gradcam``, ``counterfactuals`` and ``provenance``; write it
        with :meth:`~latentaudit.report.AuditReport.save`.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.DataError` or ``ConfigError``) for a metadata
        column that mixes numbers and text, images that do not match the rows, or
        unknown options.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from latentaudit.pipeline import run_audit
    >>> rng = np.random.default_rng(0)
    >>> site = np.repeat(["A", "B"], 60)
    >>> z = rng.normal(size=(120, 8)) + 5.0 * (site == "B")[:, None]
    >>> report = run_audit((z, pd.DataFrame({"site": site})),
    ...                    options={"projection": {"method": "pca"}})
    >>> report.section("findings").ok
    True
    """
    from .embed import Embeddings

    started = time.perf_counter()
    if isinstance(embeddings, tuple):
        z, table = embeddings
        embeddings = Embeddings(np.asarray(z, dtype=np.float32), metadata=pd.DataFrame(table))
    if not isinstance(embeddings, Embeddings):
        raise InputTypeError(f"embeddings must be an Embeddings object or a (z, metadata) "
                             f"tuple, got {type(embeddings).__name__}")
    z = np.asarray(embeddings.z, dtype=np.float32)
    metadata = embeddings.metadata.reset_index(drop=True)
    opts = check_audit_options(options, metadata)
    id_column = _id_column(metadata, embeddings.ids)
    check_metadata(metadata, id_column=id_column)
    row_images, image_note = _row_images(images, embeddings.ids)
    analysed = metadata.drop(columns=[id_column]) if id_column else metadata.copy()

    report = AuditReport(opts["report"]["title"])
    timings: dict = {}

    def step(section):
        return _Step(section, timings, strict)

    overview = ReportSection("overview", "Overview")
    findings_sec = ReportSection("findings", "Findings, ranked")
    projection_sec = ReportSection("projection", "Map of the embeddings")
    clusters_sec = ReportSection("clusters", "Clusters: mean and difference images")
    probes_sec = ReportSection("probes", "Probes: what the embedding predicts")
    issues_sec = ReportSection("label_issues", "Label issues")
    cam_sec = ReportSection("gradcam", "Grad-CAM: where a classifier of the clusters looks")
    cf_sec = ReportSection("counterfactuals", "Counterfactuals: decoded moves between clusters")
    prov_sec = ReportSection("provenance", "Provenance")
    for section in (overview, findings_sec, projection_sec, clusters_sec, probes_sec,
                    issues_sec, cam_sec, cf_sec, prov_sec):
        report.add(section)

    # -- projection -----------------------------------------------------------------------
    xy = None
    with step(projection_sec):
        xy = _projection(projection_sec, z, analysed, row_images, opts, random_state)

    # -- clustering, tests, findings -----------------------------------------------------
    auditor, bulk = None, {}
    with step(findings_sec):
        auditor = _fit_auditor(findings_sec, z, analysed, opts, random_state, verbose)
    if auditor is None:
        reason = ("unavailable because the clustering and tests failed "
                  f"({findings_sec.note})")
        for section in (clusters_sec, probes_sec, issues_sec, cam_sec, cf_sec):
            section.mark("unavailable", f"This section is {reason}.")
    else:
        if xy is not None:
            with step(projection_sec):
                _cluster_map(projection_sec, xy, auditor.labels_, row_images, opts,
                             random_state)
        with step(probes_sec):
            _probes(probes_sec, auditor, opts, analysed)
        with step(issues_sec):
            _label_issues(issues_sec, auditor, analysed, metadata, id_column, row_images,
                          opts)
        within = opts["audit"]["within"]
        chosen, bulk = _clusters_of_interest(auditor, analysed, within,
                                             int(opts["explain"]["clusters"]))
        with step(clusters_sec):
            _cluster_images(clusters_sec, auditor, row_images, image_note, chosen, bulk,
                            opts, random_state)
        explainer = None
        with step(cam_sec):
            explainer = _gradcam(cam_sec, auditor.labels_, row_images, chosen, opts,
                                 random_state, verbose)
        with step(cf_sec):
            _counterfactuals(cf_sec, encoder, embeddings, auditor.labels_, row_images,
                             chosen, bulk, explainer, opts, random_state, verbose)

    references = set(bulk.values()) if auditor is not None else set()
    _overview(overview, embeddings, analysed, auditor, issues_sec, opts, references)
    subjects = pd.DataFrame({"id": [str(i) for i in embeddings.ids]})
    if auditor is not None:
        subjects["cluster"] = auditor.labels_
    if xy is not None:
        subjects["map_x"], subjects["map_y"] = xy[:, 0], xy[:, 1]
    for column in analysed.columns:
        if column not in subjects.columns:
            subjects[column] = analysed[column].to_numpy()
    report.subjects = subjects

    total = round(time.perf_counter() - started, 3)
    record = dict(provenance or {})
    record.setdefault("embeddings", {
        "n_rows": int(z.shape[0]), "latent_dim": int(z.shape[1]),
        "made_by": embeddings.provenance})
    record["seed"] = int(random_state)
    record["options"] = opts
    record["versions"] = _versions()
    record["timings_seconds"] = {**record.get("timings_seconds", {}), **timings,
                                 "audit_total": total}
    encoder_name = embeddings.provenance.get("encoder") or "an encoder"
    if isinstance(record.get("encoder"), Mapping) and record["encoder"].get("name"):
        encoder_name = record["encoder"]["name"]
    n_clusters = auditor.n_clusters_ if auditor is not None else 0
    record.setdefault("summary", f"{len(z):,} subjects · {z.shape[1]}-dimensional embeddings "
                                 f"from {encoder_name} · {n_clusters} clusters")
    report.provenance = record
    prov_sec.data = record
    prov_sec.seconds = None
    prov_sec.paragraphs = [
        "How this report was made: the data, the encoder and its configuration hash, the "
        "library versions, the seeds, every option and how long each step took."]
    return report


def _projection(section, z, analysed, row_images, opts, random_state):
    from .projection import Projector
    from .report import plot_projection
    from .report._figures import figure_to_png

    options = opts["projection"]
    projector = Projector(method=options["method"], perplexity=options["perplexity"],
                          max_iter=options["max_iter"], random_state=random_state)
    xy = projector.fit_transform(z)
    columns = [c for c in analysed.columns if analysed[c].notna().any()]
    fig = plot_projection(xy, analysed, columns=columns or None, ncols=3, panel_size=3.3,
                          random_state=random_state)
    what = {"tsne": "t-SNE", "pca": "PCA", "umap": "UMAP"}.get(options["method"],
                                                              options["method"])
    section.paragraphs.append(
        f"{what} map of the {len(z):,} embeddings, coloured by every metadata column "
        f"(one panel each). Groups that separate on the map by a column that should not "
        f"matter (site, scanner, protocol) are what this audit is looking for.")
    section.figures.append(ReportFigure(
        f"{what} map by metadata column", figure_to_png(fig, dpi=100),
        "Each point is one subject; grey points have no value for that column."))
    section.data = {"method": options["method"], "backend": getattr(projector, "backend_", None),
                    "perplexity": getattr(projector, "perplexity_", None),
                    "n_iter": getattr(projector, "n_iter_", None)}
    return xy


def _cluster_map(section, xy, labels, row_images, opts, random_state):
    from .report import plot_projection
    from .report._figures import figure_to_png

    n_thumbs = int(opts["report"]["thumbnails"] or 0)
    thumbs = {}
    if row_images is not None and n_thumbs > 0:
        thumbs = {"images": row_images, "thumbnails": n_thumbs}
    fig = plot_projection(xy, pd.DataFrame({"cluster": _cluster_names(labels)}),
                          columns=["cluster"], kinds={"cluster": "categorical"},
                          panel_size=5.0, random_state=random_state, **thumbs)
    section.figures.append(ReportFigure(
        "Clusters on the map", figure_to_png(fig, dpi=100),
        "The clusters the audit tested (found in the embedding, not on the map); "
        "'none' marks subjects in no cluster."
        + (" Thumbnails show a few subjects where they lie." if thumbs else "")))


def _fit_auditor(section, z, analysed, opts, random_state, verbose):
    from .audit import ClusterAuditor

    options = opts["audit"]
    if len(analysed.columns) == 0:
        raise _Unavailable("the embeddings have no metadata columns to test the clusters "
                           "against; give a metadata table")
    auditor = ClusterAuditor(
        method=options["method"], n_clusters=options["n_clusters"],
        min_cluster_size=options["min_cluster_size"], columns=options["columns"],
        expected=options["expected"], nuisance=options["nuisance"],
        within=options["within"], n_permutations=int(options["n_permutations"]),
        alpha=float(options["alpha"]), random_state=random_state, verbose=verbose)
    auditor.fit(z, analysed)
    findings = auditor.findings_
    significant = findings[findings["q_value"] <= auditor.alpha]
    roles = findings["column"].map(auditor.column_roles_)
    expected = ", ".join(sorted(c for c, r in auditor.column_roles_.items()
                                if r == "expected")) or "none"
    section.paragraphs.append(
        f"The embedding was clustered ({auditor._cluster_source}"
        f"{', within each ' + options['within'] if options['within'] else ''}) into "
        f"{auditor.n_clusters_} clusters; every cluster was tested against every metadata "
        f"column, the nuisance columns were probed, and the false discovery rate was "
        f"controlled over all {len(findings)} tests. {len(significant)} pass q ≤ "
        f"{auditor.alpha:g}. Findings of expected columns "
        f"({expected})"
        f" are ranked last: they are structure the embedding should show.")
    table = findings.copy()
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    table["role"] = roles.to_numpy()
    section.tables.append(ReportTable(
        "All findings", table[["rank", "description", "column", "role", "kind", "cluster",
                               "test", "effect_size", "q_value", "n"]],
        "Effect sizes: Cramér's V (chi2, fisher), ε² (kruskal), AMI (ami), Cohen's κ "
        "(probe_logistic) or R² (probe_ridge); q: Benjamini-Hochberg adjusted p-value.",
        max_rows=25))
    section.tables.append(ReportTable("Clusters", auditor.summary(),
                                      "Each cluster's size and its strongest association."))
    section.data = {
        "n_clusters": int(auditor.n_clusters_), "alpha": float(auditor.alpha),
        "column_types": auditor.column_types_, "column_roles": auditor.column_roles_,
        "cluster_sizes": {str(k): int(v) for k, v in zip(
            *np.unique(auditor.labels_, return_counts=True), strict=True)},
        "knn_method": auditor.knn_method_, "knn_recall": float(auditor.knn_recall_),
    }
    return auditor


def _probes(section, auditor, opts, analysed):
    options = opts["probes"]
    columns = options["columns"] or list(auditor.column_types_)
    if not columns:
        raise _Unavailable("no metadata column could be probed (constants and identifiers "
                           "are left out)")
    table = auditor.probe(columns, model=options["model"],
                          n_permutations=int(options["n_permutations"]))
    table = table.copy()
    table.insert(1, "role", table["column"].map(auditor.column_roles_))
    model = ("linear model (logistic or ridge regression)" if options["model"] == "linear"
             else "SVM")
    section.paragraphs.append(
        f"Each column predicted from the embedding by a cross-validated {model}"
        ", as in Table 1 of Graf et al. (2024): accuracy for categories, mean absolute error "
        "for numbers, each against chance (the majority class, or always predicting the "
        "median). An embedding that predicts a nuisance column well carries that nuisance.")
    section.tables.append(ReportTable("Probe table", table[[
        "column", "role", "metric", "score", "ci_low", "ci_high", "chance", "effect_size",
        "p_value", "n"]], "95% confidence intervals; effect size: Cohen's κ or R²."))
    section.data = {"probes": table}


def _label_issues(section, auditor, analysed, metadata, id_column, row_images, opts):
    options = opts["label_issues"]
    columns = options["columns"]
    if columns is None:
        within = opts["audit"]["within"]
        expected = list(opts["audit"]["expected"] or [])
        if within and within not in expected and expected:
            expected.append(within)
        expected = [c for c in expected if _is_categorical(analysed[c])]
        columns = expected or [c for c, kind in auditor.column_types_.items()
                               if kind == "categorical"]
    if isinstance(columns, str):
        columns = [columns]
    if not columns:
        raise _Unavailable("no categorical metadata column to check labels of")
    show = int(options["show"])
    data = {}
    for column in columns:
        issues = auditor.label_issues(column)
        flagged = issues[issues["flagged"]]
        data[column] = {"n_flagged": int(len(flagged)), "n_checked": int(len(issues)),
                        "flagged": flagged}
        listed = flagged.head(show).copy()
        ids = (metadata[id_column].astype(str).to_numpy() if id_column
               else np.array([str(i) for i in range(len(metadata))]))
        listed.insert(1, "id", ids[listed["index"].to_numpy()])
        listed = listed.drop(columns=["flagged"])
        section.items.append(
            f"{column}: {len(flagged)} of {len(issues)} subjects flagged — their {column} "
            f"label disagrees with both their neighbours in the embedding and a probe.")
        section.tables.append(ReportTable(
            f"{column}: flagged subjects, most suspicious first", listed,
            "score: 1 - the estimated probability of the given label (categorical) or a "
            "robust z-score (numeric). Check these subjects' records.",
            images=_thumbnails(row_images, listed["index"]), max_rows=show))
    section.paragraphs.append(
        "Subjects whose label disagrees with their neighbours in the embedding and with a "
        "probe's out-of-fold prediction (confident-learning style). A flagged subject is a "
        "candidate for a wrong label, not a proven one.")
    section.data = data


def _cluster_images(section, auditor, row_images, image_note, chosen, bulk, opts,
                    random_state):
    from .explain import difference_map
    from .report._figures import difference_panel, image_grid

    if row_images is None:
        raise _Unavailable(f"no images: {image_note}; pass the images to see the clusters")
    if not chosen:
        section.note = ("No cluster besides each group's largest one is significantly "
                        "associated with a column outside the expected ones; there is no "
                        "unexpected cluster to show.")
        return
    labels = auditor.labels_
    n_images = int(opts["explain"]["images"])
    described = {}
    if hasattr(auditor, "summary"):
        summary = auditor.summary()
        described = dict(zip(summary["cluster"], summary["description"], strict=True))
    data = {}
    for cluster in chosen:
        reference = bulk.get(cluster)
        rows = _sample_rows(labels, cluster, n_images, random_state)
        finding = f" Its strongest finding: {described[cluster]}." if described.get(
            cluster) else ""
        section.figures.append(ReportFigure(
            f"Cluster {cluster}: example subjects",
            image_grid(row_images.get(rows), row_images.names(rows), ncols=n_images),
            f"{len(rows)} subjects of cluster {cluster} ({int(np.sum(labels == cluster))} "
            f"subjects), drawn at random.{finding}"))
        diff = difference_map(row_images, labels, cluster, reference)
        section.figures.append(ReportFigure(
            f"Cluster {cluster} vs cluster {reference}",
            difference_panel(diff.mean_source, diff.mean_target, diff.difference,
                             diff.significant, source_title=f"mean of cluster {cluster}",
                             target_title=f"mean of cluster {reference}"),
            f"Mean images, their difference (red: brighter in cluster {cluster}), and the "
            f"difference where it is significant (Welch t-tests, Benjamini-Hochberg FDR "
            f"{diff.alpha:g}): {diff.fraction_significant:.0%} of the image."))
        data[str(cluster)] = {"reference": reference, "n": int(diff.n_source),
                              "n_reference": int(diff.n_target),
                              "fraction_significant": diff.fraction_significant,
                              "max_abs_difference": float(np.max(np.abs(diff.difference)))}
    section.paragraphs.append(
        "For every unexpected cluster (named by a significant finding of a column that is "
        "not expected), a few of its subjects and its mean image beside the mean of the "
        "largest cluster of the same group, with their difference.")
    if image_note:
        section.note = f"Note: {image_note}."
    section.data = data


def _gradcam(section, labels, row_images, chosen, opts, random_state, verbose):
    from .explain import Explainer
    from .report._figures import overlay_grid

    options = opts["explain"]
    if not options["enabled"]:
        raise _Unavailable("explanations were turned off (explain.enabled = false)")
    if row_images is None:
        raise _Unavailable("no images were given; the classifier needs them")
    if not chosen:
        raise _Unavailable("there is no unexpected cluster to explain")
    spatial_dims = row_images[0]["image"].ndim - 1
    explainer = Explainer(spatial_dims=spatial_dims, widths=tuple(options["widths"]),
                          method=options["method"], max_steps=int(options["classifier_steps"]),
                          batch_size=int(options["batch_size"]), random_state=random_state,
                          verbose=verbose)
    explainer.fit(row_images, labels)
    n_images = int(options["images"])
    section.paragraphs.append(
        f"A ResNet10 classifier was trained on the images to tell the "
        f"{explainer.n_classes_} clusters apart ({int(options['classifier_steps'])} steps); "
        f"on {len(explainer.test_indices_)} held-out subjects its accuracy is "
        f"{explainer.accuracy_:.2f} (balanced {explainer.balanced_accuracy_:.2f}). The maps "
        f"({explainer.method_}, layer {explainer.target_layer_}) show where it looks to "
        f"recognise each unexpected cluster.")
    data = {"accuracy": explainer.accuracy_, "balanced_accuracy": explainer.balanced_accuracy_,
            "classes": explainer.classes_.tolist(),
            "confusion_matrix": explainer.confusion_matrix_, "method": explainer.method_,
            "target_layer": explainer.target_layer_, "clusters": {}}
    for cluster in chosen:
        rows = _sample_rows(labels, cluster, n_images, random_state)
        images = row_images.get(rows)
        maps = explainer.explain(images, target=cluster)
        section.figures.append(ReportFigure(
            f"Cluster {cluster}: Grad-CAM",
            overlay_grid(images, maps, row_images.names(rows), ncols=n_images),
            f"Maps for the class 'cluster {cluster}' over {len(rows)} of its subjects (red: "
            f"most evidence)."))
        data["clusters"][str(cluster)] = {"rows": rows, "mean_map_peak": float(maps.max())}
    section.data = data
    return explainer


def _counterfactuals(section, encoder, embeddings, labels, row_images, chosen, bulk,
                     explainer, opts, random_state, verbose):
    from .explain import counterfactual
    from .report._figures import counterfactual_strip

    options = opts["explain"]
    if not options["enabled"]:
        raise _Unavailable("explanations were turned off (explain.enabled = false)")
    if encoder is None:
        raise _Unavailable("no encoder was given; decoded counterfactuals need the "
                           "generative encoder that made the embeddings")
    from .encoders import GenerativeEncoder

    if not isinstance(encoder, GenerativeEncoder):
        raise _Unavailable(f"the encoder ({type(encoder).__name__}) cannot decode "
                           f"embeddings into images (it does not meet the generative "
                           f"protocol: encode, invert, decode)")
    if row_images is None:
        raise _Unavailable("no images were given")
    if not chosen:
        raise _Unavailable("there is no unexpected cluster to move toward")
    same_space = int(getattr(encoder, "latent_dim", -1)) == embeddings.latent_dim
    if not same_space and explainer is None:
        raise _Unavailable("the move between clusters needs embeddings in the encoder's "
                           "latent space (these are not: e.g. slices were aggregated, or none "
                           "were given) or the classifier's step, which encodes the images "
                           "itself, and that step did not run")
    n_images = int(options["counterfactual_images"])
    kind = getattr(type(encoder), "name", None) or type(encoder).__name__
    if not isinstance(kind, str):
        kind = type(encoder).__name__
    data = {}
    for cluster in chosen:
        reference = bulk.get(cluster)
        if reference is None or reference == cluster:
            continue
        rows = _sample_rows(labels, reference, n_images, random_state)
        images = row_images.get(rows)
        common = {"steps": int(options["counterfactual_steps"]),
                  "diffusion_steps": int(options["diffusion_steps"])}
        if same_space:
            cf = counterfactual(encoder, images, reference, cluster,
                                embeddings=np.asarray(embeddings.z), labels=labels,
                                random_state=random_state, verbose=verbose, **common)
        else:
            cf = explainer.counterfactual(encoder, images, reference, cluster, **common)
        section.figures.append(ReportFigure(
            f"Cluster {reference} → cluster {cluster}",
            counterfactual_strip(cf.images, cf.alphas, cf.difference,
                                 row_titles=row_images.names(rows)),
            f"Subjects of cluster {reference} decoded after moving their embedding toward "
            f"cluster {cluster} by the difference of the clusters' mean embeddings (α = 1: "
            f"the whole way). The last column is what the move changed."))
        data[str(cluster)] = {"source": reference, "rows": rows, "alphas": cf.alphas,
                              "mean_abs_change": float(np.mean(np.abs(cf.difference)))}
    keeps = (" (each decoded with the codes its inversion gives besides the embedding, "
             "e.g. a Diffusion Autoencoder's stochastic code, so it stays recognisable)")
    section.paragraphs.append(
        f"What the embedding encodes about each unexpected cluster, decoded by the "
        f"{kind}: subjects of the reference cluster are moved step by step toward it{keeps}.")
    section.data = data


def _q_text(q: float) -> str:
    return "q < 1e-300" if q == 0 else f"q = {q:.2g}"


def _overview(section, embeddings, analysed, auditor, issues_sec, opts, references):
    n, d = embeddings.shape
    section.paragraphs.append(
        f"{n:,} subjects, {d}-dimensional embeddings; metadata columns: "
        f"{', '.join(map(str, analysed.columns)) or 'none'}.")
    if auditor is None:
        section.note = "The clustering and tests failed, so there are no findings."
        return
    findings = auditor.findings_
    roles = findings["column"].map(auditor.column_roles_)
    significant = findings[(findings["q_value"] <= auditor.alpha) & (roles != "expected")]
    # what sets the largest cluster of each group apart is the absence of the others'
    # peculiarities; those findings stay in the full list, the summary names the others
    reference_rows = significant["cluster"].isin(list(references)).fillna(False)
    top = significant[~reference_rows.to_numpy(dtype=bool)]
    top_n = int(opts["report"]["top_findings"])
    if len(top):
        section.paragraphs.append(
            f"Top findings ({min(top_n, len(top))} of {len(significant)} significant ones "
            f"about columns that are not expected structure; findings about each group's "
            f"largest cluster, the reference, and the rest are in the full list below):")
        section.items = [f"{row.description} ({_q_text(row.q_value)})"
                         for row in top.head(top_n).itertuples()]
    else:
        section.paragraphs.append(
            f"No finding about a column outside the expected ones passes the false "
            f"discovery rate of {auditor.alpha:g}.")
    if issues_sec.ok and issues_sec.data:
        counts = "; ".join(f"{column}: {value['n_flagged']} subjects"
                           for column, value in issues_sec.data.items())
        section.remarks.append(f"Possible label errors — {counts} (see Label issues).")
    section.data = {"n_subjects": int(n), "latent_dim": int(d),
                    "n_significant": int(len(top)),
                    "top_findings": top.head(top_n)}


# --------------------------------------------------------------------------------------
# explaining a delineation made elsewhere
# --------------------------------------------------------------------------------------
def run_explain(images, labels, *, ids=None, encoder=None, embeddings=None,
                reference=None, options: Mapping | None = None, random_state: int = 0,
                provenance: Mapping | None = None, verbose: bool = False,
                strict: bool = False) -> AuditReport:
    """Explain a delineation: mean and difference images, a classifier's Grad-CAM maps
    and decoded counterfactuals for every delineated group.

    Parameters
    ----------
    images : array-like or dataset
        One image per label, or a latentaudit dataset matched to ``ids`` (the middle slice
        of each subject).
    labels : array-like of int
        The delineation: one group label per subject, ``-1`` for subjects in none (e.g.
        ``ClusterAuditor.labels_`` or :func:`latentaudit.audit.delineate`).
    ids : sequence of str, optional
        The subject of every label (needed when ``images`` is a dataset of slices).
    encoder : generative encoder, optional
        For the counterfactual strips.
    embeddings : Embeddings, optional
        The subjects' embeddings in ``encoder``'s latent space (rows in the order of
        ``labels``); default: computed from the images by the classifier's step.
    reference : int, optional
        The group the others are compared with and moved from; default the largest.
    options : mapping, optional
        As for :func:`run_audit` (the ``explain`` and ``report`` sections are used).
    random_state : int, default 0
        Seed.
    provenance : mapping, optional
        What to record about the data.
    verbose : bool, default False
        Show progress bars.
    strict : bool, default False
        Raise a step's error instead of reporting the section as failed.

    Returns
    -------
    AuditReport
        Sections ``clusters``, ``gradcam``, ``counterfactuals`` and ``provenance``.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.DataError`) for fewer than two groups or images
        that do not match the labels.

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit.pipeline import run_explain
    >>> images = np.random.default_rng(0).normal(size=(40, 1, 16, 16)).astype("float32")
    >>> labels = np.repeat([0, 1], 20)
    >>> report = run_explain(images, labels, options={"explain": {
    ...     "classifier_steps": 5, "widths": [4, 8, 8, 8]}})  # doctest: +SKIP
    """
    from .embed import Embeddings

    started = time.perf_counter()
    opts = check_audit_options(options)
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"labels must be one integer group label per subject, got an array "
                        f"of dtype {labels.dtype} and shape {labels.shape}")
    ids = [str(i) for i in (range(len(labels)) if ids is None else ids)]
    if len(ids) != len(labels):
        raise DataError(f"got {len(ids)} ids for {len(labels)} labels")
    groups = [int(g) for g in np.unique(labels) if g != _NOISE]
    if len(groups) < 2:
        raise DataError(f"a delineation needs at least two groups to compare; got "
                        f"{groups} (label -1 marks subjects in none)")
    row_images, image_note = _row_images(images, ids)
    sizes = {g: int(np.sum(labels == g)) for g in groups}
    if reference is None:
        reference = max(groups, key=lambda g: (sizes[g], -g))
    elif int(reference) not in groups:
        raise DataError(f"reference group {reference!r} is not among the labels {groups}")
    reference = int(reference)
    chosen = [g for g in sorted(groups, key=lambda g: (sizes[g], g)) if g != reference]
    chosen = chosen[: int(opts["explain"]["clusters"])]
    bulk = {g: reference for g in groups}

    report = AuditReport(opts["report"]["title"])
    timings: dict = {}
    clusters_sec = report.add(ReportSection("clusters", "Groups: mean and difference images"))
    cam_sec = report.add(ReportSection("gradcam", "Grad-CAM: where a classifier of the "
                                                  "groups looks"))
    cf_sec = report.add(ReportSection("counterfactuals", "Counterfactuals: decoded moves "
                                                         "between groups"))
    prov_sec = report.add(ReportSection("provenance", "Provenance"))

    class _Labels:  # what the section builders read of an auditor
        labels_ = labels

    with _Step(clusters_sec, timings, strict):
        _cluster_images(clusters_sec, _Labels, row_images, image_note, chosen, bulk, opts,
                        random_state)
    explainer = None
    with _Step(cam_sec, timings, strict):
        explainer = _gradcam(cam_sec, labels, row_images, chosen, opts, random_state,
                             verbose)
    if embeddings is None:
        # no embeddings: let the classifier's images give the move (or none at all)
        embeddings = Embeddings(np.zeros((len(labels), 1), dtype=np.float32), ids=ids)
    with _Step(cf_sec, timings, strict):
        _counterfactuals(cf_sec, encoder, embeddings, labels, row_images, chosen, bulk,
                         explainer, opts, random_state, verbose)
    report.subjects = pd.DataFrame({"id": ids, "group": labels})
    record = dict(provenance or {})
    record["seed"] = int(random_state)
    record["options"] = {k: opts[k] for k in ("explain", "report")}
    record["versions"] = _versions()
    record["timings_seconds"] = {**record.get("timings_seconds", {}), **timings,
                                 "explain_total": round(time.perf_counter() - started, 3)}
    record.setdefault("summary", f"{len(labels):,} subjects in {len(groups)} groups; "
                                 f"reference group {reference}")
    record["delineation"] = {"groups": sizes, "reference": reference, "explained": chosen}
    report.provenance = record
    prov_sec.data = record
    return report

