"""
Choose and train an encoder
===========================

Every audit starts from an embedding: one vector per scan.  latentaudit offers

- the **Diffusion Autoencoder** (``DAEEncoder``; shipped ``"demo"`` weights for 64x64
  images, presets ``tiny``, ``cpu64``, ``paper64``, ``paper256``, ``volume64``),
- **StyleGAN2** with an inversion encoder (``StyleGAN2Encoder``; shipped ``"demo"``
  weights for 64x64 images),
- the **β-VAE** (``BetaVAEEncoder``, optional Hessian penalty),
- **pixel PCA** (``PixelPCAEncoder``), a baseline that needs no training,
- and **your own model**: any ``torch.nn.Module`` wrapped in ``TorchEncoder``.

All of them meet the same ``Encoder`` protocol (``latent_dim``, ``spatial_dims``,
``encode``), so everything after ``la.embed`` works the same.  Only generative encoders
(``encode`` + ``invert`` + ``decode``: the DAE, StyleGAN2, the β-VAE, pixel PCA) can
decode counterfactuals and synthetic images.

Here pixel PCA, a β-VAE and a model of your own are trained briefly (seconds, on the CPU)
on 600 demo images downsampled to 32x32 and compared, with the shipped DAE, by how well a
linear probe reads the site and the sex from each embedding.
"""

# %%
# Data: 600 demo subjects at 32x32
# --------------------------------
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import latentaudit as la

torch.manual_seed(0)
cohort = la.datasets.load_demo_cohort()
rows = np.random.default_rng(0).choice(len(cohort), size=600, replace=False)
images = torch.nn.functional.avg_pool2d(torch.from_numpy(cohort.images[rows]), 2).numpy()
dataset = la.ArrayDataset(images, metadata=cohort.metadata.iloc[rows].reset_index(drop=True))
print(dataset)

# %%
# Pixel PCA: no training
# ----------------------
pca = la.PixelPCAEncoder(latent_dim=32, random_state=0).fit(dataset)

# %%
# A β-VAE, trained by latentaudit's training loop
# -----------------------------------------------
# ``fit`` is a thin call into the one training loop every encoder uses (checkpoints,
# exact resume, EMA, mixed precision: see :func:`latentaudit.training.train`).
vae = la.BetaVAEEncoder(image_size=32, channels=(16, 32, 64), latent_dim=32, beta=1.0)
vae.fit(dataset, max_steps=150, batch_size=32, lr=2e-3, random_state=0)
print(vae.history_[["step", "loss"]].tail(3).to_string(index=False))


# %%
# Your own model, through ``TorchEncoder``
# ----------------------------------------
# Here a small convolutional autoencoder trained with a plain PyTorch loop; only its
# encoder half is handed to latentaudit.  ``TorchEncoder`` finds the output size from an
# example input and pools spatial outputs to one vector per image.
class TinyAutoencoder(torch.nn.Module):
    def __init__(self, latent_dim=32):
        super().__init__()
        self.encoder = torch.nn.Sequential(
            torch.nn.Conv2d(1, 16, 4, stride=2, padding=1), torch.nn.SiLU(),
            torch.nn.Conv2d(16, 32, 4, stride=2, padding=1), torch.nn.SiLU(),
            torch.nn.Flatten(), torch.nn.Linear(32 * 8 * 8, latent_dim))
        self.decoder = torch.nn.Sequential(
            torch.nn.Linear(latent_dim, 32 * 8 * 8), torch.nn.Unflatten(1, (32, 8, 8)),
            torch.nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1), torch.nn.SiLU(),
            torch.nn.ConvTranspose2d(16, 1, 4, stride=2, padding=1), torch.nn.Tanh())

    def forward(self, x):
        return self.decoder(self.encoder(x))


model = TinyAutoencoder()
optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
x_all = torch.from_numpy(images)
for _step in range(150):
    batch = x_all[torch.randint(len(x_all), (32,))]
    loss = torch.nn.functional.mse_loss(model(batch), batch)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
print(f"own autoencoder, last loss {loss.item():.4f}")
own = la.TorchEncoder(model.encoder.eval(), input_shape=(1, 32, 32))
print(own.latent_dim, isinstance(own, la.Encoder))

# %%
# The shipped demo Diffusion Autoencoder
# --------------------------------------
# Trained on the training part of :func:`latentaudit.datasets.demo_split` at 64x64, so
# it embeds the full-resolution images.
dae = la.DAEEncoder.from_pretrained("demo")
full = la.ArrayDataset(cohort.images[rows], metadata=dataset.metadata)

# %%
# Compare the embeddings with linear probes
# -----------------------------------------
# 5-fold cross-validated accuracy of a logistic regression reading ``site`` and ``sex``.
# Sites A and D share one protocol, so about 0.75 is the ceiling for ``site``; 3% of the
# sex labels are flipped, so about 0.97 is the ceiling for ``sex``.
embeddings = {"pixel PCA": la.embed(pca, dataset), "β-VAE": la.embed(vae, dataset),
              "own model": la.embed(own, dataset), "demo DAE": la.embed(dae, full)}
probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
scores = pd.DataFrame({
    name: {column: cross_val_score(probe, emb.z, emb.metadata[column], cv=5).mean()
           for column in ("site", "sex")}
    for name, emb in embeddings.items()}).T.round(3)
print(scores.to_string())

fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
scores.plot.bar(ax=axes[0], rot=0, ylim=(0, 1), title="probe accuracy")
shown = images[:4]
recon = vae.decode(vae.encode(shown)).numpy()
strip = np.concatenate([np.concatenate(list(shown[:, 0]), axis=1),
                        np.concatenate(list(recon[:, 0]), axis=1)])
axes[1].imshow(strip, cmap="gray", vmin=-1, vmax=1)
axes[1].set_title("inputs (top), β-VAE reconstructions (bottom)")
axes[1].set_axis_off()
fig.tight_layout()
plt.show()
