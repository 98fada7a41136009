"""latentaudit.data.image_statistics: cheap per-image statistics, 2-D and 3-D."""

import numpy as np
import pytest

from latentaudit.data import RowImages, image_statistics
from latentaudit.errors import InputShapeError


@pytest.mark.parametrize("spatial", [(16, 16), (8, 8, 8)])
def test_each_statistic_follows_what_it_measures(spatial):
    rng = np.random.default_rng(0)
    grid = np.meshgrid(*(np.linspace(-1, 1, size) for size in spatial), indexing="ij")
    blob = 0.5 * np.exp(-sum(g * g for g in grid) / 0.5)  # a smooth bright 'head'
    base = np.broadcast_to(blob, (6, 1, *spatial))
    images = base + rng.normal(0.0, 0.02, base.shape)
    images[1] *= 0.5                                              # gain
    images[2] += rng.normal(0.0, 0.2, base[2].shape)              # noise
    ramp = np.linspace(-1, 1, spatial[0]).reshape(-1, *([1] * (len(spatial) - 1)))
    images[3] += 0.3 * ramp                                       # a field along axis 0
    stats = image_statistics(images)
    names = ["tilt_0", "tilt_1", "tilt_2"][: len(spatial)]
    assert list(stats.columns) == ["q05", "q25", "median", "q75", "q95", "mean", "std",
                                   "edge_energy", "noise_level", *names]
    assert stats["q95"][1] == pytest.approx(0.5 * stats["q95"][0], rel=0.15)
    assert stats["noise_level"][2] > 5 * stats["noise_level"][0]
    assert stats["edge_energy"][2] > stats["edge_energy"][0]
    assert stats["tilt_0"][3] > 0.05 > abs(stats["tilt_0"][0])
    # the same from a RowImages, in batches, and for some rows only
    rows = [3, 0, 2]
    again = image_statistics(RowImages(images.astype(np.float32)), rows, batch_size=2)
    np.testing.assert_allclose(again.to_numpy(), stats.to_numpy()[rows], rtol=1e-5, atol=1e-6)


def test_images_of_the_wrong_shape_are_refused():
    with pytest.raises(InputShapeError, match=r"\(N, C, H, W\)"):
        image_statistics(np.zeros((4, 16, 16)))
    with pytest.raises(InputShapeError, match="at least 3 pixels"):
        image_statistics(np.zeros((4, 1, 2, 16)))
