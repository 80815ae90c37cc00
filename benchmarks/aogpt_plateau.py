"""How long a small model sits on its starting plateau under random orders, per arm: aogpt with
own positions by RoPE, by AO-GPT's learned table, and with AO-GPT's 10% left-to-right curriculum,
against decoupled_rope, and AO-GPT's recipe under other initialisations (`model.ada_gate_init`,
`model.ada_cond_std`). Prints one JSON row per arm: the training loss every `--every` steps, the
first logged step from which every logged loss is `--drop` nats below the first one (where it left
the plateau for good; a dip of one batch does not count), and held-out bits/char on random orders.

  PYTHONPATH=. python benchmarks/aogpt_plateau.py --data_dir=DIR   # text8-like train/valid.txt
  PYTHONPATH=. python benchmarks/aogpt_plateau.py                  # the pydoc text (anywhere)

CPU-sized (the defaults train 2 layers x 64 for 1500 steps of 32 x 64 tokens): what it shows is
whether an arm leaves the plateau and when, not the H200 sweep's numbers.
"""

import argparse
import json
import os
import sys
import tempfile

RECIPE = {"model.own_positions": "learned", "order.train": "mixture", "order.l2r_prob": 0.1}
ARMS = {
  "decoupled_rope": ("decoupled_rope", {}),
  "aogpt_rope": ("aogpt", {}),
  "aogpt_learned": ("aogpt", {"model.own_positions": "learned"}),
  "aogpt_learned_l2r10": ("aogpt", RECIPE),
  # AO-GPT's recipe, other initialisations: the gates open at init (bias 1), the target-position
  # embedding at unit scale, both
  "aogpt_learned_l2r10_open": ("aogpt", {**RECIPE, "model.ada_gate_init": 1.0}),
  "aogpt_learned_l2r10_unit": ("aogpt", {**RECIPE, "model.ada_cond_std": 1.0}),
  "aogpt_learned_l2r10_open_unit": (
    "aogpt",
    {**RECIPE, "model.ada_gate_init": 1.0, "model.ada_cond_std": 1.0},
  ),
  "aogpt_rope_open_unit": ("aogpt", {"model.ada_gate_init": 1.0, "model.ada_cond_std": 1.0}),
}


def left_plateau(loss: dict, drop: float):
  """The first logged step from which every logged loss is `drop` below the first one (None:
  never); a single low batch does not count."""
  steps = sorted(loss)
  below = [loss[s] < loss[steps[0]] - drop for s in steps]
  return next((s for i, s in enumerate(steps) if all(below[i:])), None)


def config(variant, over, a):
  from aoarm.config import config_lib

  c = config_lib.base_config(variant, f"runlocal,seq_len={a.seq_len}")
  if a.data_dir:
    c.data.source = "text_files"
    c.data.train_path = os.path.join(a.data_dir, "train.txt")
    c.data.valid_path = os.path.join(a.data_dir, "valid.txt")
  else:
    c.data.source = "pydoc"
  c.model.update(num_layers=a.layers, d_model=a.d_model, num_heads=4, dtype="float32")
  c.train.update(batch_size=a.batch, num_steps=a.steps, log_every=a.every)
  c.opt.update(lr=a.lr, warmup_steps=50)
  c.ckpt.update(every_steps=a.steps, async_save=False)
  c.eval.update(split="valid", max_windows=a.eval_windows, num_orders=1)
  for k, v in over.items():  # every override is section.key
    section, key = k.split(".")
    c[section][key] = v
  return c


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--data_dir", default="", help="a folder with train.txt and valid.txt")
  p.add_argument("--arms", default=",".join(ARMS), help="comma list of: " + ", ".join(ARMS))
  p.add_argument("--seq_len", type=int, default=64)
  p.add_argument("--layers", type=int, default=2)
  p.add_argument("--d_model", type=int, default=64)
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--steps", type=int, default=1500)
  p.add_argument("--every", type=int, default=50)
  p.add_argument("--lr", type=float, default=2e-3)
  p.add_argument("--drop", type=float, default=0.1, help="nats below the first logged loss")
  p.add_argument("--eval_windows", type=int, default=256)
  p.add_argument("--json", default="")
  a = p.parse_args(argv)
  arms = [x.strip() for x in a.arms.split(",")]
  for arm in arms:
    if arm not in ARMS:
      sys.exit(f"aogpt_plateau: --arms: {arm!r} is not one of {', '.join(ARMS)}")
  if a.data_dir and not os.path.isfile(os.path.join(a.data_dir, "train.txt")):
    sys.exit(f"aogpt_plateau: --data_dir={a.data_dir!r} holds no train.txt")

  from aoarm.run import modes

  for arm in arms:
    variant, over = ARMS[arm]
    c = config(variant, over, a)
    with tempfile.TemporaryDirectory() as wd:
      modes.train(c, wd)
      ev = modes.evaluate_checkpoint(c, wd)
      with open(os.path.join(wd, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    loss = {r["step"]: r["train/loss"] for r in rows if "train/loss" in r}
    steps = sorted(loss)
    first = loss[steps[0]]
    left = left_plateau(loss, a.drop)
    row = {
      "arm": arm,
      "data": a.data_dir and "text_files" or "pydoc",
      "seq_len": a.seq_len,
      "steps": a.steps,
      "first_loss": round(first, 3),
      "left_plateau_at": left,
      "final_loss": round(loss[steps[-1]], 3),
      "valid_bits": round(ev["by_order"]["random"]["bits_per_token"], 4),
      "loss": {s: round(loss[s], 3) for s in steps},
    }
    print(json.dumps(row), flush=True)
    if a.json:
      with open(a.json, "a") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
  main()
