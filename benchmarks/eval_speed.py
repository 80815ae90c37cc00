"""Held-out eval speed per variant and order, against the training step's (issue 32).

  python benchmarks/eval_speed.py --preset=small --seq_len=1024 \
      --model=kernels.mlp=xla,kernels.qkv=xla       # GPU: the sweep's model, on its XLA path
  python benchmarks/eval_speed.py --preset=runlocal --eval_tokens=20000  # CPU, to check it

For each variant, on one model: a whole-split eval (`run.evaluate.evaluate_windows`, the code
`--mode=eval` and `train.final_eval` run) of synthetic tokens the size of text8like's valid
split, in every order the variant reports (random and left to right; mdm: the ELBO over
--mdm_rates stratified masking rates), then the training step's tokens/s at the sweep's tokens
per step (`benchmarks/train_throughput.py`'s timing). Each order is scored twice: the first call
compiles (`first_s`), the second is the eval as a run's final eval pays it once compiled
(`eval_s`). `tokens_per_s` counts the forward passes: windows x L x K. One JSON line per variant
and order; `vs_train` is that rate over the training step's (an eval is forward only: it should
be well above 1). Without `--model`, a Hopper GPU takes the Mosaic-GPU kernels, whose compile
lands in every order's `compile_s` (39 and 31 s on an H100 against 3.8 and 0.9 s on the XLA path,
two_stream at L = 1024: results/h100/sweep_cell/eval_speed*.txt).
"""

import argparse
import json
import time

import jax
import ml_collections as mlc
import numpy as np
import train_throughput

from aoarm.models import VARIANTS
from aoarm.run import evaluate as eval_lib

TOKENS_PER_STEP = 65_536  # configs/length_sweep.py's
VALID_TOKENS = 983_040  # ~ text8like's valid split (960 windows of 1024)


def eval_config(seq_len: int, num_orders: int) -> mlc.ConfigDict:
  """The eval settings of configs/length_sweep.py at this L (its batch of windows per call)."""
  e = mlc.ConfigDict()
  e.batch_size = max(8, 32768 // seq_len)
  e.num_orders = num_orders
  e.max_windows = 0
  e.l2r = True
  return e


def bench(variant, preset, seq_len, eval_tokens, mdm_rates, train_steps, model_kw=None):
  """The JSON rows of one variant: one per order it reports."""
  L = seq_len or train_throughput.PRESETS[preset][3]
  batch = max(1, TOKENS_PER_STEP // L) if preset != "runlocal" else 4
  built = train_throughput.setup(variant, preset, batch, L, devices=1, model_kw=model_kw)
  trainer, state, _ = built  # one device, as a sweep's run has
  V = trainer.mcfg.vocab_size
  tokens = np.random.default_rng(0).integers(0, V, (eval_tokens,), dtype=np.int32)
  K = mdm_rates if not trainer.placed.traits.has_order else 1
  ecfg = eval_config(L, K)
  timed = []  # (order, eval summary, [first call s, second call s])
  for order in eval_lib.orders_to_report(trainer.mcfg, ecfg):
    times = []
    for _ in range(2):  # the first call compiles; the second is the eval itself
      t = time.perf_counter()
      summary, _, _ = eval_lib.evaluate_windows(
        trainer.placed, state.params, tokens, ecfg, order, "valid"
      )
      times.append(time.perf_counter() - t)
    timed.append((order, summary, times))
  # the training step's rate on the same model, timed after the evals (its steps take the state)
  train = train_throughput.bench(
    variant, preset, batch, train_steps, 2, seq_len=L, window=train_steps, sync_steps=0,
    built=built,
  )["tokens_per_s"]  # fmt: skip
  rows = []
  for order, summary, times in timed:
    k = summary["num_orders"]
    tps = summary["num_tokens"] * k / times[1]
    rows.append(
      {
        "variant": variant,
        "preset": preset,
        "seq_len": L,
        "order": order,
        "num_orders": k,
        "windows": summary["num_windows"],
        "eval_batch": ecfg.batch_size,
        "first_s": round(times[0], 3),
        "compile_s": round(times[0] - times[1], 3),
        "eval_s": round(times[1], 3),
        "tokens_per_s": round(tps),
        "train_tokens_per_s": round(train),
        "vs_train": round(tps / train, 2),
        "model_kw": model_kw or {},
      }
    )
  return rows


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--preset", default="runlocal", choices=sorted(train_throughput.PRESETS))
  p.add_argument("--variants", default=",".join(VARIANTS))
  p.add_argument("--seq_len", type=int, default=0)
  p.add_argument("--eval_tokens", type=int, default=VALID_TOKENS)
  p.add_argument("--mdm_rates", type=int, default=8, help="mdm's K stratified masking rates")
  p.add_argument("--train_steps", type=int, default=20, help="timed training steps")
  p.add_argument("--model", default="", help="config.model overrides, e.g. kernels.mlp=xla")
  p.add_argument("--json", default="")
  a = p.parse_args()
  kw = train_throughput.model_overrides(a.model)
  rows = []
  for v in a.variants.split(","):
    for r in bench(v, a.preset, a.seq_len, a.eval_tokens, a.mdm_rates, a.train_steps, kw):
      rows.append(r)
      print(json.dumps(r), flush=True)
  if a.json:
    with open(a.json, "w") as f:
      json.dump(rows, f, indent=2)
  print(f"\ndevice: {jax.devices()[0].device_kind}")
  print("| variant | L | order | K | compile s | eval s | tokens/s | train tokens/s | eval/train |")
  print("|---|---|---|---|---|---|---|---|---|")
  for r in rows:
    print(
      f"| {r['variant']} | {r['seq_len']} | {r['order']} | {r['num_orders']} | {r['compile_s']} "
      f"| {r['eval_s']} | {r['tokens_per_s']:,} | {r['train_tokens_per_s']:,} | {r['vs_train']} |"
    )


if __name__ == "__main__":
  main()
