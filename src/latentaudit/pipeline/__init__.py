"""The whole audit in one call: embeddings (plus, optionally, their images and a generative
encoder) in, an :class:`~latentaudit.report.AuditReport` out.

:func:`run_audit` ties the layers together the way the paper uses them: project the
embeddings and colour the map by every metadata column; cluster and test the clusters
against the metadata (:class:`~latentaudit.audit.ClusterAuditor`); probe the columns;
list the subjects whose labels disagree with their neighbours; and, with images, show
what sets the unexpected clusters apart (mean and difference images, a classifier's
Grad-CAM maps, decoded counterfactuals).  :func:`run_explain` does the last part for a
delineation made elsewhere.  Both are thin orchestration: they fit the estimators and
hand them to :meth:`AuditReport.from_fitted <latentaudit.report.AuditReport.from_fitted>`,
which makes the same report from objects fitted in a notebook.  Every step that cannot run
on what was given, or fails, is reported as such in its section, never filled with
something else.

:func:`sensitivity` measures how weak an artefact the audit, as configured, still finds:
it plants one of :mod:`latentaudit.artefacts` in a hidden group of the user's own images
at a ladder of strengths and scores the audit's output against the planted truth.
"""

from ._options import (
    AUDIT_DEFAULTS,
    auditor_params,
    check_audit_options,
    check_metadata,
    merge_options,
)
from ._run import _row_images, run_audit, run_explain  # noqa: F401  (_row_images: the tests')
from ._sensitivity import DEFAULT_STRENGTHS, SensitivityResult, sensitivity

__all__ = ["AUDIT_DEFAULTS", "DEFAULT_STRENGTHS", "SensitivityResult", "auditor_params",
           "check_audit_options", "check_metadata", "merge_options", "run_audit",
           "run_explain", "sensitivity"]
