#!/usr/bin/python3
"""compare_fast_pytorch.py - nst's fast style transfer against PyTorch, back to back.

Two kinds of work, on random inputs, same threads on both sides:
  apply  the Johnson et al. network (instance norm, nearest-upsampling decoder) forward
         at each --sizes (square) for each --widths (32 standard, 16 slim);
  train  one training step: batch --batch at --train-size, the network forward, VGG19
         (the same tfjs weights, ../shared/models/vgg19) up to relu5_1, content loss at
         relu4_2, normalised-Gram style loss at relu1_1..relu5_1, total variation, backward, one Adam update (nst train's defaults and weights; PyTorch's
         style targets are random Grams, nst's the painting's: the step costs the same).
nst's side is build/bench_fast; PyTorch's is this file run as a worker. Every
configuration runs in its own process on each side, so that its peak RSS is its own.
PyTorch runs in a few variants (eager; channels_last; for apply also TorchScript frozen
and optimized for inference) and the best is reported. Each time is the best of --iters
after one warm-up.

usage: bench/compare_fast_pytorch.py [--threads 2] [--iters 3] [--sizes 512,1024]
                                     [--widths 32,16] [--no-train]
Needs Debian's python3-torch (scripts/install-bench-deps.sh). Run with /usr/bin/python3.
"""
import argparse
import os
import re
import shlex
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the checkout
import compare_pytorch  # noqa: E402  (the VGG19 weights loader, run_rss)
from fast_torch import best_ms, johnson_net, make_train_step  # noqa: E402  (shared with the CUDA comparison)

APPLY_VARIANTS = ["eager", "channels_last", "jit"]
TRAIN_VARIANTS = ["eager", "channels_last"]


def apply_worker(a):
    import torch
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    net = johnson_net(torch, a.width).eval()
    x = torch.rand(1, 3, a.size, a.size)
    with torch.no_grad():
        if a.variant == "channels_last":
            net = net.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        elif a.variant == "jit":
            # freezing folds the weights in; optimize_for_inference pre-packs the convs
            net = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(net)))
        ms = best_ms(lambda: net(x), a.iters)
    print(f"ms={ms:.3f}")


def train_worker(a):
    import torch
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    fmt = torch.channels_last if a.variant == "channels_last" else torch.contiguous_format
    step = make_train_step(torch, a.width, a.weights, a.batch, a.size, fmt)
    print(f"ms={best_ms(step, a.iters):.3f}")


def run(cmd, env):
    """Runs cmd in its own process, printing the command line; (stdout, peak RSS in MB)."""
    print("$ " + shlex.join(cmd), flush=True)
    return compare_pytorch.run_rss(cmd, env)


def field(out, name):
    return float(re.search(re.escape(name) + r"=([0-9.]+)", out).group(1))


def torch_best(kind, variants, args, env):
    """The fastest PyTorch variant: (ms, peak MB, variant)."""
    best = (1e30, 0.0, "")
    for v in variants:
        out, mb = run([sys.executable, __file__, "--worker", kind, "--variant", v] + args, env)
        print(f"  torch {v}: {field(out, 'ms'):.1f} ms, {mb:.0f} MB", flush=True)
        best = min(best, (field(out, "ms"), mb, v))
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", default=os.path.join(ROOT, "build", "bench_fast"), help="nst's bench_fast")
    ap.add_argument("--weights", default=os.path.normpath(compare_pytorch.WEIGHTS), help="the VGG19 tfjs weights folder")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--sizes", default="512,1024")
    ap.add_argument("--widths", default="32,16")
    ap.add_argument("--train-size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--no-train", action="store_true")
    # worker mode (one configuration, one variant, in this process)
    ap.add_argument("--worker", choices=["apply", "train"], help=argparse.SUPPRESS)
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--width", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker == "apply":
        return apply_worker(a)
    if a.worker == "train":
        return train_worker(a)

    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    common = ["--threads", str(a.threads), "--iters", str(a.iters)]
    widths = [int(w) for w in a.widths.split(",")]
    sizes = [int(s) for s in a.sizes.split(",")]
    rows = []  # (configuration, nst ms, torch ms, nst MB, torch MB, torch variant)
    for w in widths:
        for s in sizes:
            out, nst_mb = run([a.bench, *common, "--widths", str(w), "--sizes", str(s), "--no-train"], env)
            nst_ms = field(out, f"apply_ms_w{w}_{s}")
            print(f"  nst: {nst_ms:.1f} ms, {nst_mb:.0f} MB", flush=True)
            torch_ms, torch_mb, variant = torch_best(
                "apply", APPLY_VARIANTS, [*common, "--width", str(w), "--size", str(s)], env)
            rows.append((f"apply w{w} {s}x{s}", nst_ms, torch_ms, nst_mb, torch_mb, variant))
    if not a.no_train:
        for w in widths:
            out, nst_mb = run([a.bench, *common, "--widths", str(w), "--no-apply", "--train-size",
                               str(a.train_size), "--batch", str(a.batch), "--weights", a.weights], env)
            nst_ms = field(out, f"train_step_ms_w{w}")
            print(f"  nst: {nst_ms:.1f} ms (network {field(out, f'train_net_ms_w{w}'):.1f}), {nst_mb:.0f} MB", flush=True)
            torch_ms, torch_mb, variant = torch_best(
                "train", TRAIN_VARIANTS, [*common, "--width", str(w), "--size", str(a.train_size),
                                          "--batch", str(a.batch), "--weights", a.weights], env)
            rows.append((f"train w{w} b{a.batch} {a.train_size}x{a.train_size}", nst_ms, torch_ms, nst_mb,
                         torch_mb, variant))

    print(f"\n{a.threads} threads, best of {a.iters} after a warm-up; peak RSS of each process "
          "(PyTorch: its fastest variant)")
    print(f"{'configuration':<22} {'nst ms':>9} {'torch ms':>9} {'speed-up':>8} {'nst MB':>7} {'torch MB':>8}  torch variant")
    for name, nms, tms, nmb, tmb, variant in rows:
        print(f"{name:<22} {nms:>9.1f} {tms:>9.1f} {tms / nms:>7.2f}x {nmb:>7.0f} {tmb:>8.0f}  {variant}")


if __name__ == "__main__":
    main()
