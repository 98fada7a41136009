"""The auditor's analysis space: the embedding reduced by PCA, where clusters, probes and
label issues are computed."""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA

__all__: list[str] = []


class _AnalysisSpace:
    """:class:`~latentaudit.audit.ClusterAuditor`'s PCA-reduced analysis space."""

    def _fit_projection(self, z: np.ndarray, seed: int) -> None:
        n, d = z.shape
        full = min(n, d)
        analysis = self.n_components if self.n_components and self.n_components < full else None
        clustering = self.cluster_components
        if not clustering or clustering >= (analysis or d):
            clustering = None
        self._pca_mean = self._pca_components = None
        self.explained_variance_ratio_ = None
        self._reduced = z
        self._cluster_space = None
        if analysis is None and clustering is None:
            return
        pca = PCA(n_components=int(max(analysis or 0, clustering or 0)), random_state=seed)
        pca.fit(z)
        components = pca.components_.astype(np.float32)
        mean = pca.mean_.astype(np.float32)
        scores = ((z - mean) @ components.T).astype(np.float32)
        if analysis is not None:
            self._pca_mean, self._pca_components = mean, components
            self.explained_variance_ratio_ = pca.explained_variance_ratio_
            self._reduced = np.ascontiguousarray(scores)
        if clustering is not None:
            self._cluster_space = np.ascontiguousarray(scores[:, : int(clustering)])

    def _project(self, z: np.ndarray) -> np.ndarray:
        if self._pca_components is None:
            return z
        return ((z - self._pca_mean) @ self._pca_components.T).astype(np.float32)

