"""fast_torch.py - the PyTorch side of the fast-style benchmarks, shared by
compare_fast_pytorch.py (CPU) and compare_fast_cuda_pytorch.py (CUDA): the network of
src/net/stylenet.h, nst train's default loss on the same VGG19 weights, one training step,
and the timing loop.
"""
import time

import compare_pytorch  # the VGG19 weights loader and its block layout

STYLE_TAPS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
CONTENT_TAP = "relu4_2"
DEEPEST = "relu5_1"
# nst_train_defaults()
CONTENT_WEIGHT, STYLE_WEIGHT, TV_WEIGHT, LR = 7.5, 100.0, 200.0, 1e-3
MEAN_BGR = [103.939, 116.779, 123.68]


def johnson_net(torch, w, n_res=5):
    """The network of src/net/stylenet.h: RGB 0..1 in, RGB 0..255 out."""
    nn = torch.nn

    def conv_in_relu(cin, cout, k, stride=1, relu=True, upsample=False):
        layers = [nn.Upsample(scale_factor=2, mode="nearest")] if upsample else []
        layers += [nn.ReflectionPad2d(k // 2), nn.Conv2d(cin, cout, k, stride, bias=False),  # IN removes a bias
                   nn.InstanceNorm2d(cout, affine=True)]
        return layers + [nn.ReLU()] if relu else layers

    class Residual(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.body = nn.Sequential(*conv_in_relu(c, c, 3), *conv_in_relu(c, c, 3, relu=False))

        def forward(self, x):
            return x + self.body(x)

    class Johnson(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(
                *conv_in_relu(3, w, 9), *conv_in_relu(w, 2 * w, 3, 2), *conv_in_relu(2 * w, 4 * w, 3, 2),
                *[Residual(4 * w) for _ in range(n_res)],
                *conv_in_relu(4 * w, 2 * w, 3, upsample=True), *conv_in_relu(2 * w, w, 3, upsample=True),
                nn.ReflectionPad2d(4), nn.Conv2d(w, 3, 9))

        def forward(self, x):
            return 255.0 * torch.sigmoid(self.body(x))

    return Johnson()


def best_ms(fn, iters, sync=None, warmup=1):
    """Best of iters calls after warm-up calls, in ms; sync() (e.g. torch.cuda.synchronize)
    ends each timed call on an asynchronous device."""
    best = 1e30
    for it in range(iters + warmup):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        dt = time.perf_counter() - t0
        if it >= warmup:
            best = min(best, dt)
    return best * 1e3


def make_train_step(torch, width, weights, batch, size, fmt, device="cpu"):
    """One training step of nst train's defaults (the network on the batch, VGG19 content
    loss at relu4_2 and normalised-Gram style loss at relu1_1..relu5_1 against fixed
    random targets, total variation, backward, Adam): returns the step function."""
    import torch.nn.functional as F
    params = {k: (v.contiguous(memory_format=fmt) if v.dim() == 4 else v).to(device)
              for k, v in compare_pytorch.load_vgg19(torch, weights, 5).items()}
    mean = torch.tensor(MEAN_BGR).view(1, 3, 1, 1).to(device)

    def vgg_features(y255, last):
        """relu outputs up to and including `last`, from RGB 0..255 (the VGG wants BGR - mean)."""
        x = (y255.flip(1) - mean).contiguous(memory_format=fmt)
        out = {}
        for b, (n, _) in enumerate(compare_pytorch.BLOCKS, start=1):
            for i in range(1, n + 1):
                name = f"block{b}_conv{i}"
                x = F.relu(F.conv2d(x, params[name + "/kernel"], params[name + "/bias"], padding=1))
                out[f"relu{b}_{i}"] = x
                if f"relu{b}_{i}" == last:
                    return out
            x = F.max_pool2d(x, 2)

    def gram(f):
        b, c, h, w = f.shape
        f = f.reshape(b, c, h * w)
        return f @ f.transpose(1, 2) / (c * h * w)

    net = johnson_net(torch, width).train().to(device=device, memory_format=fmt)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    photos = torch.rand(batch, 3, size, size).to(device).contiguous(memory_format=fmt)
    with torch.no_grad():  # fixed style targets: any (C,C) matrices cost the same
        style_photo = (torch.rand(1, 3, size, size) * 255).to(device)
        targets = {t: gram(f) for t, f in vgg_features(style_photo, DEEPEST).items() if t in STYLE_TAPS}

    def step():
        opt.zero_grad()
        with torch.no_grad():
            content_target = vgg_features(photos * 255, CONTENT_TAP)[CONTENT_TAP]
        y = net(photos)
        f = vgg_features(y, DEEPEST)
        content = F.mse_loss(f[CONTENT_TAP], content_target)
        style = sum(((gram(f[t]) - targets[t]) ** 2).mean() for t in STYLE_TAPS)
        c, h, w = y.shape[1:]
        tv = (((y[:, :, :, 1:] - y[:, :, :, :-1]) ** 2).sum() + ((y[:, :, 1:, :] - y[:, :, :-1, :]) ** 2).sum()) \
            / (batch * c * h * w)
        loss = CONTENT_WEIGHT * content + STYLE_WEIGHT * style + TV_WEIGHT * tv
        loss.backward()
        opt.step()

    return step
