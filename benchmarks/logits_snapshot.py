"""Logits and parameter gradients of every variant and model option, on the CPU, into one .npz:
run it at two commits and compare the files, to show that a refactor changed no number.

  python benchmarks/logits_snapshot.py OUT.npz            # at each commit (git worktree)
  python benchmarks/logits_snapshot.py --compare A.npz B.npz
"""

import argparse
import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

CASES = [  # (variant, model options)
  ("ar", {}),
  ("two_stream", {}),
  ("decoupled_rope", {}),
  ("sigma_gpt", {}),
  ("mdm", {}),
  ("decoupled_rope", dict(target_heads=0.5)),
  ("decoupled_rope", dict(order_dims=0.5)),
  ("two_stream", dict(dtype="bfloat16")),
  ("mdm", dict(tie_embeddings=False)),
  ("ar", dict(remat="full")),
  ("two_stream", dict(mlp_dim=96)),
]


def snapshot() -> dict:
  from aoarm import orders
  from aoarm.models import ModelConfig, get_model

  jax.config.update("jax_default_matmul_precision", "highest")
  out = {}
  for i, (variant, kw) in enumerate(CASES):
    cfg = ModelConfig(
      variant=variant, vocab_size=11, seq_len=12, num_layers=2, d_model=32, num_heads=4,
      **{"dtype": "float32", **kw},
    )  # fmt: skip
    model = get_model(cfg)
    x = jax.random.randint(jax.random.key(1), (3, 12), 0, 11)
    sigma = orders.random_orders(jax.random.key(2), 3, 12)
    params = model.init(jax.random.key(0), x, sigma)["params"]

    def total(p, model=model, x=x, sigma=sigma):
      return model.apply({"params": p}, x, sigma).astype(jnp.float32).sum()

    out[f"{i}_logits"] = np.asarray(model.apply({"params": params}, x, sigma), np.float32)
    for j, g in enumerate(jax.tree.leaves(jax.grad(total)(params))):
      out[f"{i}_grad{j}"] = np.asarray(g, np.float32)
  return out


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("paths", nargs="+")
  p.add_argument("--compare", action="store_true", help="compare two snapshots bitwise")
  a = p.parse_args()
  if not a.compare:
    np.savez(a.paths[0], **snapshot())
    return
  x, y = (np.load(q) for q in a.paths)
  if set(x) != set(y):
    sys.exit(f"different arrays: {sorted(set(x) ^ set(y))}")
  bad = [k for k in x if not np.array_equal(x[k], y[k])]
  print(f"{len(x)} arrays ({len(CASES)} cases), {len(bad)} differ {bad}")
  sys.exit(1 if bad else 0)


if __name__ == "__main__":
  main()
