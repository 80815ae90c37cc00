"""Fused attention micro-benchmark: fwd+bwd time of jax.nn.dot_product_attention, causal vs
bidirectional, cuDNN vs XLA (explains the mdm training gap).

  python benchmarks/attention_kernels.py --batch=32 --seq_len=1024 --heads=6 --head_dim=64
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--seq_len", type=int, default=1024)
  p.add_argument("--heads", type=int, default=6)
  p.add_argument("--head_dim", type=int, default=64)
  p.add_argument("--reps", type=int, default=20)
  a = p.parse_args()
  shape = (a.batch, a.seq_len, a.heads, a.head_dim)
  ks = jax.random.split(jax.random.key(0), 3)
  q, k, v = (jax.random.normal(r, shape, jnp.bfloat16) for r in ks)
  print("| implementation | causal | fwd+bwd ms |")
  print("|---|---|---|")
  for impl in ("cudnn", "xla"):
    for causal in (True, False):

      def loss(q, k, v, impl=impl, causal=causal):
        o = jax.nn.dot_product_attention(q, k, v, is_causal=causal, implementation=impl)
        return o.astype(jnp.float32).sum()

      f = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))
      try:
        jax.block_until_ready(f(q, k, v))
      except Exception as e:  # noqa: BLE001 - report an unsupported combination, go on
        print(f"| {impl} | {causal} | failed: {type(e).__name__} |")
        continue
      ts = []
      for _ in range(a.reps):
        t = time.perf_counter()
        jax.block_until_ready(f(q, k, v))
        ts.append(time.perf_counter() - t)
      print(f"| {impl} | {causal} | {1e3 * statistics.median(ts):.2f} |", flush=True)


if __name__ == "__main__":
  main()
