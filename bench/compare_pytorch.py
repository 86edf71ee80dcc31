#!/usr/bin/python3
"""compare_pytorch.py - nst against PyTorch on the same work, back to back in one run.

The work is one step of the seed preset (the original notebook): VGG19 forward up to
conv5_1, content loss (mean squared error) and style loss (unnormalised Gram) at the
pre-ReLU taps conv1_1..conv5_1, backward to the image, one Adam update of the pixels.
Both sides use the same weights (../shared/models/vgg19), the same image size and the
same number of threads. Each side runs in its own process so that peak memory (RSS) is
measured separately; each timing is the best of --iters steps after a warm-up.

It also prints, from the same run: the SGEMM peak of PyTorch's BLAS (2048^3) and nst's
convolution throughput as a share of it, nst's speed-up from 1 to --threads threads, and
nst's peak RSS for a transfer step at each of --rss-sizes.

usage: bench/compare_pytorch.py [--nst build/nst] [--sizes 224,512] [--threads 2] [--iters 5]
                                [--rss-sizes 512,1024,2048]
Needs Debian's python3-torch and an optimized BLAS (libopenblas0-pthread):
scripts/install-bench-deps.sh installs both. Run with /usr/bin/python3.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WEIGHTS = os.path.join(HERE, "..", "..", "shared", "models", "vgg19")
TAPS = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]
BLOCKS = [(2, 64), (2, 128), (4, 256), (4, 512), (4, 512)]


def load_vgg19(torch, weights_dir, depth_block):
    """Dequantized conv weights as torch tensors (OIHW), for blocks 1..depth_block."""
    import numpy as np
    manifest = json.load(open(os.path.join(weights_dir, "model.json")))["weightsManifest"][0]
    stream = b"".join(open(os.path.join(weights_dir, p), "rb").read() for p in manifest["paths"])
    off, params = 0, {}
    for w in manifest["weights"]:
        n = int(np.prod(w["shape"]))
        q = np.frombuffer(stream, dtype=np.uint8, count=n, offset=off).astype(np.float64)
        off += n
        v = (q * w["quantization"]["scale"] + w["quantization"]["min"]).astype(np.float32).reshape(w["shape"])
        if len(w["shape"]) == 4:
            v = v.transpose(3, 2, 0, 1).copy()  # HWIO -> OIHW
        params[w["name"]] = torch.from_numpy(v)
    return params


def seed_step_best(torch, size, iters, device="cpu", weights_dir=WEIGHTS, on_step=None):
    """Best time in seconds of one seed-preset step (see the docstring) at size x size on
    device ("cpu" or "cuda"), over iters steps after 2 warm-up steps. on_step: None, or
    called after each step (a torch.profiler's step()). Also used by
    compare_cuda_pytorch.py."""
    import torch.nn.functional as F
    params = {k: v.to(device) for k, v in load_vgg19(torch, weights_dir, 5).items()}
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def features(x):
        out = {}
        for b, (n, _) in enumerate(BLOCKS, start=1):
            for i in range(1, n + 1):
                name = f"block{b}_conv{i}"
                x = F.conv2d(x, params[name + "/kernel"], params[name + "/bias"], padding=1)
                out[f"conv{b}_{i}"] = x
                if f"conv{b}_{i}" == "conv5_1":
                    return out
                x = F.relu(x)
            x = F.max_pool2d(x, 2)
        return out

    def gram(f):
        c = f.shape[1]
        f = f.reshape(c, -1)
        return f @ f.t()

    g = torch.Generator().manual_seed(0)
    content = (torch.rand(1, 3, size, size, generator=g) * 255 - 120).to(device)
    style = (torch.rand(1, 3, size, size, generator=g) * 255 - 120).to(device)
    with torch.no_grad():
        fc = features(content)
        P = {t: fc[t].detach() for t in TAPS}
        fs = features(style)
        A = {t: gram(fs[t]).detach() for t in TAPS}
        del fc, fs
    x = content.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.0003 * 255)
    best = 1e30
    for it in range(iters + 2):
        sync()
        t0 = time.perf_counter()
        opt.zero_grad()
        f = features(x)
        content_loss = sum(((f[t] - P[t]) ** 2).mean() for t in TAPS)
        style_loss = sum(((gram(f[t]) - A[t]) ** 2).mean() for t in TAPS)
        loss = content_loss + 0.01 * style_loss
        loss.backward()
        opt.step()
        loss.item()  # a real run reads the loss every step
        sync()
        dt = time.perf_counter() - t0
        if it >= 2:
            best = min(best, dt)
        if on_step:
            on_step()
    return best


def torch_worker(size, threads, iters):
    import torch
    torch.set_num_threads(threads)
    best = seed_step_best(torch, size, iters)
    print(f"ms_per_step={best * 1e3:.3f}")


def run_rss(cmd, env=None):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    if status != 0:
        sys.exit(f"compare_pytorch: {' '.join(cmd)} failed: {err.strip()}")
    return out, usage.ru_maxrss / 1024.0


def sgemm_worker(threads):
    import torch
    torch.set_num_threads(threads)
    n = 2048
    a, b = torch.rand(n, n), torch.rand(n, n)
    best = 1e30
    for _ in range(5):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    print(f"gflops={2 * n ** 3 / best / 1e9:.1f}")


def bench_field(out, name):
    m = re.search(name + r"\s+([0-9.]+) ms\s+([0-9.]+) GFLOP/s", out)
    return float(m.group(1)), float(m.group(2))


def ms_per_step(out):
    m = re.search(r"ms_per_step=([0-9.]+)", out)
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nst", default=os.path.join(HERE, "..", "build", "nst"))
    ap.add_argument("--sizes", default="224,512")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--rss-sizes", default="512,1024,2048")
    ap.add_argument("--torch-worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--sgemm-worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.torch_worker:
        torch_worker(a.torch_worker, a.threads, a.iters)
        return
    if a.sgemm_worker:
        sgemm_worker(a.threads)
        return
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    print(f"{'size':>5} {'threads':>7} {'nst ms':>9} {'torch ms':>9} {'speed-up':>8} {'nst MB':>8} {'torch MB':>9} {'mem ratio':>9}")
    for size in [int(s) for s in a.sizes.split(",")]:
        # alternate twice and keep each side's best, so that a burst of load on the
        # shared machine does not decide the ratio
        nst_ms, torch_ms, nst_mb, torch_mb = 1e30, 1e30, 0, 0
        for _ in range(2):
            out, mb = run_rss([a.nst, "bench", "--size", str(size), "--threads", str(a.threads),
                               "--iters", str(a.iters)], env)
            nst_ms, nst_mb = min(nst_ms, ms_per_step(out)), max(nst_mb, mb)
            out, mb = run_rss([sys.executable, __file__, "--torch-worker", str(size), "--threads",
                               str(a.threads), "--iters", str(a.iters)], env)
            torch_ms, torch_mb = min(torch_ms, ms_per_step(out)), max(torch_mb, mb)
        print(f"{size:>5} {a.threads:>7} {nst_ms:>9.1f} {torch_ms:>9.1f} {torch_ms / nst_ms:>7.2f}x "
              f"{nst_mb:>8.0f} {torch_mb:>9.0f} {nst_mb / torch_mb:>9.2f}", flush=True)

    out, _ = run_rss([sys.executable, __file__, "--sgemm-worker", "--threads", str(a.threads)], env)
    peak = float(re.search(r"gflops=([0-9.]+)", out).group(1))
    print(f"\nSGEMM 2048^3 in PyTorch's BLAS, {a.threads} threads: {peak:.0f} GFLOP/s")
    print("nst convolution throughput (direct-equivalent FLOPs: 2*H*W*Cin*Cout*9 per conv; "
          "a Winograd layer does fewer multiplications):")
    for size in [int(s) for s in a.sizes.split(",")]:
        out, _ = run_rss([a.nst, "bench", "--size", str(size), "--threads", str(a.threads),
                          "--iters", str(a.iters)], env)
        _, fwd = bench_field(out, "forward")
        _, fb = bench_field(out, "forward\\+backward")
        print(f"  {size}: forward {fwd:.0f} GFLOP/s ({100 * fwd / peak:.0f}% of SGEMM), "
              f"forward+backward {fb:.0f} GFLOP/s ({100 * fb / peak:.0f}%)")

    print("\nnst thread scaling (transfer step, ms):")
    for size in [int(s) for s in a.sizes.split(",")]:
        t = {1: 1e30, a.threads: 1e30}
        for _ in range(3):  # alternated, best of each: load bursts hit both alike
            for th in (1, a.threads):
                out, _ = run_rss([a.nst, "bench", "--size", str(size), "--threads", str(th), "--iters",
                                  str(a.iters)], dict(os.environ, OMP_NUM_THREADS=str(th)))
                t[th] = min(t[th], ms_per_step(out))
        print(f"  {size}: 1 thread {t[1]:.1f}, {a.threads} threads {t[a.threads]:.1f}: {t[1] / t[a.threads]:.2f}x")

    print("\nnst peak RSS of a seed-preset transfer step:")
    for size in [int(s) for s in a.rss_sizes.split(",") if s]:
        out, mb = run_rss([a.nst, "bench", "--size", str(size), "--threads", str(a.threads), "--iters", "1",
                           "--warmup", "0"], env)
        print(f"  {size}x{size}: {mb:.0f} MB, {ms_per_step(out) / 1e3:.2f} s per step", flush=True)


if __name__ == "__main__":
    main()
