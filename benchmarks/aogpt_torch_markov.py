"""Does aogpt learn slowly because of aoarm, or because of AO-GPT's design? Both, side by side on
the suite's Markov source and budget: AO-GPT's own PyTorch model and training step (imported from
a checkout of scxue/AO-GPT-MDM, never copied), aoarm's aogpt with AO-GPT's parts
(`aoarm.models.aogpt.THEIR_PARTS`), and aoarm's other variants, each for several seeds.

Every arm trains the same tiny model (2 blocks x 32, 2 heads) on the same token stream (aoarm's
`data.source=markov`: 8 symbols, 20,000 tokens, 5% held out) with the same optimiser: AdamW at
lr 3e-3 (b2 0.95, weight decay 0.1 on every tensor of 2+ dimensions, AO-GPT's groups), 2 warm-up
steps then cosine to lr / 10, clipping at 1.0, batch 8 x 16 tokens, random orders, `--steps` steps
(the suite's learning test: 150). Each is scored on every held-out window under `--orders` random
orders. Prints one JSON line per arm and seed (held-out NLL, nats per token), then one per arm:
the mean over seeds with its t 95% interval, beside uniform (ln 8), the unigram (the stationary
distribution's entropy) and the source's true NLL for a window.

  AOGPT_MDM_DIR=/path/to/AO-GPT-MDM PYTHONPATH=. python benchmarks/aogpt_torch_markov.py \
      --steps=150 --seeds=0,1,2 --json=results/cpu/aogpt_torch_markov.jsonl
"""

import argparse
import importlib.util
import json
import math
import os
import sys
import tempfile

import numpy as np

SEQ_LEN, BATCH, LAYERS, D_MODEL, HEADS, LR, WARMUP = 16, 8, 2, 32, 2, 3e-3, 2
MARKOV_TOKENS = 20_000
AOARM_ARMS = {  # arm -> (variant, config overrides)
  "ar": ("ar", {}),
  "two_stream": ("two_stream", {}),
  "decoupled_rope": ("decoupled_rope", {}),
  "sigma_gpt": ("sigma_gpt", {}),
  "mdm": ("mdm", {}),
  "aogpt": ("aogpt", {}),  # aoarm's backbone: RoPE own positions, no biases
  "aogpt_parts": ("aogpt", "THEIR_PARTS"),  # AO-GPT's model, in aoarm
  "aogpt_parts_open": ("aogpt", "THEIR_PARTS+open"),  # and its gates open at init, unit target
}
ARMS = ("theirs_torch", *AOARM_ARMS)


def _data():
  """(train stream, held-out stream, MarkovSource) as aoarm's markov source gives them."""
  from aoarm.config import config_lib
  from aoarm.data import load
  from aoarm.data.markov import MarkovSource

  c = config_lib.base_config("two_stream", "runlocal")
  c.data.source, c.data.markov_tokens, c.data.seq_len = "markov", MARKOV_TOKENS, SEQ_LEN
  d = load(c.data)
  src = MarkovSource(c.data.markov_vocab, c.data.markov_concentration, seed=0)
  return np.asarray(d.splits["train"]), np.asarray(d.splits["valid"]), src


def _lr(step: int, steps: int) -> float:
  """aoarm's schedule (`run.train.make_schedule`): linear warm-up, cosine to lr / 10."""
  if step < WARMUP:
    return LR * (step + 1) / WARMUP
  t = min((step - WARMUP) / max(steps - WARMUP, 1), 1.0)
  return LR * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def run_theirs(seed: int, steps: int, orders: int, aogpt_dir: str) -> float:
  """AO-GPT's model and their training step (their forward's loss, their optimiser groups)."""
  import torch

  spec = importlib.util.spec_from_file_location(
    "aogpt_theirs", os.path.join(aogpt_dir, "model_AOGPT_AdaLN6_NoRep_cond_128_trunc_qknorm.py")
  )
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  train, held, src = _data()
  torch.manual_seed(seed)
  cfg = mod.AOGPTConfig(
    block_size=SEQ_LEN, vocab_size=src.vocab, n_layer=LAYERS, n_head=HEADS, n_embd=D_MODEL,
    dropout=0.0, bias=True,
  )  # fmt: skip
  model = mod.AOGPT(cfg)
  opt = model.configure_optimizers(0.1, LR, (0.9, 0.95), "cpu")
  rng = np.random.default_rng(seed)
  for step in range(steps):
    for g in opt.param_groups:
      g["lr"] = _lr(step, steps)
    starts = rng.integers(0, len(train) - SEQ_LEN, BATCH)
    x = torch.from_numpy(np.stack([train[s : s + SEQ_LEN] for s in starts]).astype(np.int64))
    _, loss = model(x, mode="Random")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
  model.eval()
  n = len(held) // SEQ_LEN
  windows = torch.from_numpy(held[: n * SEQ_LEN].reshape(n, SEQ_LEN).astype(np.int64))
  gen = torch.Generator().manual_seed(1000 + seed)
  total = 0.0
  with torch.no_grad():
    for _ in range(orders):
      sigma = torch.stack([torch.randperm(SEQ_LEN, generator=gen) for _ in range(n)])
      _, loss = model(windows, mode=None, orders=sigma)
      total += float(loss)
  return total / orders


def run_aoarm(arm: str, seed: int, steps: int, orders: int) -> float:
  from aoarm.config import config_lib
  from aoarm.models.aogpt import THEIR_PARTS
  from aoarm.run import modes

  variant, over = AOARM_ARMS[arm]
  c = config_lib.base_config(variant, "runlocal")
  c.seed = seed
  c.data.update(source="markov", markov_tokens=MARKOV_TOKENS, seq_len=SEQ_LEN)
  c.model.update(num_layers=LAYERS, d_model=D_MODEL, num_heads=HEADS, dtype="float32")
  c.train.update(batch_size=BATCH, num_steps=steps, log_every=steps, final_eval=False)
  c.opt.update(lr=LR, warmup_steps=WARMUP, weight_decay=0.1, decay_tables=True, clip_norm=1.0)
  c.ckpt.update(every_steps=steps, async_save=False)
  c.eval.update(batch_size=8, max_windows=0, num_orders=orders, l2r=False)
  if isinstance(over, str):  # AO-GPT's parts (and, with +open, the opened initialisation)
    c.model.update({k: v for k, v in THEIR_PARTS.items() if k != "variant"})
    if over.endswith("+open"):
      c.model.update(ada_gate_init=1.0, ada_cond_std=1.0)
  else:
    c.update(over)
  with tempfile.TemporaryDirectory() as wd:
    if modes.train(c, wd) != 0:
      raise SystemExit(f"aogpt_torch_markov: arm {arm} seed {seed} failed to train")
    out = modes.evaluate_checkpoint(c, wd)
  return float(out["by_order"].get("random", out)["nll_per_token"])  # ar: left to right only


def summary(arm: str, nlls: list[float], src) -> dict:
  from scipy import stats

  a = np.asarray(nlls)
  half = None
  if len(a) > 1:
    half = float(stats.t.ppf(0.975, len(a) - 1) * a.std(ddof=1) / np.sqrt(len(a)))
  pi = src.stationary
  return {
    "arm": arm,
    "n": len(a),
    "mean_nll": round(float(a.mean()), 4),
    "t95": None if half is None else round(half, 4),
    "below_uniform": round(math.log(src.vocab) - float(a.mean()), 4),
    "uniform": round(math.log(src.vocab), 4),
    "unigram": round(float(-(pi * np.log(pi)).sum()), 4),
    "true_nll": round(src.true_nll_per_token(SEQ_LEN), 4),
  }


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--arms", default=",".join(ARMS), help="comma list of: " + ", ".join(ARMS))
  p.add_argument("--steps", type=int, default=150)
  p.add_argument("--seeds", default="0,1,2")
  p.add_argument("--orders", type=int, default=4, help="random orders per held-out window")
  p.add_argument("--aogpt_dir", default=os.environ.get("AOGPT_MDM_DIR", ""))
  p.add_argument("--json", default="")
  a = p.parse_args(argv)
  arms = [x.strip() for x in a.arms.split(",")]
  for arm in arms:
    if arm not in ARMS:
      sys.exit(f"aogpt_torch_markov: --arms: {arm!r} is not one of {', '.join(ARMS)}")
  seeds = [int(s) for s in a.seeds.split(",")]
  if "theirs_torch" in arms and not os.path.isfile(
    os.path.join(a.aogpt_dir, "model_AOGPT_AdaLN6_NoRep_cond_128_trunc_qknorm.py")
  ):
    sys.exit(f"aogpt_torch_markov: --aogpt_dir={a.aogpt_dir!r} is not a checkout of AO-GPT-MDM")
  _, _, src = _data()

  def emit(row):
    print(json.dumps(row), flush=True)
    if a.json:
      with open(a.json, "a") as f:
        f.write(json.dumps(row) + "\n")

  for arm in arms:
    nlls = []
    for seed in seeds:
      if arm == "theirs_torch":
        nll = run_theirs(seed, a.steps, a.orders, a.aogpt_dir)
      else:
        nll = run_aoarm(arm, seed, a.steps, a.orders)
      nlls.append(nll)
      emit({"arm": arm, "seed": seed, "steps": a.steps, "nll": round(nll, 4)})
    emit(summary(arm, nlls, src) | {"steps": a.steps})


if __name__ == "__main__":
  main()
