#!/usr/bin/python3
"""compare_pytorch.py - nst against PyTorch on the same work, back to back in one run.

The work is one step of the seed preset (the original notebook): VGG19 forward up to
conv5_1, content loss (mean squared error) and style loss (unnormalised Gram) at the
pre-ReLU taps conv1_1..conv5_1, backward to the image, one Adam update of the pixels.
Both sides use the same weights (../shared/models/vgg19), the same image size and the
same number of threads. Each side runs in its own process so that peak memory (RSS) is
measured separately; each timing is the best of --iters steps after a warm-up.

Precisions (--precisions, default fp32,bf16): fp32 on both sides; bf16: nst --precision
bf16 (the convolutions in bf16 with fp32 sums, on the CPU's bf16 tier: AVX512-BF16 or AMX)
against PyTorch's torch.autocast('cpu', dtype=torch.bfloat16) around the VGG forward only,
the taps cast back to float32 so that the Grams and the losses are fp32 as in nst. At each
size all four run alternated, twice; then a table of the ratios: nst bf16 vs PyTorch bf16,
nst bf16 vs nst fp32, nst fp32 vs PyTorch fp32.

It also prints, from the same run: the SGEMM peak of PyTorch's BLAS (2048^3); the fp32
FMA peak (and the VDPBF16PS rate) of --threads cores measured by bench/peak_flops.c
(compiled into a temporary folder with $CC, default cc; where that fails the SGEMM stands
in for the fp32 peak); nst's convolution throughput as a share of the fp32 peak and, for
bf16, of the bf16 peak of the tier nst ran (AVX512-BF16: 2 x the fp32 FMA peak, AMX: 16x);
nst's fast style transfer in each precision (a training step of nst train: batch 4,
256 px, width 32, timed from its --log; nst apply's network on --apply-size square
photos with a shipped style); nst's speed-up from 1 to --threads threads; and nst's
peak RSS for a transfer step at each of --rss-sizes.

usage: bench/compare_pytorch.py [--nst build/nst] [--sizes 224,512] [--threads 2] [--iters 5]
                                [--precisions fp32,bf16] [--rss-sizes 512,1024,2048]
                                [--no-fast] [--no-scaling] [--train-steps 3] [--apply-images 3]
A shorter run: --sizes 224 --iters 2 --no-scaling --rss-sizes '' --train-steps 1
--apply-images 2 (about two minutes on 2 cores). Temporary files go to $TMPDIR (default
/tmp) and are removed at the end.
Needs Debian's python3-torch and an optimized BLAS (libopenblas0-pthread):
scripts/install-bench-deps.sh installs both. Run with /usr/bin/python3.
"""
import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared")
WEIGHTS = os.path.join(SHARED, "models", "vgg19")
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


def seed_step_best(torch, size, iters, device="cpu", weights_dir=WEIGHTS, on_step=None, autocast=False):
    """Best time in seconds of one seed-preset step (see the docstring) at size x size on
    device ("cpu" or "cuda"), over iters steps after 2 warm-up steps. on_step: None, or
    called after each step (a torch.profiler's step()). autocast: the VGG forward (and so
    its backward) under torch.autocast(device, bfloat16), the taps cast back to float32
    before the Grams and the losses, which stay in fp32. Also used by
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

    def taps(x):
        """The taps in float32: under autocast the convolutions run in bf16 (their outputs
        are bf16), the Grams and losses below in fp32 (autocast would run the Gram's
        matmul in bf16 too, so it ends here)."""
        if not autocast:
            return features(x)
        with torch.autocast(device_type=device, dtype=torch.bfloat16):
            f = features(x)
        assert f["conv1_1"].dtype == torch.bfloat16, "autocast did not run the convolutions in bf16"
        return {t: f[t].float() for t in TAPS}

    def gram(f):
        c = f.shape[1]
        f = f.reshape(c, -1)
        return f @ f.t()

    g = torch.Generator().manual_seed(0)
    content = (torch.rand(1, 3, size, size, generator=g) * 255 - 120).to(device)
    style = (torch.rand(1, 3, size, size, generator=g) * 255 - 120).to(device)
    with torch.no_grad():
        fc = taps(content)
        P = {t: fc[t].detach() for t in TAPS}
        fs = taps(style)
        A = {t: gram(fs[t]).detach() for t in TAPS}
        del fc, fs
    x = content.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.0003 * 255)
    best = 1e30
    for it in range(iters + 2):
        sync()
        t0 = time.perf_counter()
        opt.zero_grad()
        f = taps(x)
        content_loss = sum(((f[t] - P[t]) ** 2).mean() for t in TAPS)
        style_loss = sum(((gram(f[t]) - A[t]) ** 2).mean() for t in TAPS)
        loss = content_loss + 0.01 * style_loss
        assert loss.dtype == torch.float32
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


def torch_worker(size, threads, iters, autocast=False):
    import torch
    torch.set_num_threads(threads)
    best = seed_step_best(torch, size, iters, autocast=autocast)
    print(f"ms_per_step={best * 1e3:.3f}")


def run_rss_err(cmd, env=None):
    """Runs cmd in its own process: (stdout, stderr, peak RSS in MB); exits with the
    command's stderr if it fails."""
    with tempfile.TemporaryFile(mode="w+") as errf:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errf, env=env, text=True)
        out = p.stdout.read()
        _, status, usage = os.wait4(p.pid, 0)
        errf.seek(0)
        err = errf.read()
    if status != 0:
        sys.exit(f"compare_pytorch: {' '.join(cmd)} failed: {err.strip()}")
    return out, err, usage.ru_maxrss / 1024.0


def run_rss(cmd, env=None):
    out, _, mb = run_rss_err(cmd, env)
    return out, mb


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


def peak_gflops(threads, tmp):
    """The fp32 FMA and bf16 VDPBF16PS peaks in GFLOP/s on threads threads, measured by
    bench/peak_flops.c (compiled here into tmp with $CC, default cc); None when it cannot
    be built or run (no compiler, no AVX-512). The bf16 value is 0 where it was not
    measured (no AVX512-BF16)."""
    exe = os.path.join(tmp, "peak_flops")
    src = os.path.join(HERE, "peak_flops.c")
    for flags in (["-mavx512f", "-mavx512bf16"], ["-mavx512f", "-DNO_BF16"]):
        try:
            built = subprocess.run([os.environ.get("CC", "cc"), "-O2", "-fopenmp", *flags, src, "-o", exe],
                                   capture_output=True).returncode == 0
        except OSError:
            return None
        if built:
            p = subprocess.run([exe, str(threads)], capture_output=True, text=True)
            if p.returncode != 0:
                return None
            return field(p.stdout, "fp32_fma_gflops"), field(p.stdout, "bf16_dp_gflops")
    return None


def field(out, name):
    return float(re.search(re.escape(name) + r"=([0-9.]+)", out).group(1))


def bench_field(out, name):
    m = re.search(name + r"\s+([0-9.]+) ms\s+([0-9.]+) GFLOP/s", out)
    return float(m.group(1)), float(m.group(2))


def bench_kernel(out):
    m = re.search(r"kernel (\S+?),", out)
    return m.group(1) if m else "?"


def ms_per_step(out):
    m = re.search(r"ms_per_step=([0-9.]+)", out)
    return float(m.group(1))


def bf16_multiplier(kernel):
    """The bf16 peak of a kernel tier as a multiple of the fp32 FMA peak: AMX tiles 16x,
    AVX512-BF16 (VDPBF16PS: two products per fp32 lane) 2x; 0 for an fp32 kernel."""
    k = kernel.lower()
    return 16 if "amx" in k else 2 if "bf16" in k else 0


def nst_bench_cmd(a, size, precision, threads=None, iters=None, warmup=None):
    cmd = [a.nst, "bench", "--size", str(size), "--threads", str(threads or a.threads),
           "--iters", str(iters or a.iters), "--precision", precision]
    return cmd + (["--warmup", str(warmup)] if warmup is not None else [])


def make_photos(src, n, side, folder):
    """n copies of src squashed to side x side (JPEG, 95) in folder, for nst apply."""
    from PIL import Image
    os.makedirs(folder, exist_ok=True)
    img = Image.open(src).convert("RGB").resize((side, side), Image.BICUBIC)
    for i in range(n):
        img.save(os.path.join(folder, f"photo{i + 1}.jpg"), quality=95)


def fast_section(a, env, tmp):
    """nst train's step and nst apply's network, fp32 against bf16, back to back."""
    rows = []
    same = {}
    if a.train_steps > 0:
        best = {p: (1e30, 0.0) for p in a.precisions}
        logs = {}
        for r in range(2):  # alternated, best of each
            for p in a.precisions:
                d = os.path.join(tmp, f"train_{p}_{r}")
                os.makedirs(d)
                log = os.path.join(d, "log.csv")
                _, _, mb = run_rss_err([a.nst, "train", "--style", a.style, "--data", a.data, "--steps",
                                        str(a.train_steps + 1), "--batch", str(a.train_batch), "--size",
                                        str(a.train_size), "--width", str(a.train_width), "--checkpoint-every", "0",
                                        "-o", os.path.join(d, "model.nstm"), "--log", log, "--threads",
                                        str(a.threads), "--device", "cpu", "--precision", p, "-q"], env)
                rows_ = list(csv.DictReader(open(log)))
                t = [float(x["elapsed_s"]) for x in rows_]
                # the first step also warms up (allocations, packs): the steps after it
                ms = min(t[i] - t[i - 1] for i in range(1, len(t))) * 1e3
                best[p] = (min(best[p][0], ms), max(best[p][1], mb))
                logs[p] = [x["total_loss"] for x in rows_]
        same["train"] = len(a.precisions) > 1 and logs[a.precisions[0]] == logs[a.precisions[1]]
        rows.append((f"train step w{a.train_width} b{a.train_batch} {a.train_size}x{a.train_size}", best))
    if a.apply_images > 0:
        photos = os.path.join(tmp, "photos")
        make_photos(a.apply_photo, a.apply_images, a.apply_size, photos)
        best = {p: (1e30, 0.0) for p in a.precisions}
        outs = {}
        for r in range(2):
            for p in a.precisions:
                d = os.path.join(tmp, f"apply_{p}_{r}")
                _, err, mb = run_rss_err([a.nst, "apply", "--model", a.apply_model, "--out-dir", d, photos,
                                          "--threads", str(a.threads), "--device", "cpu", "--precision", p], env)
                # nst apply: "[i/n] wrote FILE (WxH, network X s, total Y s)" per photo
                ms = min(float(x) for x in re.findall(r"network ([0-9.]+) s", err)) * 1e3
                best[p] = (min(best[p][0], ms), max(best[p][1], mb))
                outs[p] = open(os.path.join(d, "photo1.jpg"), "rb").read()
        same["apply"] = len(a.precisions) > 1 and outs[a.precisions[0]] == outs[a.precisions[1]]
        rows.append((f"apply {a.apply_model} {a.apply_size}x{a.apply_size}", best))
    print(f"\nnst fast style transfer, {' vs '.join(a.precisions)} ({a.threads} threads, best of 2 runs "
          "alternated; train: the best step after the first, from --log; apply: the network's time "
          "that nst apply prints, best over the photos):")
    head = "".join(f" {p + ' ms':>9} {p + ' MB':>8}" for p in a.precisions)
    ratio = " bf16 speed-up" if "bf16" in a.precisions and "fp32" in a.precisions else ""
    print(f"  {'configuration':<34}{head}{ratio}")
    for name, best in rows:
        line = "".join(f" {best[p][0]:>9.1f} {best[p][1]:>8.0f}" for p in a.precisions)
        if ratio:
            line += f" {best['fp32'][0] / best['bf16'][0]:>12.2f}x"
        kind = name.split()[0]
        if same.get(kind):
            line += f"  (bf16 gave fp32's results bit for bit: is --precision bf16 wired into nst {kind}?)"
        print(f"  {name:<34}{line}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nst", default=os.path.join(HERE, "..", "build", "nst"))
    ap.add_argument("--sizes", default="224,512")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--precisions", default="fp32,bf16",
                    help="fp32 and/or bf16 (default both; fp32 alone: the comparison as before bf16)")
    ap.add_argument("--rss-sizes", default="512,1024,2048")
    ap.add_argument("--no-scaling", action="store_true", help="skip nst's thread scaling")
    ap.add_argument("--no-fast", action="store_true", help="skip nst train / nst apply")
    ap.add_argument("--train-steps", type=int, default=3, help="timed training steps after the first (0: none)")
    ap.add_argument("--train-batch", type=int, default=4)
    ap.add_argument("--train-size", type=int, default=256)
    ap.add_argument("--train-width", type=int, default=32)
    ap.add_argument("--apply-images", type=int, default=3, help="photos per nst apply run (0: no apply)")
    ap.add_argument("--apply-size", type=int, default=1024)
    ap.add_argument("--apply-model", default="starry_night", help="a style that ships with nst (nst apply --list)")
    ap.add_argument("--style", default=os.path.join(SHARED, "images", "style", "starry_night.jpg"),
                    help="the painting nst train trains on")
    ap.add_argument("--data", default=os.path.join(SHARED, "datasets", "photos256"), help="nst train's photos")
    ap.add_argument("--apply-photo", default=os.path.join(SHARED, "images", "content", "tubingen.jpg"),
                    help="the photo nst apply runs on (squashed to --apply-size square)")
    ap.add_argument("--torch-worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--autocast", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--sgemm-worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.torch_worker:
        torch_worker(a.torch_worker, a.threads, a.iters, a.autocast)
        return
    if a.sgemm_worker:
        sgemm_worker(a.threads)
        return
    a.precisions = [p for p in a.precisions.split(",") if p]
    if not a.precisions or any(p not in ("fp32", "bf16") for p in a.precisions) or len(set(a.precisions)) < len(a.precisions):
        sys.exit("compare_pytorch: --precisions: fp32, bf16 or fp32,bf16")
    sizes = [int(s) for s in a.sizes.split(",")]
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    tmp_holder = tempfile.TemporaryDirectory(prefix="nst-compare-")
    tmp = tmp_holder.name

    # every variant at a size, alternated twice, each side's best kept, so that a burst of
    # load on the shared machine does not decide a ratio
    ms, mb, outs, kernels = {}, {}, {}, {}
    for size in sizes:
        for _ in range(2):
            for p in a.precisions:
                out, m = run_rss(nst_bench_cmd(a, size, p), env)
                key = ("nst", p, size)
                if ms_per_step(out) < ms.get(key, 1e30):
                    ms[key], outs[key] = ms_per_step(out), out
                mb[key] = max(mb.get(key, 0), m)
                kernels[p] = bench_kernel(out)
                out, m = run_rss([sys.executable, __file__, "--torch-worker", str(size), "--threads",
                                  str(a.threads), "--iters", str(a.iters)] + (["--autocast"] if p == "bf16" else []),
                                 env)
                key = ("torch", p, size)
                ms[key] = min(ms.get(key, 1e30), ms_per_step(out))
                mb[key] = max(mb.get(key, 0), m)
        for p in a.precisions:
            print(f"  {size}: nst {p} {ms[('nst', p, size)]:.1f} ms, torch {p} {ms[('torch', p, size)]:.1f} ms",
                  flush=True)

    for p in a.precisions:
        what = ("fp32" if p == "fp32" else
                f"bf16: nst --precision bf16 (kernel {kernels['bf16']}); PyTorch torch.autocast('cpu', bfloat16) "
                "around the VGG forward, Grams and losses in fp32")
        print(f"\nseed-preset step, {what}; {a.threads} threads, best of {a.iters} steps x 2 runs")
        print(f"{'size':>5} {'threads':>7} {'nst ms':>9} {'torch ms':>9} {'speed-up':>8} {'nst MB':>8} {'torch MB':>9} {'mem ratio':>9}")
        for size in sizes:
            n, t = ("nst", p, size), ("torch", p, size)
            print(f"{size:>5} {a.threads:>7} {ms[n]:>9.1f} {ms[t]:>9.1f} {ms[t] / ms[n]:>7.2f}x "
                  f"{mb[n]:>8.0f} {mb[t]:>9.0f} {mb[n] / mb[t]:>9.2f}")
    if len(a.precisions) == 2:
        print("\nbf16 against fp32, ms per seed-preset step (the runs above; ratios are speed-ups, "
              ">1: the first named is faster)")
        print(f"{'size':>5} {'nst fp32':>9} {'nst bf16':>9} {'torch fp32':>10} {'torch bf16':>10} "
              f"{'nst bf16 vs torch bf16':>22} {'nst bf16 vs nst fp32':>20} {'nst fp32 vs torch fp32':>22}")
        for size in sizes:
            g = lambda side, p: ms[(side, p, size)]  # noqa: E731
            print(f"{size:>5} {g('nst', 'fp32'):>9.1f} {g('nst', 'bf16'):>9.1f} {g('torch', 'fp32'):>10.1f} "
                  f"{g('torch', 'bf16'):>10.1f} {g('torch', 'bf16') / g('nst', 'bf16'):>21.2f}x "
                  f"{g('nst', 'fp32') / g('nst', 'bf16'):>19.2f}x {g('torch', 'fp32') / g('nst', 'fp32'):>21.2f}x")

    out, _ = run_rss([sys.executable, __file__, "--sgemm-worker", "--threads", str(a.threads)], env)
    sgemm = float(re.search(r"gflops=([0-9.]+)", out).group(1))
    peaks = peak_gflops(a.threads, tmp)
    print(f"\nSGEMM 2048^3 in PyTorch's BLAS, {a.threads} threads: {sgemm:.0f} GFLOP/s")
    if peaks:
        fma = peaks[0]
        print(f"fp32 FMA peak, {a.threads} threads: {fma:.0f} GFLOP/s (measured: bench/peak_flops.c, "
              f"VFMADD231PS in registers); VDPBF16PS: " + (f"{peaks[1]:.0f} GFLOP/s" if peaks[1] else "not measured"))
    else:
        fma = sgemm
        print("fp32 FMA peak: bench/peak_flops.c could not be built or run here; taken as the SGEMM above "
              "(a lower bound: the bf16 percentages below are then upper bounds)")
    print("nst convolution throughput (direct-equivalent FLOPs: 2*H*W*Cin*Cout*9 per conv; "
          "a Winograd layer does fewer multiplications, so a share can pass 100%):")
    for p in a.precisions:
        mult = 1 if p == "fp32" else bf16_multiplier(kernels[p])
        if mult == 0:
            print(f"  bf16: nst ran the fp32 kernel {kernels[p]} (no bf16 tier on this CPU?)")
            mult = 1
        peak = fma * mult
        peak_name = ("the fp32 FMA peak" if p == "fp32" else
                     f"the {kernels[p]} tier's bf16 peak, {mult} x the fp32 FMA peak = {peak / 1e3:.2f} TFLOP/s")
        print(f"  {p} (kernel {kernels[p]}), against {peak_name}:")
        for size in sizes:
            out = outs[("nst", p, size)]
            _, fwd = bench_field(out, "forward")
            _, fb = bench_field(out, "forward\\+backward")
            extra = f", SGEMM: {100 * fwd / sgemm:.0f}% / {100 * fb / sgemm:.0f}%" if p == "fp32" else ""
            print(f"    {size}: forward {fwd / 1e3:.2f} TFLOP/s ({100 * fwd / peak:.0f}%), "
                  f"forward+backward {fb / 1e3:.2f} TFLOP/s ({100 * fb / peak:.0f}%){extra}")

    if not a.no_fast:
        fast_section(a, env, tmp)

    if not a.no_scaling:
        print("\nnst thread scaling (transfer step, ms):")
        for size in sizes:
            for p in a.precisions:
                t = {1: 1e30, a.threads: 1e30}
                for _ in range(3):  # alternated, best of each: load bursts hit both alike
                    for th in (1, a.threads):
                        out, _ = run_rss(nst_bench_cmd(a, size, p, threads=th), dict(os.environ, OMP_NUM_THREADS=str(th)))
                        t[th] = min(t[th], ms_per_step(out))
                print(f"  {size} {p}: 1 thread {t[1]:.1f}, {a.threads} threads {t[a.threads]:.1f}: "
                      f"{t[1] / t[a.threads]:.2f}x", flush=True)

    rss_sizes = [int(s) for s in a.rss_sizes.split(",") if s]
    if rss_sizes:
        print("\nnst peak RSS of a seed-preset transfer step:")
    for size in rss_sizes:
        for p in a.precisions:
            out, m = run_rss(nst_bench_cmd(a, size, p, iters=1, warmup=0), env)
            print(f"  {size}x{size} {p}: {m:.0f} MB, {ms_per_step(out) / 1e3:.2f} s per step", flush=True)
    tmp_holder.cleanup()


if __name__ == "__main__":
    main()
