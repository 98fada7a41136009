"""The auditor's analysis space: the embedding reduced by PCA, where clusters, probes and
label issues are computed.

The PCA is computed from block-wise sums (:class:`latentaudit._streaming.StreamingPCA`),
so that a memory-mapped embedding of a million rows is read, never copied."""

from __future__ import annotations

import numpy as np

from .._streaming import StreamingPCA, project_rows

__all__: list[str] = []


class _AnalysisSpace:
    """:class:`~latentaudit.audit.ClusterAuditor`'s PCA-reduced analysis space."""

    def _fit_projection(self, z: np.ndarray, seed: int) -> np.ndarray:
        """Fit the analysis space; return the space the clustering sees."""
        n, d = z.shape
        full = min(n, d)
        analysis = self.analysis_components
        if not analysis or analysis >= full:
            analysis = None
        clustering = self.cluster_components
        if not clustering or clustering >= (analysis or d):
            clustering = None
        self.pca_mean_ = self.pca_components_ = None
        self.explained_variance_ratio_ = None
        self.reduced_ = z
        if analysis is None and clustering is None:
            return self.reduced_
        pca = StreamingPCA(int(max(analysis or 0, clustering or 0))).fit(z)
        components = pca.components_.astype(np.float32)
        mean = pca.mean_.astype(np.float32)
        scores = pca.transform(z)
        if analysis is not None:
            self.pca_mean_, self.pca_components_ = mean, components
            self.explained_variance_ratio_ = pca.explained_variance_ratio_
            self.reduced_ = np.ascontiguousarray(scores)
        if clustering is None:
            return self.reduced_
        return np.ascontiguousarray(scores[:, : int(clustering)])

    def _project(self, z: np.ndarray) -> np.ndarray:
        if self.pca_components_ is None:
            return z
        return project_rows(z, self.pca_mean_, self.pca_components_)

