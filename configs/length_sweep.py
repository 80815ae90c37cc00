"""The paper's experiment: held-out bits/char against sequence length L, per variant, on
text8like (27 symbols), with the same model, optimiser and number of training tokens per run.

  python launch/sweep.py --config=configs/length_sweep.py --sweep_dir=runs/length_sweep
  python -m aoarm.tools.report runs/length_sweep

`arg`: variant=...,seq_len=...,seed=... (the sweep fills them in); `data_dir=DIR`: the folder
with text8-like train.txt, valid.txt, test.txt; `runlocal` shrinks every run and, without a
data_dir, trains on the pydoc text shipped with Python, so the CPU-sized sweep runs anywhere:

  python launch/sweep.py --config=configs/length_sweep.py:runlocal --sweep_dir=runs/sweep_local

`compute_of=VARIANT`: the equal-compute arm. The run trains for the training FLOPs that VARIANT's
run spends (`aoarm.run.flops`, at V = 27): the same model and tokens per step, more steps.
"""

from aoarm.config import config_lib
from aoarm.run import flops

TOKENS_PER_STEP = 65_536  # batch_size * L, the same for every L
TRAIN_TOKENS = 2**27  # 134M tokens per run (~7.6 epochs of text8like train)
DATA = "../shared/data/text8like"  # without data_dir=... (this project's machines)
# AO-GPT as its authors train it (scxue/AO-GPT-MDM, config_larger_model_v3): the learned table
# for own positions, and a curriculum of 10% left-to-right sequences among the random orders
AOGPT_RECIPE = {"model.own_positions": "learned", "order.train": "mixture", "order.l2r_prob": 0.1}
# gates open and a unit-scale target-position embedding at init: a shorter starting plateau
# (RESULTS.md, issue 17; benchmarks/aogpt_plateau.py)
OPEN_INIT = {"model.ada_gate_init": 1.0, "model.ada_cond_std": 1.0}


def get_config(arg=None):
  a = config_lib.parse_arg(arg, compute_of="")
  variant = a.variant or "two_stream"
  c = config_lib.base_config(variant, arg, compute_of="")
  L = c.data.seq_len
  c.data.source = "text_files"
  data = a.data_dir or DATA
  c.data.train_path = f"{data}/train.txt"
  c.data.valid_path = f"{data}/valid.txt"
  c.data.test_path = f"{data}/test.txt"
  c.model.num_layers, c.model.d_model, c.model.num_heads = 6, 384, 6  # 10.6M params
  # XLA's matmuls, not the Mosaic-GPU MLP and q/k/v kernels: those compile while each program
  # is lowered, ~65 s a launch that no cache keeps (RESULTS.md, "Launch time", H200), more than
  # a run here trains (~57 s at L = 1024); the same function (implementation keys: reports and
  # resumes treat runs on either path alike). benchmarks/sweep_cell.py --paths=auto,xla A/Bs it.
  c.model.kernels.mlp = c.model.kernels.qkv = "xla"
  c.order.train = "l2r" if variant == "ar" else "random"
  c.train.batch_size = TOKENS_PER_STEP // L  # same tokens per step at every L
  c.train.num_steps = TRAIN_TOKENS // TOKENS_PER_STEP
  c.train.log_every = 50
  c.opt.lr, c.opt.warmup_steps = 2e-3, 100
  c.ckpt.every_steps = 200
  c.eval.split = "valid"
  c.eval.num_orders = 1  # K random orders per window, over the whole split
  c.eval.batch_size = max(8, 32768 // L)
  if a.runlocal:  # the same sweep, CPU-sized
    c.model.num_layers, c.model.d_model, c.model.num_heads = 2, 64, 4
    c.model.dtype = "float32"
    c.train.batch_size = 4096 // L
    c.train.num_steps = 50
    c.eval.max_windows = 64
    if not a.data_dir:
      c.data.source = "pydoc"
  if a.compute_of:
    c.train.num_steps = round(c.train.num_steps * compute_ratio(c, a.compute_of))
    c.train.compute_of = a.compute_of  # recorded: reports label the arm "equal compute"
  return c


def compute_ratio(c, other: str) -> float:
  """Training FLOPs per token of `other` over this run's model (same shape, L, V = 27)."""
  return flops.compute_ratio(c.model, 27, c.data.seq_len, other)


def sweep():
  """Variants x L x seed, then the beyond-the-paper arms at L = 128 and 1024: the rope options,
  AO-GPT's single stream (own positions by RoPE, by AO-GPT's learned table, and with its
  authors' 10% left-to-right curriculum too, and that recipe with its gates open and a unit-scale
  target embedding at init), a query stream
  in the top 1-3 blocks only, and decoupled_rope and aogpt (its authors' recipe, which leaves
  the starting plateau sooner: RESULTS.md) given two_stream's training FLOPs."""
  runs = config_lib.sweep_product(
    **{
      "variant": ["two_stream", "decoupled_rope", "mdm"],
      "seq_len": [128, 256, 512, 1024],
      "seed": [0],
    }
  )
  for L in (128, 1024):
    runs.append(
      {"variant": "decoupled_rope", "seq_len": L, "seed": 0, "model.rope.target_heads": 0.5}
    )
    runs.append(
      {"variant": "decoupled_rope", "seq_len": L, "seed": 0, "model.rope.order_dims": 0.5}
    )
    runs.append({"variant": "aogpt", "seq_len": L, "seed": 0})
    runs.append({"variant": "aogpt", "seq_len": L, "seed": 0, "model.own_positions": "learned"})
    runs.append({"variant": "aogpt", "seq_len": L, "seed": 0, **AOGPT_RECIPE})
    runs.append({"variant": "aogpt", "seq_len": L, "seed": 0, **AOGPT_RECIPE, **OPEN_INIT})
    for n in (1, 2, 3):
      runs.append({"variant": "two_stream", "seq_len": L, "seed": 0, "model.query_layers": n})
    runs.append({"variant": "decoupled_rope", "seq_len": L, "seed": 0, "compute_of": "two_stream"})
    runs.append(
      {"variant": "aogpt", "seq_len": L, "seed": 0, "compute_of": "two_stream", **AOGPT_RECIPE}
    )
    runs.append(
      {
        "variant": "aogpt",
        "seq_len": L,
        "seed": 0,
        "compute_of": "two_stream",
        **AOGPT_RECIPE,
        **OPEN_INIT,
      }
    )
  return runs
