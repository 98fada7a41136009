"""The training steps of StyleGAN2 for the shared training loop: the GAN step (generator,
lazy path-length regularisation, discriminator, lazy R1, adaptive augmentation) and the
inverter's step through the frozen generator.

Each takes the loop's step context ``ctx`` (``ctx.generator``, ``ctx.autocast()``,
``ctx.backward(loss)``, ``ctx.step(name)``, ``ctx.world_size``); every random draw comes
from ``ctx.generator``.
"""

from __future__ import annotations

import torch

from ...data import item_image
from ...training import batch_rand, batch_randn
from .augment import augment
from .inversion import reconstruction_loss
from .losses import discriminator_loss, generator_loss, path_length_penalty, r1_penalty

__all__ = ["gan_step", "inversion_step", "optimizer_settings", "training_ws"]


def optimizer_settings(lr: float, betas: tuple[float, float], interval: int | None
                       ) -> dict:
    """Adam's learning rate and betas for a network regularised lazily every ``interval``
    steps: the paper multiplies both by ``c = interval / (interval + 1)`` (betas to the
    power ``c``), since the regularisation steps add to the optimiser's steps.

    Parameters
    ----------
    lr : float
        Learning rate.
    betas : (float, float)
        Adam's betas.
    interval : int or None
        Steps between regularisation steps (None: no lazy regularisation).

    Returns
    -------
    dict
        ``{"lr": ..., "betas": ...}``.

    Examples
    --------
    >>> from latentaudit.encoders.stylegan2.steps import optimizer_settings
    >>> optimizer_settings(0.002, (0.0, 0.99), 16)["lr"]
    0.0018823529411764706
    """
    c = 1.0 if not interval else interval / (interval + 1)
    return {"lr": lr * c, "betas": (betas[0] ** c, betas[1] ** c)}


def training_ws(model, n: int, generator: torch.Generator, device,
                update_w_avg: bool = False) -> torch.Tensor:
    """``ws`` for ``n`` training images: random ``z``, and with probability
    ``style_mixing_prob`` per image a second ``z`` from a random layer on.

    Parameters
    ----------
    model : StyleGAN2Encoder
        The model.
    n : int
        Number of images.
    generator : torch.Generator
        Source of the draws.
    device : torch.device
        Where the result goes.
    update_w_avg : bool, default False
        Fold the batch's ``w`` into the generator's running mean.

    Returns
    -------
    torch.Tensor
        ``(n, num_ws, latent_dim)``.
    """
    gen_net = model.generator
    z_dim, num_ws = gen_net.z_dim, gen_net.num_ws
    z = batch_randn((n, z_dim), generator=generator, device=device)
    mix_z = batch_randn((n, z_dim), generator=generator, device=device)
    mixed = batch_rand((n,), generator=generator, device=device) < model.config.style_mixing_prob
    cutoff = 1 + (batch_rand((n,), generator=generator, device=device) * (num_ws - 1)
                  ).long().clamp_max(num_ws - 2)
    cutoff = torch.where(mixed, cutoff, torch.full_like(cutoff, num_ws))
    return gen_net.ws(z, mix_z=mix_z, mix_cutoff=cutoff, update_w_avg=update_w_avg)


def _noise(model, n: int, generator: torch.Generator, device) -> list[torch.Tensor]:
    # per-sample draws, so that a distributed run draws what a one-process run does
    return [batch_randn((n, 1, *shape), generator=generator, device=device)
            for shape in model.generator.synthesis.noise_shapes]


def _fakes(model, n: int, generator: torch.Generator, device, update_w_avg: bool = False
           ) -> torch.Tensor:
    ws = training_ws(model, n, generator, device, update_w_avg)
    return model.generator.synthesis(ws, _noise(model, n, generator, device))


def _update_ada(model, real_logits: torch.Tensor, step: int, ctx) -> None:
    cfg = model.config
    if cfg.ada_target is None or not cfg.augment:
        return
    model.ada_stats.add_(torch.stack([real_logits.detach().float().sign().sum(),
                                      torch.tensor(float(len(real_logits)),
                                                   device=real_logits.device)]))
    if (step + 1) % cfg.ada_interval:
        return
    stats = model.ada_stats.clone()
    if getattr(ctx, "world_size", 1) > 1:
        torch.distributed.all_reduce(stats)
    r_t = stats[0] / stats[1].clamp_min(1.0)
    adjust = torch.sign(r_t - cfg.ada_target) * stats[1] / (cfg.ada_kimg * 1000.0)
    model.augment_p.copy_((model.augment_p + adjust).clamp(0.0, 1.0))
    model.ada_stats.zero_()


def gan_step(model, batch, step: int, ctx) -> dict[str, float]:
    """One step of GAN training (see :class:`StyleGAN2Encoder`).

    In order: a batch of images is generated (style mixing, random noise); the
    discriminator's logistic loss on them (detached) and on the real images, and its
    optimiser step; every ``r1_interval`` steps the R1 penalty on the real images and
    another discriminator step; the generator's non-saturating loss on the same generated
    images through the updated discriminator (whose weights are frozen for it) and the
    generator's step; every ``path_length_interval`` steps the path-length penalty and
    another generator step; then the adaptive augmentation probability.  Lazy penalties
    are multiplied by their interval.  Generating the batch once for both players saves
    a third of the generator's forward passes against the reference implementation,
    which draws a second batch for the discriminator.

    Parameters
    ----------
    model : StyleGAN2Encoder
        The model.
    batch : torch.Tensor
        Real images, on the training device.
    step : int
        Optimiser steps done so far.
    ctx : step context
        The loop's.

    Returns
    -------
    dict of float
        ``loss`` (the value of the game, ``loss_d + loss_g``: it fills the history's
        loss column but, unlike a single model's loss, need not fall as training goes
        well), ``loss_g``, ``loss_d``, ``r1`` (when computed), ``path_length`` (when
        computed), ``augment_p``, ``real_score`` and ``fake_score`` (mean logits).
    """
    cfg = model.config
    gen_net, disc = model.generator, model.discriminator
    real = item_image(batch)
    n, device, rng = len(real), real.device, ctx.generator
    p = float(model.augment_p)

    def d_logits(images):
        return disc(augment(images, p, cfg.augment, generator=rng))

    with ctx.autocast():
        fake = _fakes(model, n, rng, device, update_w_avg=True)
        fake_logits = d_logits(fake.detach())
        real_logits = d_logits(real)
        loss_d = discriminator_loss(real_logits, fake_logits)
    ctx.backward(loss_d)
    ctx.step("discriminator")
    logs = {"loss_d": float(loss_d.detach()), "real_score": float(real_logits.detach().mean()),
            "fake_score": float(fake_logits.detach().mean())}
    if cfg.r1_gamma > 0 and step % cfg.r1_interval == 0:
        penalty, _ = r1_penalty(d_logits, real, cfg.r1_gamma)
        ctx.backward(penalty * cfg.r1_interval)
        ctx.step("discriminator")
        logs["r1"] = float(penalty.detach())

    disc.requires_grad_(False)
    try:
        with ctx.autocast():
            loss_g = generator_loss(d_logits(fake))
        ctx.backward(loss_g)
        ctx.step("generator")
        logs["loss_g"] = float(loss_g.detach())
        if cfg.path_length_weight > 0 and step % cfg.path_length_interval == 0:
            m = max(1, n // 2)
            with ctx.autocast():
                ws = training_ws(model, m, rng, device)
                images = gen_net.synthesis(ws, _noise(model, m, rng, device))
            penalty = path_length_penalty(images, ws, model.path_length_mean, generator=rng)
            ctx.backward(penalty * (cfg.path_length_weight * cfg.path_length_interval))
            ctx.step("generator")
            logs["path_length"] = float(penalty.detach())
    finally:
        disc.requires_grad_(True)
    _update_ada(model, real_logits, step, ctx)
    logs["augment_p"] = float(model.augment_p)
    logs["loss"] = logs["loss_d"] + logs["loss_g"]
    return logs


def inversion_step(model, batch, step: int, ctx) -> dict[str, float]:
    """One step of the inverter's training through the frozen generator: the
    reconstruction loss of :func:`~latentaudit.encoders.stylegan2.inversion.
    reconstruction_loss` with zero noise, then the inverter's optimiser step.

    Parameters
    ----------
    model : StyleGAN2Encoder
        The model.
    batch : dict, tuple or torch.Tensor
        Real images, on the training device.
    step : int
        Optimiser steps done so far.
    ctx : step context
        The loop's.

    Returns
    -------
    dict of float
        ``loss``, ``mse``, ``feature``, ``delta``.
    """
    real = item_image(batch)
    with ctx.autocast():
        ws = model.w_plus(real)
        noise = model.generator.make_noise(len(real), device=real.device, zero=True)
        loss, parts = reconstruction_loss(model, real, ws, noise)
        loss = loss.mean()
    ctx.backward(loss)
    ctx.step("inverter")
    return {"loss": float(loss.detach()), **{k: float(v) for k, v in parts.items()}}
