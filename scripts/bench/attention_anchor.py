#!/usr/bin/env python3
"""Anchor for training attention speed: torch's scaled_dot_product_attention at the Qwen2.5-Coder-7B shape.

Causal GQA attention, [B, T] = [4, 512], 28 query heads, 4 KV heads (expanded to 28, as transformers' sdpa path
does), head dim 128, bf16, no padding: the forward alone and the backward alone (each 20 calls between two CUDA
events after warm-up), with TFLOP/s over the causal pairs as BenchmarkAttention7B (gpu/ops) counts them
(forward 2 products, backward 5). Run in the same device call as that benchmark. One JSON line per backend
torch can pick (flash, efficient, cudnn where this build has it).

usage: python3 scripts/bench/attention_anchor.py [--batch 4] [--seq 512]
"""
import argparse, json
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

ap = argparse.ArgumentParser()
ap.add_argument("--batch", type=int, default=4)
ap.add_argument("--seq", type=int, default=512)
a = ap.parse_args()
B, T, H, KVH, D = a.batch, a.seq, 28, 4, 128
torch.manual_seed(0)
q = torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16, requires_grad=True)
k0 = torch.randn(B, KVH, T, D, device="cuda", dtype=torch.bfloat16)
v0 = torch.randn(B, KVH, T, D, device="cuda", dtype=torch.bfloat16)
k = k0.repeat_interleave(H // KVH, dim=1).requires_grad_()
v = v0.repeat_interleave(H // KVH, dim=1).requires_grad_()
dout = torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16)
pairs = B * H * T * (T + 1) / 2


def ms(f, n=20):
    for _ in range(3):
        f()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for _ in range(n):
        f()
    e.record()
    torch.cuda.synchronize()
    return s.elapsed_time(e) / n


backends = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION}
if hasattr(SDPBackend, "CUDNN_ATTENTION"):
    backends["cudnn"] = SDPBackend.CUDNN_ATTENTION
for name, be in backends.items():
    try:
        with sdpa_kernel(be):
            fwd = ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True))
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            bwd = ms(lambda: torch.autograd.grad(o, (q, k, v), dout, retain_graph=True))
    except RuntimeError as err:
        print(json.dumps({"system": "torch-sdpa-" + name, "error": str(err).splitlines()[0]}))
        continue
    print(json.dumps({"system": "torch-sdpa-" + name, "gpu": torch.cuda.get_device_name(), "batch": B, "seq": T,
                      "fwd_us": round(fwd * 1000, 1), "bwd_us": round(bwd * 1000, 1),
                      "fwd_tflops": round(2 * 2 * pairs * D / fwd / 1e9), "bwd_tflops": round(5 * 2 * pairs * D / bwd / 1e9)}))
