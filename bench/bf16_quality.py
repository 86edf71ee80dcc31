#!/usr/bin/python3
"""bf16_quality.py - does nst --precision bf16 give fp32's results? One table, PASS/FAIL.

Each check runs the same nst command with --precision fp32 and with --precision bf16 (on
the CPU, --device cpu, --threads N) and compares:
  1 demo      the README demo (scripts/setup.sh: tubingen.jpg in the style of
              starry_night.jpg, the default preset: 512 px, L-BFGS 500 steps): the final
              total loss of its --log, within 1%
  2 seed      --preset seed, 64 steps at --size 256: final total loss, within 1%
    gatys     the default preset (gatys), 64 steps at --size 256: final total loss, within 1%
  3 train     nst train, 500 steps (--train-size 64, --train-batch 2, --train-width 16,
              --style-size 256): the mean total loss of the last 100 logged steps (the
              same photos in both runs: same --seed; one step's loss, on 2 photos, is too
              noisy to compare), within 2%
  4 fidelity  40 Adam steps of the seed preset at 128x128 in nst bf16, the result scored
              in fp32 (nst transfer --init RESULT --optimizer adam --steps 1: the first
              logged loss is the loss before any update), against PyTorch's own fp32 run
              of the same 40 steps (compare_pytorch.py's seed step: same weights, same
              128x128 images, Adam lr 0.0765) and its loss at its result: within 3%.
              Both sides start from the same 128x128 PNGs, which nst itself squashed
              (--steps 0), so no resampling differs. Informational rows: nst fp32's run
              scored the same way, and PyTorch's result scored by nst in fp32 (scorers agree?)
  5 pixels    the mean absolute difference (0..255, 8-bit RGB) between the fp32 and bf16
              images of the checks above and of nst apply with a shipped style
              (--apply-model, --apply-size); each pair is also written side by side
              (fp32 | bf16 | |difference| x 8) into OUT/side_by_side/ for a person to look at.
              Limits: --pixel-limit for the Adam (seed) transfer (default 3.0),
              --apply-pixel-limit for apply (default 1.0); none by default for the L-BFGS
              results (demo, gatys: --lbfgs-pixel-limit), whose paths part on any rounding
              difference (same loss, other brush strokes), nor for the train row (held-out
              previews of two trained networks): those rows are for looking at.
A bf16 run whose results equal fp32's bit for bit is marked NO-BF16 (the flag had no
effect: e.g. not wired into that command yet), not PASS.

usage: /usr/bin/python3 bench/bf16_quality.py [--nst build/nst] [--out /tmp/nst-bf16-quality]
           [--threads 2] [--only demo,seed,gatys,train,fidelity,apply] [--quick]
           [--demo-args '--size 256 --steps 100'] [--size 256] [--steps 64]
           [--train-steps 500] [--train-size 64] [--train-batch 2] [--train-width 16]
           [--fidelity-steps 40] [--fidelity-size 128]
Everything is written under --out (logs, images, side-by-side images); nothing in the
checkout. Sized for under 15 minutes on 2 quiet cores, most of it the demo (two 500-step
L-BFGS runs at 512 px). Shorter: --quick (the demo at 256 px, 100 steps; train 200 steps)
or --only (e.g. --only seed,gatys,fidelity, a few minutes). Longer and stricter: --size 512
--steps 200 --train-steps 2000 --train-size 128.
The exit status is 0 when every row with a limit passes, 1 otherwise.
Needs Debian's python3-torch, numpy and PIL (scripts/install-bench-deps.sh). Run with
/usr/bin/python3.
"""
import argparse
import csv
import os
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the checkout
import compare_pytorch  # noqa: E402  (the VGG19 weights loader and its block layout)

SHARED = os.path.normpath(compare_pytorch.SHARED)
CONTENT = os.path.join(SHARED, "images", "content", "tubingen.jpg")
STYLE = os.path.join(SHARED, "images", "style", "starry_night.jpg")
PRECISIONS = ("fp32", "bf16")
CHECKS = ("demo", "seed", "gatys", "train", "fidelity", "apply")
MEAN_BGR = [103.939, 116.779, 123.68]  # the Caffe mean nst subtracts (docs/methods.md)
LR_SEED = 0.0003 * 255  # the seed preset's Adam step in 0..255 units


class Runner:
    def __init__(self, a):
        self.a = a
        self.log = open(os.path.join(a.out, "commands.log"), "w")

    def nst(self, *args):
        """Runs nst with args on the CPU; its output goes to OUT/commands.log."""
        cmd = [self.a.nst, *args, "--threads", str(self.a.threads), "--device", "cpu"]
        self.log.write("$ " + shlex.join(cmd) + "\n")
        self.log.flush()
        t0 = time.time()
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.log.write(p.stdout + f"# exit {p.returncode}, {time.time() - t0:.1f} s\n")
        self.log.flush()
        if p.returncode != 0:
            sys.exit(f"bf16_quality: {shlex.join(cmd)} failed (exit {p.returncode}):\n{p.stdout.strip()}")
        return p.stdout


def log_rows(path):
    return list(csv.DictReader(open(path)))


def final_loss(path):
    return float(log_rows(path)[-1]["total_loss"])


def same_file(a, b):
    return open(a, "rb").read() == open(b, "rb").read()


def same_losses(a, b):
    """Whether two --log files hold the same losses (elapsed_s aside) bit for bit."""
    strip = lambda path: [{k: v for k, v in r.items() if k != "elapsed_s"} for r in log_rows(path)]  # noqa: E731
    return strip(a) == strip(b)


class Table:
    def __init__(self):
        self.rows = []

    def add(self, check, limit, ref, val, diff, result):
        self.rows.append((check, limit, ref, val, diff, result))
        print(f"  {check}: reference {ref}, compared {val}, {diff}: {result}", flush=True)

    def relative(self, check, limit_pct, v32, v16, identical=False):
        """A row comparing two values, |v16 - v32| / |v32| against limit_pct (None: no limit)."""
        rel = (v16 - v32) / abs(v32) * 100 if v32 else float("inf")
        if limit_pct is None:
            result = "-"
        elif identical:
            result = "NO-BF16"
        else:
            result = "PASS" if abs(rel) <= limit_pct else "FAIL"
        self.add(check, f"{limit_pct:g}%" if limit_pct is not None else "-", f"{v32:.6g}", f"{v16:.6g}",
                 f"{rel:+.3f}%", result)

    def print(self):
        w = max(len(r[0]) for r in self.rows)
        print(f"\n{'check':<{w}}  {'limit':>6}  {'reference':>12}  {'compared':>12}  {'difference':>10}  result")
        for check, limit, ref, val, diff, result in self.rows:
            print(f"{check:<{w}}  {limit:>6}  {ref:>12}  {val:>12}  {diff:>10}  {result}")
        print("reference: the fp32 run (4: PyTorch's fp32 run); compared: the bf16 run (info rows: as named);\n"
              "difference: (compared - reference) / reference, or for 5 the mean |bf16 - fp32| of 8-bit RGB "
              "values (their max)")
        return all(r[5] == "PASS" or r[5].startswith("-") for r in self.rows)


def transfer_pair(run, name, out, args, table, label, limit_pct):
    """nst transfer ARGS in both precisions; a row for the final logged total loss.
    Returns {precision: output image}."""
    imgs = {}
    for p in PRECISIONS:
        imgs[p] = os.path.join(out, f"{name}_{p}.png")
        run.nst("transfer", *args, "-o", imgs[p], "--log", os.path.join(out, f"{name}_{p}.csv"),
                "--precision", p, "-q")
    logs = [os.path.join(out, f"{name}_{p}.csv") for p in PRECISIONS]
    table.relative(label, limit_pct, final_loss(logs[0]), final_loss(logs[1]),
                   identical=same_losses(logs[0], logs[1]) and same_file(imgs["fp32"], imgs["bf16"]))
    return imgs


def score(run, content, style, image, size, out, name):
    """The seed-preset loss of image (content, style: size x size PNGs), in nst fp32."""
    log = os.path.join(out, f"{name}_score.csv")
    run.nst("transfer", "--content", content, "--style", style, "--preset", "seed", "--size", str(size),
            "--init", image, "--optimizer", "adam", "--steps", "1", "--precision", "fp32",
            "-o", os.path.join(out, f"{name}_score.png"), "--log", log, "-q")
    return float(log_rows(log)[0]["total_loss"])  # row 1: the loss before the update


def torch_seed_run(content_png, style_png, steps, threads, result_ppm):
    """PyTorch fp32: the seed preset's Adam steps from the content; returns its loss at the
    result, which it also writes as a 16-bit PPM (0..255 RGB, clamped) for nst to score."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image
    torch.set_num_threads(threads)
    params = compare_pytorch.load_vgg19(torch, compare_pytorch.WEIGHTS, 5)
    mean = torch.tensor(MEAN_BGR).view(1, 3, 1, 1)

    def load(path):  # RGB 0..255 -> BGR minus the mean, (1,3,H,W), as nst's vgg19_preprocess
        rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
        return torch.from_numpy(rgb.transpose(2, 0, 1)[::-1].copy()).unsqueeze(0) - mean

    def taps(x):
        out = {}
        for b, (n, _) in enumerate(compare_pytorch.BLOCKS, start=1):
            for i in range(1, n + 1):
                name = f"block{b}_conv{i}"
                x = F.conv2d(x, params[name + "/kernel"], params[name + "/bias"], padding=1)
                if i == 1:
                    out[f"conv{b}_1"] = x
                if b == 5:
                    return out
                x = F.relu(x)
            x = F.max_pool2d(x, 2)

    def gram(f):
        f = f.reshape(f.shape[1], -1)
        return f @ f.t()

    content, style = load(content_png), load(style_png)
    with torch.no_grad():
        P = taps(content)
        A = {t: gram(f) for t, f in taps(style).items()}

    def loss_at(x):
        f = taps(x)
        c = sum(((f[t] - P[t]) ** 2).mean() for t in compare_pytorch.TAPS)
        s = sum(((gram(f[t]) - A[t]) ** 2).mean() for t in compare_pytorch.TAPS)
        return c + 0.01 * s

    x = content.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=LR_SEED)  # betas (0.9, 0.999), eps 1e-8: nst's
    for _ in range(steps):
        opt.zero_grad()
        loss_at(x).backward()
        opt.step()
    with torch.no_grad():
        final = float(loss_at(x))
        rgb = (x + mean)[0].flip(0).clamp(0, 255).permute(1, 2, 0).numpy()
    h, w, _ = rgb.shape
    with open(result_ppm, "wb") as f:
        f.write(b"P6\n%d %d\n65535\n" % (w, h))
        f.write((rgb / 255.0 * 65535.0 + 0.5).astype(">u2").tobytes())
    return final


def pixel_diff(name, a_path, b_path, out):
    """Mean |a - b| over 8-bit RGB values; writes fp32 | bf16 | |diff| x 8 side by side."""
    import numpy as np
    from PIL import Image, ImageDraw
    a = np.asarray(Image.open(a_path).convert("RGB"), dtype=np.int16)
    b = np.asarray(Image.open(b_path).convert("RGB"), dtype=np.int16)
    if a.shape != b.shape:
        sys.exit(f"bf16_quality: {a_path} and {b_path} differ in size")
    d = np.abs(a - b)
    h, w, _ = a.shape
    side = np.zeros((h, 3 * w + 16, 3), dtype=np.uint8)
    side[:, :w] = a
    side[:, w + 8:2 * w + 8] = b
    side[:, 2 * w + 16:] = np.clip(d * 8, 0, 255)
    img = Image.fromarray(side)
    draw = ImageDraw.Draw(img)
    for x, label in ((4, "fp32"), (w + 12, "bf16"), (2 * w + 20, "|bf16 - fp32| x 8")):
        draw.text((x + 1, 5), label, fill=(0, 0, 0))
        draw.text((x, 4), label, fill=(255, 255, 255))
    os.makedirs(os.path.join(out, "side_by_side"), exist_ok=True)
    path = os.path.join(out, "side_by_side", f"{name}.png")
    img.save(path)
    return float(d.mean()), float(d.max()), path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nst", default=os.path.join(HERE, "..", "build", "nst"))
    ap.add_argument("--out", default="/tmp/nst-bf16-quality", help="folder for every output (made if missing)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default=",".join(CHECKS), help="comma-separated checks: " + ",".join(CHECKS))
    ap.add_argument("--quick", action="store_true", help="demo at 256 px, 100 steps; train 200 steps")
    ap.add_argument("--demo-args", default=None, help="extra nst transfer options for the demo "
                    "(as NST_DEMO_ARGS of scripts/setup.sh; default none: the README's demo)")
    ap.add_argument("--size", type=int, default=256, help="size of the seed and gatys checks")
    ap.add_argument("--steps", type=int, default=64, help="steps of the seed and gatys checks")
    ap.add_argument("--train-steps", type=int, default=None, help="default 500 (200 with --quick)")
    ap.add_argument("--train-size", type=int, default=64)
    ap.add_argument("--train-batch", type=int, default=2)
    ap.add_argument("--train-width", type=int, default=16)
    ap.add_argument("--train-style-size", type=int, default=256)
    ap.add_argument("--train-average", type=int, default=100, help="logged steps averaged at the end")
    ap.add_argument("--fidelity-steps", type=int, default=40)
    ap.add_argument("--fidelity-size", type=int, default=128)
    ap.add_argument("--apply-model", default="starry_night", help="a style that ships with nst (nst apply --list)")
    ap.add_argument("--apply-size", type=int, default=512)
    ap.add_argument("--pixel-limit", type=float, default=3.0, help="the seed (Adam) transfer: mean |difference| limit")
    ap.add_argument("--lbfgs-pixel-limit", type=float, default=None,
                    help="the L-BFGS transfers (demo, gatys): mean |difference| limit (default none: shown only)")
    ap.add_argument("--apply-pixel-limit", type=float, default=1.0, help="nst apply: mean |difference| limit")
    a = ap.parse_args()
    only = [c for c in a.only.split(",") if c]
    if not only or any(c not in CHECKS for c in only):
        sys.exit(f"bf16_quality: --only: a comma-separated list of {', '.join(CHECKS)}")
    if a.train_steps is None:
        a.train_steps = 200 if a.quick else 500
    if a.demo_args is None:
        a.demo_args = "--size 256 --steps 100" if a.quick else ""
    a.out = os.path.abspath(a.out)
    os.makedirs(a.out, exist_ok=True)
    run = Runner(a)
    table = Table()
    pairs = []  # (name, fp32 image, bf16 image, limit or None)
    t_start = time.time()
    print(f"bf16_quality: {a.threads} threads, outputs in {a.out} (commands and their output: commands.log)")

    if "demo" in only:
        t0 = time.time()
        demo = ["--content", CONTENT, "--style", STYLE, *shlex.split(a.demo_args)]
        label = "1 demo" + (f" ({a.demo_args})" if a.demo_args else " (512 px, L-BFGS 500 steps)") + ": total loss"
        imgs = transfer_pair(run, "demo", a.out, demo, table, label, 1.0)
        pairs.append(("demo", imgs["fp32"], imgs["bf16"], a.lbfgs_pixel_limit))
        print(f"  ({time.time() - t0:.0f} s)")
    for preset in ("seed", "gatys"):
        if preset not in only:
            continue
        t0 = time.time()
        args = ["--content", CONTENT, "--style", STYLE, "--preset", preset, "--size", str(a.size),
                "--steps", str(a.steps)]
        imgs = transfer_pair(run, preset, a.out, args, table,
                             f"2 {preset} {a.steps} steps at {a.size} px: total loss", 1.0)
        pairs.append((preset, imgs["fp32"], imgs["bf16"], a.pixel_limit if preset == "seed" else a.lbfgs_pixel_limit))
        print(f"  ({time.time() - t0:.0f} s)")

    if "train" in only:
        t0 = time.time()
        logs, previews = {}, {}
        for p in PRECISIONS:
            d = os.path.join(a.out, f"train_{p}")
            os.makedirs(d, exist_ok=True)
            logs[p] = os.path.join(d, "log.csv")
            run.nst("train", "--style", STYLE, "--data", os.path.join(SHARED, "datasets", "photos256"),
                    "--steps", str(a.train_steps), "--batch", str(a.train_batch), "--size", str(a.train_size),
                    "--width", str(a.train_width), "--style-size", str(a.train_style_size),
                    "--checkpoint-every", "0", "-o", os.path.join(d, "model.nstm"), "--log", logs[p],
                    "--precision", p, "-q")
            # the held-out preview written with the final checkpoint
            previews[p] = os.path.join(d, f"model_step{a.train_steps:06d}.jpg")
        k = min(a.train_average, a.train_steps)
        mean = {p: sum(float(r["total_loss"]) for r in log_rows(logs[p])[-k:]) / k for p in PRECISIONS}
        table.relative(f"3 train {a.train_steps} steps ({a.train_size} px, batch {a.train_batch}, width "
                       f"{a.train_width}): mean loss of the last {k}", 2.0, mean["fp32"], mean["bf16"],
                       identical=same_losses(logs["fp32"], logs["bf16"]))
        if all(os.path.exists(previews[p]) for p in PRECISIONS):
            pairs.append(("train_preview", previews["fp32"], previews["bf16"], None))
        print(f"  ({time.time() - t0:.0f} s)")

    if "fidelity" in only:
        t0 = time.time()
        n, s = a.fidelity_steps, a.fidelity_size
        d = os.path.join(a.out, "fidelity")
        os.makedirs(d, exist_ok=True)
        # the inputs as nst squashes them (--steps 0 writes the starting image), 8-bit, no profile
        c_png, s_png = os.path.join(d, "content.png"), os.path.join(d, "style.png")
        for src, dst in ((CONTENT, c_png), (STYLE, s_png)):
            run.nst("transfer", "--content", src, "--style", src, "--preset", "seed", "--size", str(s),
                    "--steps", "0", "--strip", "-o", dst, "-q")
        scores = {}
        for p in PRECISIONS:
            img = os.path.join(d, f"nst_{p}.png")
            run.nst("transfer", "--content", c_png, "--style", s_png, "--preset", "seed", "--size", str(s),
                    "--steps", str(n), "--precision", p, "--bit-depth", "16", "--strip", "-o", img,
                    "--log", os.path.join(d, f"nst_{p}.csv"), "-q")
            scores[p] = score(run, c_png, s_png, img, s, d, f"nst_{p}")
        torch_ppm = os.path.join(d, "torch_fp32.ppm")
        torch_loss = torch_seed_run(c_png, s_png, n, a.threads, torch_ppm)
        torch_scored = score(run, c_png, s_png, torch_ppm, s, d, "torch_fp32")
        same = same_file(os.path.join(d, "nst_fp32.png"), os.path.join(d, "nst_bf16.png"))
        table.relative(f"4 fidelity {n} Adam steps {s} px: nst bf16 scored in fp32 vs PyTorch fp32", 3.0,
                       torch_loss, scores["bf16"], identical=same)
        table.relative("  (info) nst fp32 scored in fp32 vs PyTorch fp32", None, torch_loss, scores["fp32"])
        table.relative("  (info) PyTorch's result scored by nst fp32 vs its own loss", None, torch_loss,
                       torch_scored)
        print(f"  ({time.time() - t0:.0f} s)")

    if "apply" in only:
        t0 = time.time()
        imgs = {}
        for p in PRECISIONS:
            imgs[p] = os.path.join(a.out, f"apply_{a.apply_model}_{p}.png")
            run.nst("apply", "--model", a.apply_model, CONTENT, "--size", str(a.apply_size), "-o", imgs[p],
                    "--precision", p, "-q")
        pairs.append((f"apply_{a.apply_model}", imgs["fp32"], imgs["bf16"], a.apply_pixel_limit))
        print(f"  ({time.time() - t0:.0f} s)")

    for name, f32, b16, limit in pairs:
        mean, mx, path = pixel_diff(name, f32, b16, a.out)
        if limit is None:
            result = "-" if mx else "- (identical)"
        elif mx == 0:
            result = "NO-BF16"
        else:
            result = "PASS" if mean <= limit else "FAIL"
        table.add(f"5 pixels {name}: mean |bf16 - fp32| (max)", f"{limit:g}" if limit is not None else "-",
                  "-", "-", f"{mean:.3f} ({mx:.0f})", result)
    ok = table.print()
    if pairs:
        print(f"\nside by side (fp32 | bf16 | |difference| x 8): {os.path.join(a.out, 'side_by_side')}/")
    print(f"bf16_quality: {time.time() - t_start:.0f} s in all; "
          + ("every check with a limit passed" if ok else "a check did not pass (FAIL or NO-BF16)"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
