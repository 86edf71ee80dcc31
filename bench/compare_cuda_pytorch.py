#!/usr/bin/env python3
"""compare_cuda_pytorch.py - nst on CUDA against PyTorch eager on the same GPU, back to back.

The work is compare_pytorch.py's: one step of the seed preset (VGG19 forward up to
conv5_1, content loss and unnormalised-Gram style loss at the pre-ReLU taps
conv1_1..conv5_1, backward to the image, one Adam update), same weights, square images.
  nst      `nst bench --device cuda --size N`: the best of --iters steps after a warm-up,
           timed with CUDA events; a step ends with the losses read back to the host.
  PyTorch  this file as a worker: compare_pytorch.seed_step_best() on "cuda", eager, the
           best of --iters steps timed between torch.cuda.synchronize() calls, the loss
           read each step (loss.item()) as nst's step does.
Both in fp32: PyTorch lets cuDNN use TF32 by default, which this script switches off
(torch.backends.cudnn.allow_tf32 = False; matmul TF32 is off by default). With
--tf32-sizes the same comparison runs with TF32 on both sides (nst --precision tf32).
nst runs as it does by default: its convolutions' algorithms measured once (the fastest
deterministic ones, kept in a cache file; setting up is not timed); PyTorch eager as it
does by default: cuDNN's heuristics (torch.backends.cudnn.benchmark off). With
--search-sizes both measure ("find": nst NST_CUDNN_SEARCH=1, PyTorch cudnn.benchmark on);
with --heuristic-sizes both take cuDNN's heuristics ("heur": nst NST_CUDNN_SEARCH=0).
Every configuration runs in its own process; the --sizes alternate nst / PyTorch twice
and keep each side's best. Then --try-sizes (none by default: each costs a process per
side) grow until a side no longer fits in the GPU's memory: the largest size each side
ran is printed.

--torch-profile N prints, instead of the comparison, PyTorch's own profile of the same
step at N x N (torch.profiler over --iters steps after 2 warm-up steps): the 25 CUDA
kernels with the most time per step, so that cuDNN's kernel choices can be compared with
nst's (NST_CUDA_PROFILE=1 nst bench --device cuda). --tf32 / --search apply to it too.

GPU memory: nst's is what the run took (cudaMemGetInfo before and after it was built);
PyTorch's is torch.cuda.max_memory_allocated() (its caching allocator's peak).

usage: python3 bench/compare_cuda_pytorch.py --weights DIR [--nst build/nst]
           [--sizes 512,1024,2048] [--try-sizes 3072,4096] [--tf32-sizes 2048]
           [--search-sizes 512] [--heuristic-sizes 512] [--iters 5]
       python3 bench/compare_cuda_pytorch.py --weights DIR --torch-profile 512 [--iters 3]
           [--tf32] [--search]
DIR is the VGG19 weights folder (shared/models/vgg19). Needs PyTorch with CUDA.
"""
import argparse
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the checkout
import compare_pytorch  # noqa: E402  (the VGG19 weights loader and the seed-preset step)

TIMEOUT_S = 300


def torch_worker(size, iters, weights, tf32, search):
    import torch
    if not torch.cuda.is_available():
        print("error: PyTorch sees no CUDA GPU")
        sys.exit(2)
    torch.backends.cudnn.benchmark = search
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        best = compare_pytorch.seed_step_best(torch, size, iters, device="cuda", weights_dir=weights)
    except RuntimeError as e:  # torch.cuda.OutOfMemoryError is one
        print("error: " + str(e).splitlines()[0][:300])
        sys.exit(3)
    print(f"ms_per_step={best * 1e3:.3f} gpu_mb={torch.cuda.max_memory_allocated() / 1e6:.1f} "
          f"device={torch.cuda.get_device_name(0)!r} torch={torch.__version__}")


def torch_profile(size, iters, weights, tf32, search):
    """PyTorch's CUDA kernels for one seed step: time per step, calls per step."""
    import torch
    from torch.profiler import ProfilerActivity, profile, schedule
    if not torch.cuda.is_available():
        print("error: PyTorch sees no CUDA GPU")
        sys.exit(2)
    torch.backends.cudnn.benchmark = search
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    acts = [ProfilerActivity.CPU, ProfilerActivity.CUDA]
    with profile(activities=acts, schedule=schedule(wait=1, warmup=1, active=iters)) as prof:
        best = compare_pytorch.seed_step_best(torch, size, iters, device="cuda", weights_dir=weights,
                                              on_step=prof.step)
    rows, ops = [], []
    for e in prof.key_averages():
        t = getattr(e, "self_device_time_total", None)
        if t is None:
            t = getattr(e, "self_cuda_time_total", 0)
        if t > 0:  # kernels (device type CUDA); aten ops carry their kernels' time too
            (rows if str(getattr(e, "device_type", "")).endswith("CUDA") else ops).append(
                (t / iters / 1e3, e.count / iters, e.key))
    rows = rows or ops
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)
    print(f"PyTorch {torch.__version__} profile: seed step at {size}x{size}, "
          f"{'tf32' if tf32 else 'fp32'}, cudnn.benchmark {search}; best step {best * 1e3:.2f} ms (unprofiled "
          f"timing inside the profiled run); GPU time in kernels {total:.2f} ms per step")
    print(f"{'ms/step':>8} {'share':>6} {'calls':>5}  kernel (top 25 by time)")
    for ms, calls, name in rows[:25]:
        print(f"{ms:8.3f} {100 * ms / total:5.1f}% {calls:5.1f}  {name[:150]}")


def run(cmd, env=None):
    """(stdout, None) or (None, the reason it failed)."""
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=TIMEOUT_S,
                           env=env)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {TIMEOUT_S} s"
    if p.returncode != 0:
        lines = (p.stdout + p.stderr).strip().splitlines()
        return None, lines[-1] if lines else f"exit {p.returncode}"
    return p.stdout, None


def nst_step(a, size, tf32, iters, search=None):
    """search: None (nst's default), True (NST_CUDNN_SEARCH=1) or False (=0)"""
    env = None if search is None else dict(os.environ, NST_CUDNN_SEARCH="1" if search else "0")
    out, why = run([a.nst, "bench", "--device", "cuda", "--precision", "tf32" if tf32 else "fp32", "--size",
                    str(size), "--iters", str(iters), "--warmup", "2", "--weights", a.weights], env)
    if out is None:
        return None, None, why
    ms = float(re.search(r"ms_per_step=([0-9.]+)", out).group(1))
    m = re.search(r"GPU memory: ([0-9.]+) MB taken", out)
    return ms, float(m.group(1)) if m else float("nan"), None


def torch_step(a, size, tf32, iters, search=None):
    cmd = [sys.executable, __file__, "--torch-worker", str(size), "--iters", str(iters), "--weights", a.weights]
    out, why = run(cmd + (["--tf32"] if tf32 else []) + (["--search"] if search else []))
    if out is None:
        return None, None, why
    m = re.search(r"ms_per_step=([0-9.]+) gpu_mb=([0-9.]+)", out)
    return float(m.group(1)), float(m.group(2)), None


def row(size, prec, n, t):
    (n_ms, n_mb), (t_ms, t_mb) = n, t
    ratio = f"{t_ms / n_ms:7.2f}x" if n_ms and t_ms else "      -"
    fmt = lambda v, f: format(v, f) if v is not None else "-"  # noqa: E731
    print(f"{size:>5} {prec:>5} {fmt(n_ms, '>9.1f'):>9} {fmt(t_ms, '>9.1f'):>9} {ratio:>8} "
          f"{fmt(n_mb, '>8.0f'):>8} {fmt(t_mb, '>9.0f'):>9}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nst", default=os.path.join(HERE, "..", "build", "nst"))
    ap.add_argument("--weights", default=compare_pytorch.WEIGHTS)
    ap.add_argument("--sizes", default="512,1024,2048")
    ap.add_argument("--try-sizes", default="")
    ap.add_argument("--tf32-sizes", default="")
    ap.add_argument("--search-sizes", default="")
    ap.add_argument("--heuristic-sizes", default="")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--torch-profile", type=int, metavar="N", help="print PyTorch's kernel profile at N x N")
    ap.add_argument("--torch-worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--tf32", action="store_true", help="with --torch-profile: TF32 on")
    ap.add_argument("--search", action="store_true", help="with --torch-profile: cudnn.benchmark on")
    a = ap.parse_args()
    if a.torch_profile:
        torch_profile(a.torch_profile, a.iters, a.weights, a.tf32, a.search)
        return
    if a.torch_worker:
        torch_worker(a.torch_worker, a.iters, a.weights, a.tf32, a.search)
        return
    sizes = lambda s: [int(v) for v in s.split(",") if v]  # noqa: E731

    out, why = run([sys.executable, __file__, "--torch-worker", "64", "--iters", "1", "--weights", a.weights])
    print("PyTorch: " + (re.search(r"device=.*", out).group(0) if out else f"not usable: {why}"))
    out, why = run([a.nst, "info", "--devices"])
    print("nst: " + (out.strip().splitlines()[-1] if out else why))
    print("seed-preset step (VGG19 to conv5_1, 5 content + 5 style taps, backward, Adam); ms, best of "
          f"{a.iters}; speed-up = PyTorch ms / nst ms")
    print(f"{'size':>5} {'prec':>5} {'nst ms':>9} {'torch ms':>9} {'speed-up':>8} {'nst MB':>8} {'torch MB':>9}")
    largest = {"nst": 0, "PyTorch": 0}
    for size in sizes(a.sizes):
        best_n, best_t = [None, None], [None, None]
        for _ in range(2):  # alternated: a burst of load does not decide the ratio
            for best, step in ((best_n, nst_step), (best_t, torch_step)):
                ms, mb, why = step(a, size, False, a.iters)
                if ms is None:
                    print(f"  {size}: {'nst' if step is nst_step else 'PyTorch'} failed: {why}", flush=True)
                elif best[0] is None or ms < best[0]:
                    best[0], best[1] = ms, mb
                    largest["nst" if step is nst_step else "PyTorch"] = size
        row(size, "fp32", best_n, best_t)
    for label, tf32, search, sz in (("tf32", True, None, a.tf32_sizes), ("find", False, True, a.search_sizes),
                                    ("heur", False, False, a.heuristic_sizes)):
        for size in sizes(sz):
            n = nst_step(a, size, tf32, a.iters, search)
            t = torch_step(a, size, tf32, a.iters, search)
            for name, r in (("nst", n), ("PyTorch", t)):
                if r[0] is None:
                    print(f"  {size} {label}: {name} failed: {r[2]}", flush=True)
            row(size, label, n[:2], t[:2])
    if a.search_sizes:
        print("(find: nst with NST_CUDNN_SEARCH=1, PyTorch with cudnn.benchmark = True; fp32)")
    if a.heuristic_sizes:
        print("(heur: nst with NST_CUDNN_SEARCH=0, PyTorch with cudnn.benchmark = False: cuDNN's heuristics; fp32)")

    # the largest size that fits: grow until each side fails (fewer iterations)
    alive = {name: largest[name] > 0 for name in largest}
    for size in sizes(a.try_sizes):
        if not any(alive.values()):
            break
        res = {}
        for name, step in (("nst", nst_step), ("PyTorch", torch_step)):
            res[name] = (None, None, "skipped: a smaller size failed")
            if alive[name]:
                res[name] = step(a, size, False, 1)
                if res[name][0] is None:
                    alive[name] = False
                    print(f"  {size}: {name} failed: {res[name][2]}", flush=True)
                else:
                    largest[name] = size
        row(size, "fp32", res["nst"][:2], res["PyTorch"][:2])
    if a.try_sizes:
        print(f"largest size run (of {a.sizes},{a.try_sizes}): nst {largest['nst'] or 'none'}, "
              f"PyTorch {largest['PyTorch'] or 'none'}")


if __name__ == "__main__":
    main()
