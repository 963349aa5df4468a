"""The speed peer of `popo bench --only update`: the same Qwen2-layout update step in PyTorch eager.

One step = forward over B x T random tokens, mean next-token NLL, backward, grad-norm clip 1.0 and an AdamW
step (lr 1e-4, weight decay 0.01), exactly what bench/Popo.Bench/UpdateBench.cs times in the engine. Run with
Debian's python3-torch (`/usr/bin/python3`) and OPENBLAS_NUM_THREADS set to the engine's thread count
(torch.set_num_threads does not bind OpenBLAS). With --bf16 the forward runs under PyTorch's own CPU mixed precision,
`torch.autocast("cpu", dtype=torch.bfloat16)` (bf16 matmuls through oneDNN, float32 master weights, AdamW state and
loss), the peer of the engine's bf16 rows. Prints one JSON line: {"step_s": best wall seconds, "step_cpu_s": best process CPU seconds, ...}.
"""
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F


class RmsNorm(torch.nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


class Layer(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        d, h, kv = a.hidden, a.heads, a.kv_heads
        self.h, self.kv, self.hd = h, kv, d // h
        self.input_layernorm = RmsNorm(d, 1e-6)
        self.q_proj = torch.nn.Linear(d, h * self.hd)
        self.k_proj = torch.nn.Linear(d, kv * self.hd)
        self.v_proj = torch.nn.Linear(d, kv * self.hd)
        self.o_proj = torch.nn.Linear(h * self.hd, d, bias=False)
        self.post_attention_layernorm = RmsNorm(d, 1e-6)
        self.gate_proj = torch.nn.Linear(d, a.intermediate, bias=False)
        self.up_proj = torch.nn.Linear(d, a.intermediate, bias=False)
        self.down_proj = torch.nn.Linear(a.intermediate, d, bias=False)

    def forward(self, x, cos, sin):
        b, t, _ = x.shape
        y = self.input_layernorm(x)
        q = self.q_proj(y).view(b, t, self.h, self.hd).transpose(1, 2)
        k = self.k_proj(y).view(b, t, self.kv, self.hd).transpose(1, 2)
        v = self.v_proj(y).view(b, t, self.kv, self.hd).transpose(1, 2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        g = self.h // self.kv
        k = k.repeat_interleave(g, dim=1)
        v = v.repeat_interleave(g, dim=1)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd)
        causal = torch.ones(t, t, dtype=torch.bool).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
        o = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, -1)
        x = x + self.o_proj(o)
        y = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(y)) * self.up_proj(y))


def rotate(x, cos, sin):
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


class Model(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embed = torch.nn.Embedding(a.vocab, a.hidden)
        self.layers = torch.nn.ModuleList([Layer(a) for _ in range(a.layers)])
        self.norm = RmsNorm(a.hidden, 1e-6)
        self.head = None if a.tied else torch.nn.Linear(a.hidden, a.vocab, bias=False)
        hd = a.hidden // a.heads
        inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        ang = torch.arange(a.seq, dtype=torch.float64)[:, None] * inv[None, :]
        self.cos = torch.cat([ang.cos(), ang.cos()], -1).float()
        self.sin = torch.cat([ang.sin(), ang.sin()], -1).float()
        for p in self.parameters():
            if p.dim() > 1:
                torch.nn.init.normal_(p, 0.0, 0.02)

    def forward(self, ids):
        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x, self.cos, self.sin)
        x = self.norm(x)
        return self.head(x) if self.head is not None else x @ self.embed.weight.t()


def main():
    p = argparse.ArgumentParser()
    for name in ["vocab", "hidden", "intermediate", "layers", "heads", "kv_heads", "batch", "seq", "rounds", "threads"]:
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=int, required=True)
    p.add_argument("--tied", action="store_true")
    p.add_argument("--bf16", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Model(a)
    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
    ids = torch.randint(a.vocab, (a.batch, a.seq))

    def step():
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            logits = model(ids)[:, :-1]
        nll = F.cross_entropy(logits.float().reshape(-1, a.vocab), ids[:, 1:].reshape(-1))
        nll.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    step()  # warm-up
    best, best_cpu = float("inf"), float("inf")
    for _ in range(a.rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    print(json.dumps({"step_s": best, "step_cpu_s": best_cpu, "torch": torch.__version__, "threads": torch.get_num_threads(), "bf16": a.bf16,
                      "params": sum(q.numel() for q in params)}))


if __name__ == "__main__":
    main()
