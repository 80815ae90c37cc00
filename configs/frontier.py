"""The paper's second metric (issue 16): coherence-diversity frontiers of two_stream,
decoupled_rope and mdm at L = 128 and 1024, trained exactly as in the length sweep
(`configs/length_sweep.py`: 6 layers, d=384, 134M tokens), two seeds at L = 1024, and the judge:
an `ar` model larger (8 layers, d=512) and trained on twice the tokens, at L = 1024, on the
train split only, early-stopped on validation: it evaluates a fixed capped window set every 1/20
of its steps and keeps the checkpoint of the lowest loss (`train.eval_every`, DIR/ckpt_best),
which gen_eval reads (`--judge_checkpoint=auto`) and scores on the whole validation split.

  python launch/sweep.py --config=configs/frontier.py --sweep_dir=runs/frontier
  python -m aoarm.tools.gen_eval --judge=runs/frontier/ar_seq_len1024_seed0 \\
      --runs=runs/frontier/two_stream_seq_len1024_seed0,... --ks=1,8 --adaptive \\
      --mdm_steps=0,256,128,64 --word_level --temperatures=... --num_samples=64 --out=...

`launch/frontier_gpu.sh` runs it on a two-GPU machine whose disk does not outlive a call.
"""

import importlib.util
import os

_spec = importlib.util.spec_from_file_location(
  "length_sweep", os.path.join(os.path.dirname(os.path.abspath(__file__)), "length_sweep.py")
)
length_sweep = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(length_sweep)

JUDGE_TOKENS = 2 * length_sweep.TRAIN_TOKENS  # the judge trains twice as long as what it judges


def get_config(arg=None):
  c = length_sweep.get_config(arg)
  if c.model.variant == "ar":  # the judge: larger and longer than the models it judges
    c.model.num_layers, c.model.d_model, c.model.num_heads = 8, 512, 8  # 25.4M params
    c.train.num_steps = JUDGE_TOKENS // length_sweep.TOKENS_PER_STEP
    if c.model.dtype == "float32":  # runlocal: still larger than the runlocal cells
      c.model.num_layers, c.model.d_model, c.model.num_heads = 3, 96, 4
      c.train.num_steps = 100
    c.train.eval_every = max(c.train.num_steps // 20, 1)  # early stopping: DIR/ckpt_best
  if c.model.variant == "mdm":
    c.eval.num_orders = 8  # 8 stratified masking rates per window: mdm's ± like the others'
    c.eval.l2r = False
  return c


def sweep():
  """The judge, then the six (variant, L) cells, then the second seed at L = 1024."""
  runs = [{"variant": "ar", "seq_len": 1024, "seed": 0}]
  for seed, lengths in ((0, (128, 1024)), (1, (1024,))):
    for L in lengths:
      for v in ("two_stream", "decoupled_rope", "mdm"):
        runs.append({"variant": v, "seq_len": L, "seed": seed})
  return runs
