#!/usr/bin/env python3
"""The benchmark peer of `nc-vqvae bench`: the same steps in PyTorch, written from
docs/reference-spec (sections 3-9), at the same shapes and thread count, printing the same JSON.

PyTorch is a benchmark peer only, never a dependency of the project. Install it in a virtual
environment (`pip install -r bench/requirements.txt`) and run, e.g.

    python3 bench/pytorch_reference.py --threads 2 --json

Cases (random inputs, as in src/bench.rs; data loading and augmentation are outside the step):
  stage1_baseline   VQ-VAE losses, backward, AdamW (lr 1e-3, betas 0.9/0.999, eps 1e-8, wd 1e-3)
  stage1_nc_vqvae   the same plus the Barlow Twins branch on a second view (projector 4096)
  stage2_prior      one MaskGIT variant-A step on the 5*W' tokens, loss on the hidden positions
  sampling          10-step class-conditional iterative decoding of `batch` grids + decoding
"""

import argparse
import ctypes
import gc
import json
import math
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

N_FFT, HOP, FREQS = 8, 2, 5
LATENT, K = 64, 32


# ---------------------------------------------------------------- transform (spec section 3)
def stft(x):
    """(B, C, L) -> (B, 2C, 5, W): real and imaginary parts interleaved per channel."""
    b, c, length = x.shape
    u = torch.stft(x.reshape(b * c, length), N_FFT, HOP, window=torch.hann_window(N_FFT, device=x.device),
                   center=True, pad_mode="reflect", return_complex=True)
    u = torch.view_as_real(u)  # (B*C, 5, W, 2)
    w = u.shape[2]
    return u.reshape(b, c, FREQS, w, 2).permute(0, 1, 4, 2, 3).reshape(b, 2 * c, FREQS, w)


def istft(u):
    """(B, 2C, 5, W) -> (B, C, 2*(W-1))."""
    b, c2, h, w = u.shape
    z = torch.complex(u[:, 0::2], u[:, 1::2]).reshape(b * c2 // 2, h, w)
    x = torch.istft(z, N_FFT, HOP, window=torch.hann_window(N_FFT, device=u.device), center=True)
    return x.reshape(b, c2 // 2, -1)


def downsample_blocks(length):
    rate = 1 if length < 8 else round(length / (math.log2(N_FFT) - 1) / 8)
    return max(1, int(math.floor(math.log2(rate)))) if rate >= 1 else 1


# ---------------------------------------------------------------- encoder / decoder (spec section 4)
class EncBlock(nn.Sequential):
    def __init__(self, i, o):
        super().__init__(nn.Conv2d(i, o, (3, 4), (1, 2), (1, 1), padding_mode="replicate"), nn.BatchNorm2d(o), nn.LeakyReLU())


class DecBlock(nn.Sequential):
    def __init__(self, i, o):
        super().__init__(nn.ConvTranspose2d(i, o, (3, 4), (1, 2), (1, 1)), nn.BatchNorm2d(o), nn.LeakyReLU())


class ResBlock(nn.Module):
    def __init__(self, d, inner_bn):
        super().__init__()
        layers = [nn.LeakyReLU(), nn.Conv2d(d, d, 3, 1, 1)]
        if inner_bn:
            layers.append(nn.BatchNorm2d(d))
        layers += [nn.LeakyReLU(), nn.Conv2d(d, d, 1)]
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.body(x)


class Encoder(nn.Sequential):
    def __init__(self, n):
        layers = [EncBlock(2, LATENT)] + [EncBlock(LATENT, LATENT) for _ in range(n - 1)]
        for _ in range(4):
            layers += [ResBlock(LATENT, True), nn.BatchNorm2d(LATENT)]
        super().__init__(*layers)


class Decoder(nn.Module):
    def __init__(self, n, width):
        super().__init__()
        layers = []
        for _ in range(4):
            layers += [ResBlock(LATENT, False), nn.BatchNorm2d(LATENT)]
        layers += [DecBlock(LATENT, LATENT) for _ in range(n - 1)]
        layers += [nn.ConvTranspose2d(LATENT, 2, (3, 4), (1, 2), (1, 1)), nn.ConvTranspose2d(2, 2, (3, 4), (1, 2), (1, 1))]
        self.body = nn.Sequential(*layers)
        self.width = width

    def forward(self, z):
        return F.interpolate(self.body(z), size=(FREQS, self.width), mode="bilinear", align_corners=True)


# ---------------------------------------------------------------- EMA vector quantiser (spec section 5)
class VectorQuantizer(nn.Module):
    def __init__(self, decay=0.9, eps=1e-5):
        super().__init__()
        codebook = torch.randn(K, LATENT)
        self.register_buffer("codebook", codebook)
        self.register_buffer("cluster_size", torch.zeros(K))
        self.register_buffer("embed_avg", codebook.clone())
        self.decay, self.eps = decay, eps

    def forward(self, z):
        b, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)
        dist = -(flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.codebook.t() + self.codebook.pow(2).sum(1)[None])
        idx = dist.argmax(1)
        q = self.codebook[idx]
        if self.training:
            with torch.no_grad():
                onehot = F.one_hot(idx, K).type(flat.dtype)
                self.cluster_size.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
                self.embed_avg.mul_(self.decay).add_(onehot.t() @ flat, alpha=1 - self.decay)
                n = self.cluster_size.sum()
                size = (self.cluster_size + self.eps) / (n + K * self.eps) * n
                self.codebook.copy_(self.embed_avg / size[:, None])
        commit = F.mse_loss(flat, q.detach())
        q = flat + (q - flat).detach()
        return q.reshape(b, h, w, d).permute(0, 3, 1, 2), commit


class VqVae(nn.Module):
    def __init__(self, length):
        super().__init__()
        n = downsample_blocks(length)
        width = 1 + length // 2
        self.encoder, self.vq, self.decoder = Encoder(n), VectorQuantizer(), Decoder(n, width)

    def reconstruct(self, x, z):
        u_hat = self.decoder(z)
        x_hat = istft(u_hat)
        return u_hat, x_hat, F.mse_loss(x_hat, x[:, :, : x_hat.shape[2]])

    def losses(self, x):
        u = stft(x)
        z = self.encoder(u)
        z_q, commit = self.vq(z)
        u_hat, _, rec_time = self.reconstruct(x, z_q)
        return rec_time + F.mse_loss(u_hat, u) + commit, z_q


# ---------------------------------------------------------------- SSL branch (spec section 6)
def pool(z):
    return torch.cat([z.mean((2, 3)), z.amax((2, 3))], 1)


class Projector(nn.Sequential):
    def __init__(self, d):
        super().__init__(nn.Linear(128, d), nn.BatchNorm1d(d), nn.ReLU(), nn.Linear(d, d), nn.BatchNorm1d(d), nn.ReLU(), nn.Linear(d, d))


def barlow_twins(p1, p2, lam=0.005):
    b, d = p1.shape
    z1 = (p1 - p1.mean(0)) / (p1.std(0) + 1e-8)
    z2 = (p2 - p2.mean(0)) / (p2.std(0) + 1e-8)
    c = z1.t() @ z2 / b
    on = (torch.diagonal(c) - 1).pow(2).sum()
    off = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
    return (on + lam * off) / d


class NcVqVae(nn.Module):
    def __init__(self, length, projector_dim):
        super().__init__()
        self.vqvae, self.projector = VqVae(length), Projector(projector_dim)

    def losses(self, x, x_aug):
        base, z_q = self.vqvae.losses(x)
        u_aug = stft(x_aug)
        z_aug = self.vqvae.encoder(u_aug)
        u_hat_aug, _, rec_aug = self.vqvae.reconstruct(x_aug, z_aug)
        aug = rec_aug + F.mse_loss(u_hat_aug, u_aug)
        p_aug = self.projector(pool(z_aug))  # the reference projects the augmented branch first
        p = self.projector(pool(z_q))
        return base + 0.1 * aug + barlow_twins(p, p_aug)


# ---------------------------------------------------------------- MaskGIT prior, variant A (spec section 9)
class RmsNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.g, self.scale = nn.Parameter(torch.ones(d)), d ** 0.5

    def forward(self, x):
        return x / x.norm(dim=-1, keepdim=True).clamp(min=1e-12) * self.scale * self.g


class Block(nn.Module):
    def __init__(self, width=256, heads=2, head_dim=64):
        super().__init__()
        inner = heads * head_dim
        self.norm_attn, self.norm_ff = RmsNorm(width), RmsNorm(width)
        self.q, self.k, self.v = (nn.Linear(width, inner, bias=False) for _ in range(3))
        self.out = nn.Linear(inner, width, bias=False)
        self.ff = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, width))
        self.heads, self.head_dim = heads, head_dim

    def forward(self, h):
        b, n, _ = h.shape
        x = self.norm_attn(h)
        q, k, v = (f(x).reshape(b, n, self.heads, self.head_dim).transpose(1, 2) for f in (self.q, self.k, self.v))
        a = torch.softmax(q @ k.transpose(-1, -2) / self.head_dim ** 0.5, -1) @ v
        h = h + self.out(a.transpose(1, 2).reshape(b, n, -1))
        return h + self.ff(self.norm_ff(h))


class MaskGitA(nn.Module):
    def __init__(self, n_tokens, n_classes, codebook, width=256, depth=4):
        super().__init__()
        self.n, self.n_classes = n_tokens, n_classes
        self.tok_emb = nn.Embedding(K + 1, LATENT)
        with torch.no_grad():
            self.tok_emb.weight[:K] = codebook
        self.pos_outer = nn.Embedding(n_tokens + 1, LATENT)
        self.input_norm = nn.LayerNorm(LATENT, eps=1e-12)
        self.class_emb = nn.Embedding(n_classes + 1, LATENT)
        self.project_in = nn.Linear(LATENT, width, bias=False)
        self.pos_inner = nn.Embedding(n_tokens + 1, width)
        self.blocks = nn.ModuleList(Block(width) for _ in range(depth))
        self.final_norm = RmsNorm(width)
        self.project_out = nn.Linear(width, LATENT, bias=False)
        self.head = nn.Sequential(nn.Linear(LATENT, LATENT), nn.GELU(), nn.LayerNorm(LATENT, eps=1e-12))
        self.bias = nn.Parameter(torch.zeros(n_tokens, K + 1))

    def logits(self, ids, classes):
        n = self.n
        h0 = self.input_norm(self.tok_emb(ids) + self.pos_outer.weight[:n])
        h = torch.cat([self.class_emb(classes)[:, None], h0], 1)
        h = self.project_in(h) + self.pos_inner.weight[: n + 1] * self.pos_inner.weight.shape[1] ** -0.5
        for block in self.blocks:
            h = block(h)
        g = self.head(self.project_out(self.final_norm(h)))[:, 1:]
        return (g @ self.tok_emb.weight.t() + self.bias)[..., :K]

    def loss(self, ids, classes, targets, weights):
        ce = F.cross_entropy(self.logits(ids, classes).reshape(-1, K), targets.reshape(-1), reduction="none")
        return (ce * weights.reshape(-1)).sum() / weights.sum().clamp(min=1)


@torch.no_grad()
def sample(prior, classes, steps=10, temperature=4.0):
    b, n = classes.shape[0], prior.n
    s = torch.full((b, n), K, dtype=torch.long)
    for t in range(steps):
        probs = torch.softmax(prior.logits(s, classes), -1)
        drawn = torch.multinomial(probs.reshape(-1, K), 1).reshape(b, n)
        masked = s == K
        drawn = torch.where(masked, drawn, s)
        r = (t + 1) / steps
        keep_masked = int(math.floor(n * math.cos(math.pi * r / 2)))
        p = probs.gather(-1, drawn[..., None])[..., 0]
        u = torch.rand(b, n).clamp(min=1e-20)
        gumbel = -torch.log((-torch.log(u)).clamp(min=1e-20))
        conf = torch.log(p + 1e-5) + temperature * (1 - r) * gumbel
        conf = torch.where(masked, conf, torch.full_like(conf, float("inf")))
        s = drawn
        if keep_masked > 0:
            low = conf.topk(keep_masked, dim=-1, largest=False).indices
            s = s.scatter(-1, low, K)
    return s


# ---------------------------------------------------------------- timing
def adamw(params):
    return torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-3)


def latent_width(model, length):
    with torch.no_grad():
        model.eval()
        w = model.encoder(stft(torch.zeros(1, 1, length))).shape[3]
        model.train()
    return w


def training_step(model, loss_fn):
    """One training step: the loss (read back once, as a training loop logs it), backward, AdamW."""
    opt = adamw(model.parameters())

    def step():
        loss = loss_fn()
        loss.item()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def make_step(case, batch, length, projector_dim):
    if case == "stage1_baseline":
        model = VqVae(length).train()
        return training_step(model, lambda: model.losses(torch.randn(batch, 1, length))[0])
    if case == "stage1_nc_vqvae":
        model = NcVqVae(length, projector_dim).train()

        def loss():
            x = torch.randn(batch, 1, length)
            return model.losses(x, x + 0.1 * torch.randn(batch, 1, length))
        return training_step(model, loss)
    tokenizer = VqVae(length)
    n = 5 * latent_width(tokenizer, length)
    tokenizer.eval()
    prior = MaskGitA(n, 2, tokenizer.vq.codebook)
    if case == "stage2_prior":
        def loss():
            targets = torch.randint(0, K, (batch, n))
            hidden = torch.rand(batch, n) < 0.6
            ids = torch.where(hidden, torch.full_like(targets, K), targets)
            return prior.loss(ids, torch.randint(0, 3, (batch,)), targets, hidden.float())
        return training_step(prior, loss)
    if case == "sampling":
        prior.eval()
        classes = torch.arange(batch) % 2
        w = n // FREQS

        @torch.no_grad()
        def step():
            tokens = sample(prior, classes)
            z = tokenizer.vq.codebook[tokens].reshape(batch, FREQS, w, LATENT).permute(0, 3, 1, 2)
            istft(tokenizer.decoder(z)).sum().item()
        return step
    raise SystemExit(f"unknown case '{case}'")


CASES = ["stage1_baseline", "stage1_nc_vqvae", "stage2_prior", "sampling"]


def cpu_seconds():
    """User + system CPU seconds of this process (all threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def release_memory():
    """Frees what earlier cases left behind and hands glibc's free memory back to the kernel
    (malloc_trim(0)), as `nc-vqvae bench` does between cases, so each case's peak is its own."""
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc


def reset_peak_rss():
    """Resets the kernel's peak-resident-memory mark (Linux); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mib():
    """Peak resident memory since the last reset in MiB (Linux VmHWM), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def parse_shape(s):
    b, l = s.lower().split("x")
    return int(b), int(l)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--shapes", default="32x140,128x140,32x500,128x500")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--projector-dim", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("RAYON_NUM_THREADS", os.cpu_count() or 1)))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_default_device(args.device)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    torch.manual_seed(args.seed)
    results = []
    for case in args.cases.split(","):
        for shape in args.shapes.split(","):
            batch, length = parse_shape(shape)
            release_memory()
            tracked = reset_peak_rss()
            step = make_step(case, batch, length, args.projector_dim)
            times = []
            for i in range(args.warmup + args.steps):
                if i == args.warmup:
                    cpu_start, wall_start = cpu_seconds(), time.perf_counter()
                start = time.perf_counter()
                step()
                sync()
                if i >= args.warmup:
                    times.append((time.perf_counter() - start) * 1e3)
            cpu = (cpu_seconds() - cpu_start) / (time.perf_counter() - wall_start)
            times.sort()
            t = {"case": case, "batch": batch, "length": length, "median_ms": statistics.median(times),
                 "min_ms": times[0], "max_ms": times[-1], "steps": len(times),
                 "cpu_utilisation": cpu, "peak_rss_mib": peak_rss_mib() if tracked else None}
            print(f"{case:<16} {batch:>4} x {length:<5} median {t['median_ms']:>9.1f} ms", file=sys.stderr)
            results.append(t)
    report = {"implementation": "pytorch", "backend": args.device, "threads": torch.get_num_threads(), "results": results}
    if args.json:
        print(json.dumps(report))
    else:
        print(f"pytorch {torch.__version__} on {args.device} ({report['threads']} threads)\n")
        print("| case | batch × length | median ms | min ms | max ms | steps | CPU / wall | peak RSS MiB |\n|---|---|---|---|---|---|---|---|")
        for t in results:
            rss = "-" if t["peak_rss_mib"] is None else f"{t['peak_rss_mib']:.0f}"
            print(f"| {t['case']} | {t['batch']} × {t['length']} | {t['median_ms']:.1f} | {t['min_ms']:.1f} | {t['max_ms']:.1f} | {t['steps']} "
                  f"| {t['cpu_utilisation']:.2f} | {rss} |")


if __name__ == "__main__":
    main()
