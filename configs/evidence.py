"""Issue 31's experiment: the paper's headline table at a reviewer's standard, in one sweep.

  python launch/sweep.py --config=configs/evidence.py --sweep_dir=runs/evidence
  python -m aoarm.tools.report runs/evidence

Each run is configs/length_sweep.py's (text8like, the 6x384 model, 2**27 training tokens at
every L, the same optimiser), so its `get_config` is that file's. The sweep:
- L in {128, 256, 512, 1024}: two_stream, decoupled_rope, and decoupled_rope given two_stream's
  training FLOPs (`compute_of=two_stream`, recorded as `train.compute_of`), seeds 0, 1, 2;
- ar and sigma_gpt at L = 128 and 1024, seed 0;
- mdm at L = 128 and 1024, seeds 0 and 1, scored with 8 stratified masking rates
  (`eval.num_orders=8`) on the checkpoint it samples from;
- learning-rate robustness at L = 1024: lr x 0.5 and x 2 for two_stream and decoupled_rope, seed 0.
Every run ends with the whole valid split's eval and its per-window file (train.final_eval), so
the report pairs arms by seed, and within a seed by window.
`runlocal` shrinks every run as configs/length_sweep.py does.
"""

import importlib.util
import os

_spec = importlib.util.spec_from_file_location(
  "length_sweep", os.path.join(os.path.dirname(os.path.abspath(__file__)), "length_sweep.py")
)
length_sweep = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(length_sweep)

LENGTHS = (128, 256, 512, 1024)
SEEDS = (0, 1, 2)
LR = 2e-3  # length_sweep's peak learning rate


def get_config(arg=None):
  return length_sweep.get_config(arg)


def sweep():
  runs = []
  for L in LENGTHS:
    for seed in SEEDS:
      runs.append({"variant": "two_stream", "seq_len": L, "seed": seed})
      runs.append({"variant": "decoupled_rope", "seq_len": L, "seed": seed})
      runs.append(
        {"variant": "decoupled_rope", "seq_len": L, "seed": seed, "compute_of": "two_stream"}
      )
  for L in (128, 1024):
    runs.append({"variant": "ar", "seq_len": L, "seed": 0})
    runs.append({"variant": "sigma_gpt", "seq_len": L, "seed": 0})
    for seed in (0, 1):
      runs.append({"variant": "mdm", "seq_len": L, "seed": seed, "eval.num_orders": 8})
  for variant in ("two_stream", "decoupled_rope"):
    for scale in (0.5, 2.0):
      runs.append({"variant": variant, "seq_len": 1024, "seed": 0, "opt.lr": LR * scale})
  return runs
