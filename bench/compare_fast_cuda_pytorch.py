#!/usr/bin/env python3
"""compare_fast_cuda_pytorch.py - nst's fast style transfer on CUDA against PyTorch CUDA
eager on the same GPU, back to back.

  apply  the Johnson et al. network's forward pass (batch 1) at each --sizes (default
         1024x1024 and 3840x2160), width 32; nst's time is the network on an image
         already on the GPU (as PyTorch's), its end-to-end time (upload, network,
         download) is printed beside it;
  train  one training step, batch 4 at 256 px: the network, the VGG19 loss (content
         relu4_2, Gram style relu1_1..relu5_1, TV), backward, Adam (nst train's
         defaults; PyTorch's style targets are random Grams, nst's the painting's: the
         step costs the same). nst's step also uploads the batch and reads the losses
         back, as nst train does.
Each in --precisions: fp32 (PyTorch with TF32 off in cuDNN and cuBLAS, nst
--precision fp32) and tf32 (both allow TF32 tensor cores); fp16 (apply only: nst apply
--precision fp16, PyTorch's network and input in float16) when asked for. PyTorch runs in two layouts
(NCHW eager, channels_last eager, cudnn.benchmark on) and the faster counts. Times are the
best of --iters after warm-up runs, synchronised.

nst's side is build/bench_fast_cuda, run twice: with cuDNN's heuristic algorithms (nst's
default: the same bits every run) and with NST_CUDNN_SEARCH=1 (measured by cudnnFind, as
PyTorch's cudnn.benchmark); --no-search skips the second. PyTorch's side is this file run
as a worker (one process for every configuration: CUDA start-up is paid once). The model, loss and
step of PyTorch's side are those of compare_fast_pytorch.py (bench/fast_torch.py).

--torch-profile N also prints PyTorch's N most expensive CUDA kernels (torch.profiler,
GPU time per call of the step, eager NCHW) for apply at the first of --sizes and for the
training step, in each precision: what nst's per-layer profile (NST_CUDA_PROFILE=1
bench_fast_cuda) is to be compared with. --nst-profile runs nst's bench with
NST_CUDA_PROFILE=1 (its per-layer times are printed; the times it measures are then
taken with the events in place, a little slower).

usage: python3 bench/compare_fast_cuda_pytorch.py [--bench build/bench_fast_cuda]
           [--sizes 1024x1024,3840x2160] [--precisions fp32,tf32] [--iters 10] [--no-train]
           [--no-search] [--torch-profile N] [--nst-profile] [--no-nst]
Needs torch with CUDA (plain `python3` on the GPU machine).
"""
import argparse
import os
import re
import shlex
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the checkout
import compare_pytorch  # noqa: E402  (the default weights folder)
from fast_torch import best_ms, johnson_net, make_train_step  # noqa: E402

VARIANTS = ["eager", "channels_last"]


def set_precision(torch, precision):
    tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True


def kernel_profile(torch, title, fn, top, calls=3):
    """Prints the top CUDA kernels of fn (after a warm-up call), GPU ms per call."""
    from torch.profiler import ProfilerActivity, profile
    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    rows = []
    for e in prof.key_averages():
        t = getattr(e, "self_device_time_total", None)
        if t is None:
            t = getattr(e, "self_cuda_time_total", 0)
        if t > 0:
            rows.append((t / 1e3 / calls, e.count / calls, e.key))
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)
    print(f"torch profile {title}: {total:.3f} ms of kernels per call, {sum(r[1] for r in rows):.0f} launches; top {top}:",
          flush=True)
    for ms, n, key in rows[:top]:
        key = " ".join(key.split())
        print(f"  {ms:8.3f} ms {100 * ms / total:5.1f}% {n:5.0f}x  {key[:90]}", flush=True)


def worker(a):
    """Every PyTorch configuration in this one process; prints key=value lines."""
    import torch
    dev = a.torch_device  # (cpu: only to try this script on a machine without a GPU)
    cuda = dev == "cuda"
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0) if cuda else dev}", flush=True)
    sync = torch.cuda.synchronize if cuda else None
    sizes = [tuple(int(v) for v in s.split("x")) for s in a.sizes.split(",")] if a.sizes else []
    for precision in a.precisions.split(","):
        set_precision(torch, precision)
        for w, h in sizes:
            for v in VARIANTS:
                fmt = torch.channels_last if v == "channels_last" else torch.contiguous_format
                torch.manual_seed(1)
                if cuda:
                    torch.cuda.reset_peak_memory_stats()
                dtype = torch.float16 if precision == "fp16" else torch.float32
                net = johnson_net(torch, a.width).eval().to(device=dev, memory_format=fmt, dtype=dtype)
                x = torch.rand(1, 3, h, w, device=dev, dtype=dtype).contiguous(memory_format=fmt)
                try:
                    with torch.no_grad():
                        ms = best_ms(lambda: net(x), a.iters, sync=sync, warmup=3)
                except Exception as e:  # noqa: BLE001  (out of memory, say: the others still count)
                    print(f"torch apply {w}x{h} {precision} {v}: failed: {type(e).__name__}: {e}", flush=True)
                    continue
                mb = torch.cuda.max_memory_allocated() / 2**20 if cuda else 0.0
                print(f"torch_apply_ms_w{a.width}_{w}x{h}_{precision}_{v}={ms:.3f}", flush=True)
                print(f"torch_apply_mb_w{a.width}_{w}x{h}_{precision}_{v}={mb:.1f}", flush=True)
                if a.torch_profile and cuda and v == "eager" and (w, h) == sizes[0]:
                    with torch.no_grad():
                        kernel_profile(torch, f"apply {w}x{h} {precision}", lambda: net(x), a.torch_profile)
                del net, x
                if cuda:
                    torch.cuda.empty_cache()
        if not a.no_train and precision != "fp16":
            for v in VARIANTS:
                fmt = torch.channels_last if v == "channels_last" else torch.contiguous_format
                torch.manual_seed(1)
                try:  # (the weights loader needs numpy: the apply results still count without it)
                    step = make_train_step(torch, a.width, a.weights, a.batch, a.train_size, fmt, device=dev)
                    ms = best_ms(step, a.iters, sync=sync, warmup=3)
                except Exception as e:  # noqa: BLE001
                    print(f"torch train {precision} {v}: failed: {type(e).__name__}: {e}", flush=True)
                    continue
                print(f"torch_train_ms_w{a.width}_{precision}_{v}={ms:.3f}", flush=True)
                if a.torch_profile and cuda and v == "eager":
                    kernel_profile(torch, f"train step b{a.batch} {a.train_size}px {precision}", step, a.torch_profile)
                del step
                if cuda:
                    torch.cuda.empty_cache()


def field(out, name):
    m = re.search(re.escape(name) + r"=([0-9.]+)", out)
    return float(m.group(1)) if m else None


def run(cmd, env=None):
    extra = "".join(f"{k}={env[k]} " for k in ("NST_CUDNN_SEARCH", "NST_CUDA_PROFILE") if env and k in env)
    print("$ " + extra + shlex.join(cmd), flush=True)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    sys.stdout.write(p.stdout)
    sys.stdout.flush()
    if p.returncode != 0:  # what it printed before still counts
        print(f"warning: {os.path.basename(cmd[1] if cmd[0] == sys.executable else cmd[0])} exited with status "
              f"{p.returncode}", flush=True)
    return p.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", default=os.path.join(ROOT, "build", "bench_fast_cuda"), help="nst's bench_fast_cuda")
    ap.add_argument("--weights", default=os.path.normpath(compare_pytorch.WEIGHTS), help="the VGG19 tfjs weights folder")
    ap.add_argument("--sizes", default="1024x1024,3840x2160")
    ap.add_argument("--precisions", default="fp32,tf32")
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--train-size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--no-train", action="store_true")
    ap.add_argument("--no-search", action="store_true", help="skip nst's run with NST_CUDNN_SEARCH=1")
    ap.add_argument("--torch-profile", type=int, default=0, metavar="N",
                    help="print PyTorch's N most expensive CUDA kernels (apply at the first size, train step)")
    ap.add_argument("--nst-profile", action="store_true", help="nst's bench with NST_CUDA_PROFILE=1 (per-layer times)")
    ap.add_argument("--no-nst", action="store_true", help="PyTorch's side only")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--torch-device", default="cuda", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker(a)

    common = ["--iters", str(a.iters), "--precisions", a.precisions]
    nst_cmd = [a.bench, *common, "--sizes", a.sizes, "--widths", str(a.width), "--train-size", str(a.train_size),
               "--batch", str(a.batch), "--weights", a.weights]
    if a.no_train:
        nst_cmd.append("--no-train")
    env = dict(os.environ, NST_CUDA_PROFILE="1") if a.nst_profile else None
    nst_out = "" if a.no_nst else run(nst_cmd, env=env)
    nst_find = "" if a.no_search or a.no_nst else run(nst_cmd, env=dict(os.environ, NST_CUDNN_SEARCH="1"))
    torch_cmd = [sys.executable, __file__, "--worker", *common, "--sizes", a.sizes, "--width", str(a.width),
                 "--train-size", str(a.train_size), "--batch", str(a.batch), "--weights", a.weights,
                 "--torch-profile", str(a.torch_profile)]
    if a.no_train:
        torch_cmd.append("--no-train")
    torch_out = run(torch_cmd)

    def torch_best(key):
        """PyTorch's faster layout for a key: (ms, variant)"""
        got = [(field(torch_out, f"{key}_{v}"), v) for v in VARIANTS]
        got = [g for g in got if g[0] is not None]
        return min(got) if got else (None, "")

    rows = []  # (configuration, nst ms, nst cudnnFind ms, nst end-to-end ms, torch ms, variant)
    for precision in a.precisions.split(","):
        for s in a.sizes.split(","):
            key = f"w{a.width}_{s}_{precision}"
            tms, v = torch_best(f"torch_apply_ms_{key}")
            rows.append((f"apply {s} {precision}", field(nst_out, f"apply_ms_{key}"), field(nst_find, f"apply_ms_{key}"),
                         field(nst_out, f"apply_e2e_ms_{key}"), tms, v))
        if not a.no_train and precision != "fp16":
            key = f"train_step_ms_w{a.width}_{precision}"
            tms, v = torch_best(f"torch_train_ms_w{a.width}_{precision}")
            rows.append((f"train b{a.batch} {a.train_size}px {precision}", field(nst_out, key), field(nst_find, key), None,
                         tms, v))

    def num(x):
        return f"{x:9.2f}" if x is not None else f"{'-':>9}"

    def ratio(t, n):
        return f"{t / n:7.2f}x" if t is not None and n is not None else f"{'-':>8}"

    print(f"\nwidth {a.width}, best of {a.iters} after warm-up, synchronised. nst: cuDNN's heuristics (default);"
          f" nst find: NST_CUDNN_SEARCH=1;\ne2e: upload + network + download; speed-up = PyTorch ms / nst ms")
    print(f"{'configuration':<28} {'nst ms':>9} {'nst find':>9} {'nst e2e':>9} {'torch ms':>9} {'speed-up':>8} "
          f"{'(find)':>8}  torch layout")
    failed = False
    for name, nms, fms, e2e, tms, v in rows:
        failed |= nms is None or tms is None
        print(f"{name:<28} {num(nms)} {num(fms)} {num(e2e)} {num(tms)} {ratio(tms, nms)} {ratio(tms, fms)}  {v}")
        if name.startswith("train") and nms and tms:
            print(f"{'':<28} steps/s: nst {1000 / nms:.1f}" + (f" (find {1000 / fms:.1f})" if fms else "") +
                  f", PyTorch {1000 / tms:.1f}")
    if failed and not a.no_nst:
        sys.exit("some measurements are missing (see above)")


if __name__ == "__main__":
    main()
