"""Spike-in sensitivity: how weak an artefact does the audit still find, on your own data?

:func:`sensitivity` picks a hidden group of subjects at random (independent of every
metadata column), plants an artefact of :mod:`latentaudit.artefacts` in their images at a
ladder of strengths (strength 0 is the null), embeds the images with the user's encoder,
runs the audit as configured and measures two regimes at every strength:

- *known*: the group is a metadata column (a scanner the user recorded).  The audit is
  given the column; what counts is the q value and rank of its best finding on it, and
  how well a linear probe separates the group (AUC).  Found: q < 0.001.
- *unforeseen*: no column names the group.  The audit is run on the metadata alone; what
  counts is whether one of its outputs (a cluster, the rows in no cluster, the top
  outliers, a candidate subgroup of ``ClusterAuditor.subgroups_``) singles the group out:
  F1, precision, recall and ARI of the best one against the group, and the average
  precision and precision@k of the outlier ranking (as Domino scores slice discovery).
  Found: F1 >= 0.5.

The detection limit of a regime is the lowest strength found; repeats with other seeds
(other groups, other artefact draws, other audit seeds) give intervals.  The planted truth
is used only here, to score the audit's output; the audit itself sees images (through the
encoder) and metadata, nothing else.
"""

from __future__ import annotations

import logging
import math
import numbers
import time
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..artefacts import Artefact, get_artefact
from ..data import ArrayDataset, ImageDataset
from ..errors import ConfigError, DataError, InputTypeError
from ..utils import check_option

__all__ = ["DEFAULT_STRENGTHS", "SensitivityResult", "sensitivity"]

logger = logging.getLogger(__name__)

#: The strength ladder used when none is given (0 is the null).
DEFAULT_STRENGTHS = (0.0, 0.05, 0.1, 0.2, 0.4, 0.7, 1.0)
#: The q value below which the known regime counts a group as found.
KNOWN_Q = 1e-3
#: The F1 at or above which the unforeseen regime counts a group as found.
UNFORESEEN_F1 = 0.5

RUN_COLUMNS = [
    "repeat", "strength", "n", "n_group",
    "known_q", "known_rank", "known_significant", "known_found", "probe_auc",
    "unforeseen_output", "unforeseen_f1", "unforeseen_precision", "unforeseen_recall",
    "unforeseen_ari", "unforeseen_ap", "unforeseen_precision_at_k", "unforeseen_found",
    "seconds",
]


class SensitivityResult:
    """What :func:`sensitivity` measured: every run, the curves, the detection limits.

    Attributes
    ----------
    runs : pandas.DataFrame
        One row per repeat and strength: ``repeat``, ``strength``, ``n`` (rows audited),
        ``n_group`` (rows planted); known regime: ``known_q`` (smallest q value of a
        finding on the group's column, 1.0 if none was tested), ``known_rank`` (1-based
        rank of the best such finding among all findings), ``known_significant``
        (``known_q`` at or below the audit's ``alpha``), ``known_found``
        (``known_q < known_q_threshold``), ``probe_auc`` (out-of-fold logistic probe of
        membership, in the audit's analysis space); unforeseen regime:
        ``unforeseen_output`` (the best-matching output: ``"cluster 3"``,
        ``"unclustered"``, ``"outliers (top k)"`` or a candidate subgroup of the audit,
        ``"subgroup 2"``), its ``unforeseen_f1``, ``unforeseen_precision``,
        ``unforeseen_recall`` and ``unforeseen_ari``, ``unforeseen_ap`` and
        ``unforeseen_precision_at_k`` (outlier ranking, k = group size),
        ``unforeseen_found`` (F1 at least ``min_f1``); ``seconds``.
    curves : pandas.DataFrame
        One row per strength: the share of repeats found in each regime with a Wilson
        95% interval (``known_rate``, ``known_low``, ``known_high``, ``unforeseen_rate``,
        ...), the share where the group's column was significant at the audit's FDR
        (``known_significant_rate``: at strength 0 the false finding rate), and means with
        95% intervals of ``probe_auc`` and ``unforeseen_f1``.
    detection_limits : pandas.DataFrame
        One row per regime: ``regime``, ``criterion``, ``limit`` (median over repeats of
        the lowest strength found; ``inf`` when not found in at least half the repeats),
        ``low`` and ``high`` (the smallest and largest per-repeat limit), ``found_in``
        (repeats that found it at some strength) and ``repeats``.
    artefact : Artefact
        The artefact planted (its own ``strength`` is not used).
    settings : dict
        ``fraction``, ``repeats``, ``strengths``, ``known_q_threshold``, ``min_f1``, the
        audit's parameters and the encoder's class.
    embeddings : Embeddings or None
        The clean embedding of the data (nothing planted), the rows of :meth:`report`.

    Examples
    --------
    See :func:`sensitivity`.
    """

    def __init__(self, runs: pd.DataFrame, artefact: Artefact, settings: dict,
                 embeddings=None) -> None:
        self.runs = runs
        self.artefact = artefact
        self.settings = settings
        self.embeddings = embeddings
        self.curves = _curves(runs)
        self.detection_limits = _detection_limits(runs, settings)

    def plot(self, ax=None):
        """Draw the detection curves: share found against strength, both regimes.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Where to draw; default a new figure.

        Returns
        -------
        matplotlib.axes.Axes
        """
        from ..report._sensitivity import plot_sensitivity

        return plot_sensitivity(self, ax=ax)

    def report(self, title: str = "latentaudit sensitivity", **options):
        """The measurement as an :class:`~latentaudit.AuditReport` (its "sensitivity" and
        "provenance" sections), ready for ``save`` or ``to_html``.

        Parameters
        ----------
        title : str, default "latentaudit sensitivity"
        **options
            Passed to :meth:`AuditReport.from_fitted
            <latentaudit.report.AuditReport.from_fitted>` (e.g. ``provenance``).

        Returns
        -------
        AuditReport
        """
        from ..embeddings import Embeddings
        from ..report import AuditReport

        rows = self.embeddings
        if rows is None:
            rows = Embeddings(np.zeros((int(self.runs["n"].iloc[0]), 1), np.float32))
        return AuditReport.from_fitted(rows, sensitivity=self,
                                       sections=("sensitivity", "provenance"),
                                       options={"report": {"title": title}}, **options)

    def __repr__(self) -> str:
        lines = [f"SensitivityResult: {self.artefact!r}",
                 f"  {self.settings['repeats']} repeat(s), hidden group "
                 f"{self.settings['fraction']:.0%} of the rows, strengths "
                 f"{list(self.settings['strengths'])}"]
        for row in self.detection_limits.itertuples():
            limit = "not found" if not math.isfinite(row.limit) else f"{row.limit:g}"
            lines.append(f"  {row.regime}: detection limit {limit} "
                         f"(per repeat {row.low:g}-{row.high:g}; {row.criterion})")
        return "\n".join(lines)


def sensitivity(encoder, dataset, *, artefact, strengths: Sequence[float] = DEFAULT_STRENGTHS,
                fraction: float = 0.1, repeats: int = 3, audit=None,
                known_q_threshold: float = KNOWN_Q, min_f1: float = UNFORESEEN_F1,
                column: str = "hidden_group", column_role: str = "other",
                regimes: Sequence[str] = ("known", "unforeseen"),
                aggregate: str | None = None,
                batch_size: int = 64, device=None, random_state=None,
                verbose: bool = False) -> SensitivityResult:
    """Measure how weak an artefact the audit still finds, by planting it in your data.

    For each repeat, a hidden group of ``fraction`` of the subjects is drawn at random
    (so it is independent of every metadata column); at each strength the artefact is
    planted in the images of its subjects, the images are embedded with ``encoder`` and
    the audit is run twice: with the group as an extra metadata column (the *known*
    regime) and without it (the *unforeseen* regime).  Only the group's images are
    embedded again at each strength; the rest come from one clean pass.

    Parameters
    ----------
    encoder : Encoder
        Any encoder :func:`latentaudit.embed` accepts.
    dataset : ImageDataset or numpy.ndarray
        The images (scaled to [-1, 1], latentaudit's convention, unless the artefact's
        ``value_range`` says otherwise) and their metadata.  An array
        ``(N, C, H, W)`` / ``(N, C, D, H, W)`` is one subject per image, no metadata.
    artefact : Artefact or str
        What to plant: an artefact of :mod:`latentaudit.artefacts` (its parameters are
        kept, its strength is replaced by each of ``strengths``) or a name such as
        ``"bias_field"``.
    strengths : sequence of float, default (0, 0.05, 0.1, 0.2, 0.4, 0.7, 1)
        The ladder, in [0, 1]; include 0 to measure the null (false findings).
    fraction : float, default 0.1
        Share of the subjects in the hidden group, in (0, 0.5].
    repeats : int, default 3
        Independent repeats (group, artefact draws and audit seed change).
    audit : ClusterAuditor, dict or None
        The audit as configured: an unfitted :class:`~latentaudit.ClusterAuditor`
        (cloned for every run), a dict of its parameters, or ``None`` for the defaults.
        When its ``random_state`` is ``None`` each repeat seeds it.
    known_q_threshold : float, default 0.001
        The known regime finds the group when a finding on its column has q below this.
    min_f1 : float, default 0.5
        The unforeseen regime finds the group when one of the audit's outputs matches it
        with at least this F1.
    column : str, default "hidden_group"
        Name of the group's metadata column in the known regime (values ``"yes"`` /
        ``"no"``); it must not exist already.
    column_role : {"other", "nuisance"}, default "other"
        How the audit treats that column: as any other recorded column (what the audit's
        defaults do with a column nobody flagged), or declared a nuisance (added to the
        audit's ``nuisance`` list, as for a scanner the user suspects).
    regimes : sequence of {"known", "unforeseen"}, default both
        The regimes measured (one audit per regime, strength and repeat); the columns of
        a regime left out are NaN (``False`` for its ``*_found``).
    aggregate : {None, "subject"}, default None
        Passed to :func:`latentaudit.embed` (one row per subject from several slices).
    batch_size : int, default 64
        Batch size of the embedding.
    device : str or torch.device, optional
        Where the encoder runs.
    random_state : int, numpy.random.Generator or None
        Seed of the groups, the artefact's draws and (when the audit has none) the
        audit.
    verbose : bool, default False
        Log each run.

    Returns
    -------
    SensitivityResult
        ``runs`` (every repeat x strength), ``curves`` (per strength, with intervals) and
        ``detection_limits`` (per regime); ``plot()`` draws the curves.

    Raises
    ------
    ValueError
        (as :class:`~latentaudit.errors.ConfigError`) for a bad strength, fraction,
        repeat count, audit option or an existing ``column``; (as
        :class:`~latentaudit.errors.DataError`) for too few subjects.
    TypeError
        (as :class:`~latentaudit.errors.InputTypeError`) for a dataset that is neither
        an ImageDataset nor an array, or an ``audit`` of the wrong type.

    Examples
    --------
    >>> import numpy as np, torch
    >>> import latentaudit as la
    >>> class Pixels(torch.nn.Module):               # raw pixels as the embedding
    ...     latent_dim, spatial_dims = 64, 2
    ...     def encode(self, x):
    ...         return x.flatten(1)
    >>> rng = np.random.default_rng(0)
    >>> images = rng.normal(-0.5, 0.05, size=(120, 1, 8, 8)).astype("float32")
    >>> result = la.sensitivity(Pixels(), images, artefact=la.artefacts.Gain(),
    ...                         strengths=[0.0, 1.0], repeats=1, random_state=0,
    ...                         audit={"n_permutations": 19})
    >>> result.runs[["strength", "known_found", "probe_auc"]].round(2)
       strength  known_found  probe_auc
    0       0.0        False       0.62
    1       1.0         True       1.00
    >>> result.detection_limits[["regime", "limit"]]
           regime  limit
    0       known    1.0
    1  unforeseen    1.0
    """
    from ..embed import embed

    artefact = _check_artefact(artefact)
    strengths = _check_strengths(strengths)
    fraction = _check_number("fraction", fraction, 0.0, 0.5, low_open=True)
    known_q_threshold = _check_number("known_q_threshold", known_q_threshold, 0.0, 1.0,
                                      low_open=True)
    min_f1 = _check_number("min_f1", min_f1, 0.0, 1.0, low_open=True)
    if isinstance(repeats, bool) or not isinstance(repeats, numbers.Integral) or repeats < 1:
        raise ConfigError(f"repeats must be a positive integer, got {repeats!r}")
    template = _auditor(audit)
    check_option("column_role", column_role, ["other", "nuisance"])
    if isinstance(regimes, str):
        regimes = (regimes,)
    regimes = tuple(dict.fromkeys(check_option("regimes", r, ["known", "unforeseen"])
                                  for r in regimes))
    if not regimes:
        raise ConfigError("regimes must name 'known', 'unforeseen' or both, got none")
    dataset = _as_dataset(dataset)
    if aggregate not in (None, "subject"):
        raise ConfigError(f"aggregate must be None or 'subject', got {aggregate!r}")

    item_ids = np.asarray(dataset.ids, dtype=object)
    subjects = pd.unique(pd.Series(item_ids, dtype=object)).astype(object)
    n_group = int(round(fraction * len(subjects)))
    if n_group < 2 or len(subjects) - n_group < 2:
        raise DataError(f"a hidden group of {fraction:.0%} of {len(subjects)} subjects has "
                        f"{n_group}; sensitivity needs at least 2 subjects in and out of it")
    if column in dataset.metadata.columns:
        raise ConfigError(f"column {column!r} is already in the metadata; pass another "
                          f"column= for the hidden group")
    clean = embed(encoder, dataset, batch_size=batch_size, device=device,
                  aggregate=aggregate, verbose=False)
    metadata = clean.metadata.reset_index(drop=True)
    row_ids = np.asarray(clean.ids, dtype=object)
    z_clean = np.asarray(clean.z, dtype=np.float32)

    seeds = _seed_sequence(random_state).spawn(int(repeats))
    runs = []
    for repeat, seed in enumerate(seeds):
        rng = np.random.default_rng(seed)
        chosen = rng.choice(len(subjects), n_group, replace=False)
        in_group = np.isin(row_ids, subjects[chosen])
        positions = np.flatnonzero(np.isin(item_ids, subjects[chosen]))
        artefact_seed = int(rng.integers(2**62))
        audit_seed = int(rng.integers(2**31 - 1))
        for strength in strengths:
            started = time.perf_counter()
            z = z_clean
            if strength > 0:
                planted = _Planted(dataset, positions, artefact.with_strength(strength),
                                   artefact_seed)
                part = embed(encoder, planted, batch_size=batch_size, device=device,
                             aggregate=aggregate, verbose=False)
                z = z_clean.copy()
                z[_rows_of(part, row_ids, positions, aggregate)] = np.asarray(part.z)
            run = {"repeat": repeat, "strength": strength, "n": len(z),
                   "n_group": int(in_group.sum())}
            if "known" in regimes:
                run.update(_known_regime(z, metadata, in_group, column, column_role,
                                         template, audit_seed, known_q_threshold))
            if "unforeseen" in regimes:
                run.update(_unforeseen_regime(z, metadata, in_group, template, audit_seed,
                                              min_f1))
            run["seconds"] = time.perf_counter() - started
            runs.append(run)
            if verbose:
                logger.info("repeat %d strength %g: known q %.3g (AUC %.3f), unforeseen F1 "
                            "%.2f (%s)", repeat, strength, run["known_q"], run["probe_auc"],
                            run["unforeseen_f1"], run["unforeseen_output"])
    settings = {"fraction": fraction, "repeats": int(repeats), "strengths": strengths,
                "regimes": regimes,
                "known_q_threshold": known_q_threshold, "min_f1": min_f1, "column": column,
                "column_role": column_role,
                "audit": template.get_params(), "encoder": type(encoder).__name__,
                "aggregate": aggregate}
    table = pd.DataFrame(runs, columns=RUN_COLUMNS)
    for name in ("known_significant", "known_found", "unforeseen_found"):
        table[name] = table[name].fillna(0).astype(bool)  # regimes not run: False
    return SensitivityResult(table, artefact, settings, embeddings=clean)


# -- the two regimes ----------------------------------------------------------------------------
def _fitted(template, audit_seed: int, z, metadata):
    from sklearn.base import clone

    auditor = clone(template)
    if auditor.random_state is None:
        auditor.set_params(random_state=audit_seed)
    return auditor.fit(z, metadata)


def _known_regime(z, metadata, in_group, column, role, template, audit_seed,
                  threshold) -> dict:
    from sklearn.base import clone

    table = metadata.copy()
    table[column] = np.where(in_group, "yes", "no")
    if role == "nuisance":
        template = clone(template)
        nuisance = template.nuisance
        nuisance = [nuisance] if isinstance(nuisance, str) else list(nuisance or [])
        template.set_params(nuisance=[*nuisance, column])
    auditor = _fitted(template, audit_seed, z, table)
    findings = auditor.findings_
    on_column = np.flatnonzero(findings["column"].to_numpy() == column)
    if on_column.size:
        q = float(findings["q_value"].iloc[on_column].min())
        rank = int(on_column[0]) + 1
    else:
        q, rank = 1.0, 0
    return {"known_q": q, "known_rank": rank, "known_significant": q <= auditor.alpha,
            "known_found": q < threshold,
            "probe_auc": _probe_auc(z, in_group, auditor.analysis_components, audit_seed)}


def _probe_auc(z, in_group, n_components, seed) -> float:
    """Out-of-fold AUC of a logistic probe of membership, in a PCA space like the audit's."""
    from sklearn.decomposition import PCA
    from sklearn.metrics import roc_auc_score

    from ..audit._probes import out_of_fold

    x = np.asarray(z, dtype=np.float64)
    if n_components is not None and n_components < min(x.shape):
        x = PCA(n_components=n_components, random_state=seed).fit_transform(x)
    target = in_group.astype(np.int64)
    probabilities = out_of_fold(x, target, "categorical", cv=5, random_state=seed,
                                method="predict_proba")
    return float(roc_auc_score(target, probabilities[:, 1]))


def _unforeseen_regime(z, metadata, in_group, template, audit_seed, min_f1) -> dict:
    from sklearn.metrics import adjusted_rand_score, average_precision_score

    auditor = _fitted(template, audit_seed, z, metadata)
    k = int(in_group.sum())
    sets = {}
    for label in np.unique(auditor.labels_):
        name = "unclustered" if label == -1 else f"cluster {int(label)}"
        sets[name] = auditor.labels_ == label
    outliers = auditor.outliers()
    score = np.empty(len(z))
    score[outliers["index"].to_numpy()] = outliers["score"].to_numpy()
    score = np.nan_to_num(score, nan=0.0, posinf=np.finfo(np.float64).max)
    top = np.zeros(len(z), dtype=bool)
    top[outliers["index"].to_numpy()[:k]] = True
    sets["outliers (top k)"] = top
    for subgroup in auditor.subgroups_["subgroup"]:
        sets[f"subgroup {int(subgroup)}"] = auditor.subgroup_labels(int(subgroup))
    best = {"unforeseen_output": "", "unforeseen_f1": 0.0, "unforeseen_precision": 0.0,
            "unforeseen_recall": 0.0, "unforeseen_ari": 0.0}
    for name, members in sets.items():
        hits = int((members & in_group).sum())
        if hits == 0:
            continue
        precision, recall = hits / int(members.sum()), hits / k
        f1 = 2 * precision * recall / (precision + recall)
        if f1 > best["unforeseen_f1"]:
            best = {"unforeseen_output": name, "unforeseen_f1": f1,
                    "unforeseen_precision": precision, "unforeseen_recall": recall,
                    "unforeseen_ari": float(adjusted_rand_score(in_group, members))}
    best["unforeseen_ap"] = float(average_precision_score(in_group, score))
    best["unforeseen_precision_at_k"] = float(in_group[top].mean())
    best["unforeseen_found"] = best["unforeseen_f1"] >= min_f1
    return best


# -- summaries ------------------------------------------------------------------------------------
def _curves(runs: pd.DataFrame) -> pd.DataFrame:
    from ..audit._stats import mean_interval, wilson_interval

    rows = []
    for strength, part in runs.groupby("strength", sort=True):
        row = {"strength": strength, "repeats": len(part)}
        for name in ("known_found", "known_significant", "unforeseen_found"):
            hits = int(part[name].sum())
            low, high = wilson_interval(hits, len(part))
            stem = name.removesuffix("_found")
            row.update({f"{stem}_rate": hits / len(part), f"{stem}_low": low,
                        f"{stem}_high": high})
        for name in ("probe_auc", "unforeseen_f1"):
            values = part[name].to_numpy(dtype=np.float64)
            low, high = mean_interval(values) if np.isfinite(values).all() else (np.nan,
                                                                                 np.nan)
            row.update({name: values.mean(), f"{name}_low": low, f"{name}_high": high})
        row["known_q_median"] = float(part["known_q"].median())
        rows.append(row)
    return pd.DataFrame(rows)


def _detection_limits(runs: pd.DataFrame, settings: dict) -> pd.DataFrame:
    rows = []
    criteria = {"known": f"q < {settings['known_q_threshold']:g} on the group's column",
                "unforeseen": f"an audit output with F1 >= {settings['min_f1']:g}"}
    planted = runs[runs["strength"] > 0]
    for regime, criterion in criteria.items():
        if regime not in settings.get("regimes", criteria):
            continue
        limits = []
        for _, part in planted.groupby("repeat", sort=True):
            hits = part.loc[part[f"{regime}_found"].astype(bool), "strength"]
            limits.append(float(hits.min()) if len(hits) else math.inf)
        limits = np.asarray(limits, dtype=np.float64)
        found_in = int(np.isfinite(limits).sum())
        limit = float(np.median(limits)) if limits.size else math.inf
        rows.append({"regime": regime, "criterion": criterion, "limit": limit,
                     "low": float(limits.min()) if limits.size else math.inf,
                     "high": float(limits.max()) if limits.size else math.inf,
                     "found_in": found_in, "repeats": int(limits.size)})
    return pd.DataFrame(rows)


# -- inputs ---------------------------------------------------------------------------------------
def _check_artefact(artefact) -> Artefact:
    if isinstance(artefact, str):
        return get_artefact(artefact)
    if isinstance(artefact, type) and issubclass(artefact, Artefact):
        return artefact()
    if not isinstance(artefact, Artefact):
        raise InputTypeError(f"artefact must be an artefact of latentaudit.artefacts or its "
                             f"name, got {type(artefact).__name__}")
    return artefact


def _check_strengths(strengths) -> tuple[float, ...]:
    try:
        values = [float(s) for s in strengths]
    except (TypeError, ValueError):
        raise ConfigError(f"strengths must be numbers in [0, 1], got {strengths!r}") from None
    if not values or any(not 0.0 <= s <= 1.0 for s in values):
        raise ConfigError(f"strengths must be numbers in [0, 1], got {strengths!r}")
    return tuple(sorted(set(values)))


def _check_number(name, value, low, high, *, low_open=False) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) \
        and (low < value if low_open else low <= value) and value <= high
    if not ok:
        bracket = "(" if low_open else "["
        raise ConfigError(f"{name} must be a number in {bracket}{low}, {high}], got {value!r}")
    return float(value)


def _auditor(audit):
    from ..audit import ClusterAuditor

    if audit is None:
        return ClusterAuditor()
    if isinstance(audit, Mapping):
        try:
            return ClusterAuditor(**dict(audit))
        except TypeError as err:
            raise ConfigError(f"audit options: {err}") from None
    if isinstance(audit, ClusterAuditor):
        if hasattr(audit, "labels_"):
            logger.info("the fitted ClusterAuditor passed as audit= is cloned unfitted")
        return audit
    raise InputTypeError(f"audit must be a ClusterAuditor, a dict of its parameters or None, "
                         f"got {type(audit).__name__}")


def _as_dataset(dataset):
    if isinstance(dataset, ImageDataset):
        return dataset
    if isinstance(dataset, np.ndarray):
        return ArrayDataset(dataset)
    raise InputTypeError(f"dataset must be a latentaudit ImageDataset or a NumPy array of "
                         f"images, got {type(dataset).__name__}")


def _seed_sequence(random_state) -> np.random.SeedSequence:
    if isinstance(random_state, np.random.SeedSequence):
        return random_state
    if isinstance(random_state, np.random.Generator):
        return np.random.SeedSequence(int(random_state.integers(2**63)))
    if isinstance(random_state, np.random.RandomState):
        return np.random.SeedSequence(int(random_state.randint(2**31 - 1)))
    if random_state is None or (isinstance(random_state, numbers.Integral)
                                and not isinstance(random_state, bool) and random_state >= 0):
        return np.random.SeedSequence(random_state)
    raise ConfigError(f"random_state must be None, a non-negative int or a NumPy Generator, "
                      f"got {random_state!r}")


def _rows_of(part, row_ids, positions, aggregate) -> np.ndarray:
    """Rows of the clean embedding that the planted part's rows replace."""
    if aggregate is None:
        return positions
    where = {identifier: row for row, identifier in enumerate(row_ids)}
    return np.array([where[identifier] for identifier in part.ids], dtype=np.int64)


class _Planted(ImageDataset):
    """Items ``positions`` of ``dataset`` with the artefact planted (seeded per item, so
    every strength of the ladder grows the same draw)."""

    def __init__(self, dataset: ImageDataset, positions, artefact: Artefact,
                 seed: int) -> None:
        super().__init__()
        self.spatial_dims = dataset.spatial_dims
        self.id_column = dataset.id_column
        self._source = dataset
        self._positions = np.asarray(positions, dtype=np.int64)
        self._artefact = artefact
        self._seed = int(seed)
        self._ids = np.asarray(dataset.ids, dtype=object)[self._positions]
        self._slice_index = np.asarray(dataset.slice_index)[self._positions]
        self._metadata = dataset.metadata.iloc[self._positions].reset_index(drop=True)

    def __len__(self) -> int:
        return len(self._positions)

    @property
    def image_shape(self):
        return self._source.image_shape

    def load_image(self, index: int) -> np.ndarray:
        position = int(self._positions[index])
        image = np.asarray(self._source.load_image(position), dtype=np.float32)
        planted, _ = self._artefact(image, random_state=[self._seed, position],
                                    spatial_dims=self.spatial_dims)
        return planted
