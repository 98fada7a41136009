"""Options of the audit (by section, with their defaults) and checks of the metadata."""

from __future__ import annotations

import copy
from collections.abc import Mapping

import pandas as pd

from .._metadata import check_metadata
from ..errors import ConfigError
from ..options import AUDIT_SECTIONS, OPTIONS
from ..utils import check_option

__all__ = ["AUDIT_DEFAULTS", "auditor_params", "check_audit_options", "check_metadata",
           "merge_options"]

#: Options of :func:`run_audit` and :func:`run_explain`, by section, with their defaults.
#: ``None`` means "decided from the data" (see :func:`run_audit`).  Their types and ranges
#: are those of :data:`latentaudit.options.OPTIONS`, which checks them.
AUDIT_DEFAULTS: dict = OPTIONS.defaults(AUDIT_SECTIONS)



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


def auditor_params(audit: Mapping) -> dict:
    """The :class:`~latentaudit.ClusterAuditor` parameters of a checked ``audit`` section.

    Parameters
    ----------
    audit : mapping
        The ``"audit"`` section of :func:`check_audit_options`'s result.

    Returns
    -------
    dict

    Examples
    --------
    >>> params = auditor_params(check_audit_options({"audit": {"alpha": 0.1}})["audit"])
    >>> params["alpha"], params["clusterer"]
    (0.1, 'hdbscan')
    """
    return {"clusterer": audit["clusterer"], "n_clusters": audit["n_clusters"],
            "min_cluster_size": audit["min_cluster_size"], "columns": audit["columns"],
            "expected": audit["expected"], "nuisance": audit["nuisance"],
            "within": audit["within"], "n_permutations": int(audit["n_permutations"]),
            "alpha": float(audit["alpha"])}


# --------------------------------------------------------------------------------------
# metadata checks
# --------------------------------------------------------------------------------------

