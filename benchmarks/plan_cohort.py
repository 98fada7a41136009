"""Plan: a 100,000-subject cohort at 256x256 on N GPUs, from counted and measured figures.

Usage (from the repository root)::

    .venv/bin/python benchmarks/plan_cohort.py --scale-json scale_1m.json

What is counted here: the floating-point operations of one training image and of encoding
one image with the ``paper256`` Diffusion Autoencoder (and ``paper64``, to calibrate), by
``torch.utils.flop_counter`` on the meta device (no computation runs).  What is measured
elsewhere and passed in: the ``paper64`` training throughput on this machine's CPU
(``--cpu-images-per-s``, default 5.10 = 16 images / 3.139 s from docs/benchmarks.md) and
the 10^6-row analysis (``--scale-json``, written by ``benchmarks/bench_scale.py --json``).
What is assumed, and printed as such: slices per subject, epochs, the sustained bfloat16
throughput of one GPU, the data-parallel efficiency, the DDIM steps of an explanation.
"""

from __future__ import annotations

import argparse
import json

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_flops(preset: str) -> dict:
    """Operations of one training image (forward + backward of the loss) and of encoding
    one image, counted on the meta device."""
    from latentaudit import DAEEncoder

    with torch.device("meta"):
        encoder = DAEEncoder.from_preset(preset)
    size = encoder.config.image_size
    batch = 2
    x = torch.zeros(batch, 1, size, size, device="meta")
    with FlopCounterMode(display=False) as counter:
        encoder.loss(x, generator=torch.Generator()).backward()
    train = counter.get_total_flops() / batch
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        encoder._encode_batch(x)
    encode = counter.get_total_flops() / batch
    params = sum(p.numel() for p in encoder.parameters())
    return {"train": train, "encode": encode, "image_size": size, "params": params}


def duration(flops: float, flops_per_s: float) -> str:
    """The time of ``flops`` operations at ``flops_per_s``, in hours or minutes."""
    hours = flops / flops_per_s / 3600
    return f"{hours:,.1f} h" if hours >= 1 else f"{60 * hours:.1f} min"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=100_000)
    parser.add_argument("--slices", type=int, default=10,
                        help="2-D slices per subject (assumed)")
    parser.add_argument("--epochs", type=float, default=40, help="training epochs (assumed)")
    parser.add_argument("--gpus", default="1,8,32")
    parser.add_argument("--gpu-tflops", type=float, default=100.0,
                        help="sustained bf16 TFLOP/s of one GPU in training (assumed: about "
                             "a third of an A100's 312 peak, a tenth of an H100's)")
    parser.add_argument("--efficiency", type=float, default=0.9,
                        help="data-parallel efficiency on N GPUs (assumed)")
    parser.add_argument("--explain-subjects", type=int, default=1000,
                        help="subjects whose slices are inverted and decoded (assumed)")
    parser.add_argument("--ddim-steps", type=int, default=50,
                        help="DDIM steps of inversion and of decoding each (assumed)")
    # 16 images per 3.139 s step: the paper64 float32 channels-last row of
    # docs/benchmarks.md, "Diffusion Autoencoder: training step against the reference
    # implementation" (timed by a script kept outside the repository, 2 cores)
    parser.add_argument("--cpu-images-per-s", type=float, default=5.10,
                        help="measured paper64 float32 training images/s on this CPU "
                             "(docs/benchmarks.md: batch 16 in 3.139 s, 2 cores)")
    parser.add_argument("--scale-json", default=None,
                        help="bench_scale.py --json output of the 10^6 analysis")
    args = parser.parse_args()

    small, large = count_flops("paper64"), count_flops("paper256")
    cpu_flops = small["train"] * args.cpu_images_per_s
    images = args.subjects * args.slices
    train_total = large["train"] * images * args.epochs
    encode_total = large["encode"] * images
    # one DDIM step is one forward of the decoder: a training image is about three
    # forwards (forward + backward) of encoder and decoder
    decoder_forward = large["train"] / 3 - large["encode"]
    explain_total = 2 * args.ddim_steps * decoder_forward * args.explain_subjects * args.slices
    gpu = args.gpu_tflops * 1e12
    pixels = large["image_size"] ** 2

    print("Counted (torch.utils.flop_counter, meta device):")
    for name, f in (("paper64", small), ("paper256", large)):
        print(f"- {name}: {f['train'] / 1e9:.1f} GFLOP per training image, "
              f"{f['encode'] / 1e9:.2f} GFLOP to encode one image")
    print(f"Measured: paper64 trains at {args.cpu_images_per_s:.2f} images/s on 2 CPU cores, "
          f"i.e. {cpu_flops / 1e9:.0f} GFLOP/s sustained")
    print(f"Assumed: {args.slices} slices per subject ({images:,} images), "
          f"{args.epochs:g} epochs, {args.gpu_tflops:g} TFLOP/s per GPU, data-parallel "
          f"efficiency {args.efficiency:g}, {args.explain_subjects:,} subjects explained "
          f"with {args.ddim_steps} DDIM steps each way\n")
    print("| stage | where | work | 1 CPU machine (2 cores) | " + " | ".join(
        f"{n} GPU{'s' if int(n) > 1 else ''}" for n in args.gpus.split(",")) + " |")
    print("|---|---|---:|---:|" + "---:|" * len(args.gpus.split(",")))

    def row(stage, where, work, flops, parallel=True):
        cells = []
        for n in (int(n) for n in args.gpus.split(",")):
            rate = gpu * (n * args.efficiency if parallel and n > 1 else 1)
            cells.append(duration(flops, rate))
        print(f"| {stage} | {where} | {work} | {duration(flops, cpu_flops)} | "
              + " | ".join(cells) + " |")

    row("train DAE (paper256)", "GPUs, torchrun DDP", f"{images * args.epochs / 1e6:,.0f} M "
        f"images seen", train_total)
    row("embed all slices", "GPUs, torchrun embed (one shard per GPU)", f"{images:,} images",
        encode_total)
    row("invert + decode (explanations)", "GPUs", f"{args.explain_subjects * args.slices:,} "
        f"images", explain_total)
    if args.scale_json:
        with open(args.scale_json) as fh:
            scale = json.load(fh)
        audit, project = scale["audit"], scale["project"]
        print(f"| audit + map of {images:,} slice embeddings | 1 CPU machine (measured at "
              f"10^6 rows) | fit + label issues, t-SNE map | "
              f"{(audit['total_seconds'] + project['seconds']) / 3600:.2f} h, peak "
              f"{max(audit['peak_rss_gb'], project['peak_rss_gb']):.1f} GB | - | - | - |")
    image_bytes = pixels * 2  # float16
    print(f"\nStorage: images as float16 {images * image_bytes / 1e9:,.0f} GB "
          f"({image_bytes / 1024:.0f} KiB each; uint8 half that); slice embeddings "
          f"{images * 512 * 4 / 1e9:.1f} GB (512 float32), per-subject embeddings "
          f"{args.subjects * 512 * 4 / 1e9:.2f} GB; x_T codes of the explained images "
          f"{args.explain_subjects * args.slices * pixels * 4 / 1e9:.1f} GB (float32); "
          f"checkpoints about {4 * large['params'] * 4 / 1e9:.1f} GB each "
          f"({large['params'] / 1e6:.1f} M parameters: weights, EMA, two Adam moments in "
          f"float32)")
    per_gpu = gpu / large["train"]
    print(f"Input bandwidth: one GPU trains about {per_gpu:,.0f} images/s = "
          f"{per_gpu * image_bytes / 1e6:,.0f} MB/s of float16 images")


if __name__ == "__main__":
    main()
