"""The Explainer's views of the clusters themselves: mean images, difference maps and
decoded counterfactuals."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import DataError
from ._counterfactual import Counterfactual, counterfactual
from ._difference import DifferenceMap, difference_map, mean_images
from ._inputs import kept_mask

__all__: list[str] = []


class _ClusterViews:
    """:class:`~latentaudit.Explainer`'s ``mean_images``, ``difference_map`` and
    ``counterfactual``."""

    def _data_and_labels(self, images, labels):
        if images is None:
            self._check_fitted()
            images = self.row_images_
            labels = self.labels_ if labels is None else labels
        elif labels is None:
            self._check_fitted()
            labels = self.predict(images)
        return images, labels

    def mean_images(self, images=None, labels=None, *, batch_size: int = 256):
        """The mean image of every cluster.

        Parameters
        ----------
        images : array-like, torch.Tensor or Dataset, optional
            Default: the images the Explainer was fitted on.
        labels : array-like, optional
            One label per image (-1 is left out); default the labels given to ``fit``
            (for the fitted images) or the classifier's predictions (for new images).
        batch_size : int, default 256
            Images read at a time.

        Returns
        -------
        classes : numpy.ndarray
            The sorted labels.
        means : numpy.ndarray
            float32 ``(n_classes, C, *spatial)``.

        See Also
        --------
        latentaudit.explain.mean_images : the same without an Explainer.
        """
        images, labels = self._data_and_labels(images, labels)
        return mean_images(images, labels, batch_size=batch_size)

    def difference_map(self, source, target=None, *, images=None, labels=None,
                       test: str = "welch", alpha: float = 0.05,
                       min_difference: float = 0.0, n_permutations: int = 1000,
                       batch_size: int = 256) -> DifferenceMap:
        """Voxel-wise difference between two clusters' mean images, with the voxels that
        differ significantly (Welch or permutation tests, Benjamini-Hochberg FDR).

        Parameters
        ----------
        source : object
            The first cluster's label.
        target : object, optional
            The second cluster's label; default every other cluster.
        images, labels : optional
            As in :meth:`mean_images`.
        test : {"welch", "permutation"}, default "welch"
            The per-voxel test.
        alpha : float, default 0.05
            False discovery rate of the significance mask.
        min_difference : float, default 0.0
            Also require ``|difference| >= min_difference`` for a marked voxel.
        n_permutations : int, default 1000
            Shuffles of the permutation test (seeded by ``random_state``).
        batch_size : int, default 256
            Images read at a time.

        Returns
        -------
        DifferenceMap

        See Also
        --------
        latentaudit.explain.difference_map : the same without an Explainer.
        """
        images, labels = self._data_and_labels(images, labels)
        return difference_map(images, labels, source, target, test=test, alpha=alpha,
                              min_difference=min_difference, n_permutations=n_permutations,
                              random_state=self.random_state, batch_size=batch_size)

    def counterfactual(self, encoder, images, source, target, *, n_points: int = 5,
                       direction: str = "centroid", embeddings=None, labels=None,
                       scale: float = 1.0, steps: int | None = None,
                       batch_size: int = 32) -> Counterfactual:
        """Decode images moved in ``encoder``'s latent space from cluster ``source``
        toward cluster ``target``.

        The move is the difference of the two clusters' mean embeddings (``"centroid"``)
        or a linear probe's normal (``"probe"``), computed from ``embeddings`` and
        ``labels`` when given, otherwise from the :class:`~latentaudit.Embeddings` ``fit``
        was given when they are in the encoder's latent space, otherwise by encoding the
        images the Explainer was fitted on (only those of the two clusters).  Each image
        decodes with its own codes from ``encoder.invert`` (a Diffusion Autoencoder's
        stochastic code), so the subject stays recognisable.  See
        :func:`latentaudit.explain.counterfactual`.

        Parameters
        ----------
        encoder : GenerativeEncoder
            With ``encode``, ``invert`` and ``decode`` (``DAEEncoder``,
            ``BetaVAEEncoder``, ...).
        images : array-like, torch.Tensor, Dataset or Embeddings
            ``(N, C, *spatial)`` images to move (an Embeddings: its images).
        source, target : object
            Cluster labels (as given to ``fit``).
        n_points : int, default 5
            Decoded images per input (points along the move), the unmoved one included.
        direction : {"centroid", "probe"} or array-like, default "centroid"
            How to move, or the ``(latent_dim,)`` move itself.
        embeddings, labels : array-like, optional
            Embeddings (from ``encoder``) and their cluster labels to compute the move
            from.
        scale : float, default 1.0
            How far to go, in units of the centroid gap.
        steps : int, optional
            Passed to ``invert`` and ``decode`` (a Diffusion Autoencoder's DDIM steps;
            one-pass decoders ignore it).
        batch_size : int, default 32
            Images per encode/decode call.

        Returns
        -------
        Counterfactual
            ``images`` ``(N, n_points, C, *spatial)``, ``difference`` (last minus first
            step), ``latents``, ``alphas`` and ``direction``.

        Raises
        ------
        NotFittedError
            Before :meth:`fit`, when the fitted images are needed.
        TypeError
            (as :class:`latentaudit.errors.InputTypeError`) for an encoder that cannot
            decode.
        """
        if isinstance(direction, str) and (embeddings is None or labels is None):
            self._check_fitted()
            fitted = self.labels_
            keep = kept_mask(fitted)
            for name, value in (("source", source), ("target", target)):
                if not np.any(keep & (fitted == value)):
                    raise DataError(f"no fitted image has the {name} label {value!r}; "
                                    f"labels: {sorted(set(fitted[keep].tolist()), key=str)}")
            positions = np.flatnonzero(keep & ((fitted == source) | (fitted == target)))
            given = self.embeddings_
            if given is not None and given.latent_dim == int(getattr(encoder, "latent_dim", -1)):
                # the embeddings fit was given are the encoder's: no image is encoded again
                embeddings = np.asarray(given.z[positions], dtype=np.float32)
            else:
                chunks = []
                with torch.no_grad():
                    for _, batch in self.row_images_.batches(positions, batch_size):
                        z = encoder.encode(torch.from_numpy(batch))
                        chunks.append(torch.as_tensor(z).detach().float().cpu().numpy())
                embeddings = np.concatenate(chunks)
            labels = fitted[positions]
        return counterfactual(encoder, images, source, target, embeddings=embeddings,
                              labels=labels, direction=direction, n_points=n_points, scale=scale,
                              steps=steps, batch_size=batch_size,
                              random_state=self.random_state, verbose=self.verbose)

