"""Tests of the Hessian-penalty estimator (Peebles et al., ECCV 2020)."""

from __future__ import annotations

import pytest
import torch
from torch.autograd.functional import hessian

from latentaudit.encoders import hessian_penalty
from latentaudit.errors import ConfigError, InputShapeError


def _quadratic(n_outputs=3, dim=4, seed=0):
    """G_o(z) = z' A_o z + b_o' z with symmetric A_o, so the Hessian of output o is 2 A_o."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n_outputs, dim, dim, generator=g, dtype=torch.float64)
    a = (a + a.transpose(1, 2)) / 2
    b = torch.randn(n_outputs, dim, generator=g, dtype=torch.float64)

    def G(z):
        return torch.einsum("ni,oij,nj->no", z, a, z) + z @ b.T

    return G, a


def _exact_hessians(G, z0, n_outputs):
    return [hessian(lambda z, o=o: G(z[None])[0, o], z0) for o in range(n_outputs)]


def _off_diagonal_energy(H):
    """2 * sum_{i != j} H_ij^2: the expected value of the estimator for one output."""
    off = H - torch.diag(torch.diag(H))
    return 2 * (off ** 2).sum()


def test_exact_for_quadratic_functions_against_autograd_hessian():
    G, a = _quadratic()
    z0 = torch.randn(4, dtype=torch.float64)
    hessians = _exact_hessians(G, z0, 3)
    for o, H in enumerate(hessians):
        assert torch.allclose(H, 2 * a[o])
    g = torch.Generator().manual_seed(1)
    directions = torch.randint(0, 2, (5, 1, 4), generator=g).double() * 2 - 1
    got = hessian_penalty(G, z0[None], epsilon=0.3, reduction="none", directions=directions)
    assert got.shape == (1, 3)
    for o, H in enumerate(hessians):
        quad = torch.stack([v[0] @ H @ v[0] for v in directions])
        assert got[0, o].item() == pytest.approx(quad.var(correction=1).item(), rel=1e-9)


def test_known_off_diagonal_terms_give_the_expected_mean():
    # G(z) = a z1 z2 + b z2 z3 + c z3^2: H_12 = a, H_23 = b, H_33 = 2c (diagonal).
    coef_a, coef_b, coef_c = 1.5, -0.5, 3.0

    def G(z):
        return (coef_a * z[:, 0] * z[:, 1] + coef_b * z[:, 1] * z[:, 2]
                + coef_c * z[:, 2] ** 2)[:, None]

    expected = 4 * (coef_a ** 2 + coef_b ** 2)
    z0 = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
    H = hessian(lambda z: G(z[None])[0, 0], z0)
    assert _off_diagonal_energy(H).item() == pytest.approx(expected)
    draws = 20_000
    g = torch.Generator().manual_seed(0)
    per_draw = hessian_penalty(G, z0.repeat(draws, 1), reduction="none", generator=g)
    assert per_draw.mean().item() == pytest.approx(expected, rel=0.05)
    # Independent draws of a constant function of z: a mean far from 0 each time.
    assert per_draw.std().item() > 0


def test_mean_over_draws_matches_exact_hessian_for_a_smooth_function():
    def G(z):
        return torch.stack([torch.sin(z[:, 0]) * z[:, 1] + torch.exp(0.5 * z[:, 2]) * z[:, 0],
                            z[:, 1] * z[:, 2] * z[:, 3]], dim=1)

    z0 = torch.tensor([0.4, -0.7, 0.2, 1.1], dtype=torch.float64)
    expected = torch.stack([_off_diagonal_energy(H) for H in _exact_hessians(G, z0, 2)])
    g = torch.Generator().manual_seed(0)
    per_draw = hessian_penalty(G, z0.repeat(20_000, 1), epsilon=0.01, reduction="none",
                               generator=g)
    assert torch.allclose(per_draw.mean(0), expected, rtol=0.05)


def test_diagonal_hessian_gives_zero():
    def separable(z):
        return torch.stack([(z ** 2).sum(1), (3 * z[:, 0] ** 2 - z[:, 1] ** 2)], dim=1)

    z = torch.randn(8, 5, dtype=torch.float64)
    assert hessian_penalty(separable, z, k=4).item() == pytest.approx(0.0, abs=1e-9)


def test_reductions_and_shapes():
    G, _ = _quadratic()
    z = torch.randn(6, 4, dtype=torch.float64)
    g = torch.Generator()
    per_output = hessian_penalty(G, z, reduction="none", generator=g.manual_seed(3))
    assert per_output.shape == (6, 3)
    top = hessian_penalty(G, z, reduction="max", generator=g.manual_seed(3))
    mean = hessian_penalty(G, z, reduction="mean", generator=g.manual_seed(3))
    assert top.item() == pytest.approx(per_output.max().item())
    assert mean.item() == pytest.approx(per_output.mean().item())
    assert top.item() > mean.item() > 0


def test_precomputed_G_z_gives_the_same_value():
    G, _ = _quadratic()
    z = torch.randn(3, 4, dtype=torch.float64)
    directions = torch.randint(0, 2, (2, 3, 4)).double() * 2 - 1
    a = hessian_penalty(G, z, directions=directions)
    b = hessian_penalty(G, z, directions=directions, G_z=G(z))
    assert a.item() == pytest.approx(b.item(), rel=1e-12)


def test_gradient_reaches_the_generator_and_disentangles():
    torch.manual_seed(0)
    mix = torch.nn.Parameter(torch.randn(3, 3))

    def G(z):  # a bilinear coupling z' M z whose off-diagonal part the penalty shrinks
        return torch.einsum("ni,ij,nj->n", z, mix, z)[:, None]

    optimizer = torch.optim.SGD([mix], lr=0.01)
    z = torch.randn(64, 3)
    first = None
    for _ in range(200):
        penalty = hessian_penalty(G, z, k=4, reduction="mean")
        first = penalty.item() if first is None else first
        optimizer.zero_grad()
        penalty.backward()
        optimizer.step()
    symmetric = (mix + mix.T).detach() / 2
    off = symmetric - torch.diag(torch.diag(symmetric))
    assert penalty.item() < 0.01 * first
    assert off.abs().max().item() < 0.05


def test_autocast_is_disabled_inside():
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 4)

    def G(z):
        return layer(z) * layer(z)

    z = torch.randn(5, 4)
    directions = torch.randint(0, 2, (2, 5, 4)).float() * 2 - 1
    reference = hessian_penalty(G, z, directions=directions)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = hessian_penalty(G, z, directions=directions)
    assert inside.dtype == torch.float32
    assert inside.item() == pytest.approx(reference.item(), rel=1e-5)


def test_invalid_arguments():
    G, _ = _quadratic()
    z = torch.randn(2, 4, dtype=torch.float64)
    with pytest.raises(ConfigError, match="k must be"):
        hessian_penalty(G, z, k=1)
    with pytest.raises(ConfigError, match="epsilon"):
        hessian_penalty(G, z, epsilon=0.0)
    with pytest.raises(ConfigError, match="did you mean 'mean'"):
        hessian_penalty(G, z, reduction="maen")
    with pytest.raises(InputShapeError, match="directions"):
        hessian_penalty(G, z, directions=torch.ones(2, 2, 3))
    with pytest.raises(InputShapeError, match="one output per latent"):
        hessian_penalty(lambda x: x[:1], z)
