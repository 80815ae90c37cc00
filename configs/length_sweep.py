"""The paper's experiment: held-out bits/char against sequence length L, per variant, on
text8like (27 symbols), with the same model, optimiser and number of training tokens per run.

  python launch/sweep.py --config=configs/length_sweep.py --sweep_dir=runs/length_sweep
  python -m aoarm.report runs/length_sweep

`arg`: variant=...,seq_len=...,seed=... (the sweep fills them in); `data_dir=DIR`: the folder
with text8-like train.txt, valid.txt, test.txt; `runlocal` shrinks every run and, without a
data_dir, trains on the pydoc text shipped with Python, so the CPU-sized sweep runs anywhere:

  python launch/sweep.py --config=configs/length_sweep.py:runlocal --sweep_dir=runs/sweep_local
"""

from aoarm import config_lib

TOKENS_PER_STEP = 65_536  # batch_size * L, the same for every L
TRAIN_TOKENS = 2**27  # 134M tokens per run (~7.6 epochs of text8like train)
DATA = "../shared/data/text8like"  # without data_dir=... (this project's machines)


def get_config(arg=None):
  a = config_lib.parse_arg(arg)
  variant = a.variant or "two_stream"
  c = config_lib.base_config(variant, arg)
  L = c.data.seq_len
  c.data.source = "text_files"
  data = a.data_dir or DATA
  c.data.train_path = f"{data}/train.txt"
  c.data.valid_path = f"{data}/valid.txt"
  c.data.test_path = f"{data}/test.txt"
  c.model.num_layers, c.model.d_model, c.model.num_heads = 6, 384, 6  # 10.6M params
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
  return c


def sweep():
  """Variants x L x seed, then the beyond-the-paper arm at L = 128 and 1024."""
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
  return runs
