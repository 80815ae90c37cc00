"""Issue 34 (5): AO-GPT's single stream with its authors' model and recipe across L, on the
length sweep's data, model size and budget (configs/length_sweep.py: text8like, 6 x 384,
2**27 training tokens, 65,536 tokens per step), at equal tokens and at two_stream's FLOPs.

  python launch/sweep.py --config=configs/aogpt_length.py --sweep_dir=runs/evidence
  python -m aoarm.tools.report runs/evidence --gap_to=two_stream   # beside evidence.py's arms

Every aogpt run takes AO-GPT's model parts and their training recipe (`configs/aogpt.py`:
MODEL_PARTS and RECIPE: lr 6e-4, b2 0.95, weight decay 0.05 on every tensor of 2+ dimensions,
clipping 1.0, EMA 0.9999 with its warm-up, 10% left-to-right sequences) except two things the
sweep's budget cannot hold: its 2^20 tokens per step (2048 steps would be 128) and its 2000
warm-up steps (their 0.4% of 500k steps; here the sweep's 100). The two_stream and
decoupled_rope arms to compare with are configs/evidence.py's (the same get_config).
L in {128, 256, 512, 1024}, seed 0, and seed 1 at L = 1024.
"""

import importlib.util
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def _load(name):
  spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, f"{name}.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


length_sweep = _load("length_sweep")
aogpt = _load("aogpt")
LENGTHS = (128, 256, 512, 1024)
NOT_AT_THIS_BUDGET = ("opt.warmup_steps",)  # kept at the sweep's (see the docstring)


def get_config(arg=None):
  c = length_sweep.get_config(arg)
  if c.model.variant == "aogpt":
    aogpt.apply(c, {k: v for k, v in aogpt.RECIPE.items() if k not in NOT_AT_THIS_BUDGET})
  return c


def sweep():
  runs = []
  for L in LENGTHS:
    for seed in (0, 1) if L == 1024 else (0,):
      runs.append({"variant": "aogpt", "seq_len": L, "seed": seed})
      runs.append({"variant": "aogpt", "seq_len": L, "seed": seed, "compute_of": "two_stream"})
  return runs
