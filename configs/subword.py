"""Issue 33 (4): the paper's comparison in the field's usual setting, done data-limited and
fair: byte-level BPE (16384 entries) on every text source of shared/data/raw, WikiText-2
included (`launch/subword_corpus.py` splits each source 90/5/5 into train/valid/test: 21.6 MB of
training text, ~5M tokens), a model sized for it, two lengths, three arms, several seeds, each
arm read at its best validation checkpoint.

  python launch/subword_corpus.py --raw=../shared/data/raw --out=/tmp/subword_corpus
  python launch/sweep.py --config=configs/subword.py --sweep_dir=runs/subword
  # each run, at its best checkpoint: --mode=eval --config.eval.checkpoint=best (valid, test)
  python -m aoarm.tools.report runs/subword --gap_to=two_stream --gap_of=decoupled_rope

The model: 6 blocks x 512 (8 heads), 19M parameters outside the 8.4M of the token table, bf16.
~5M training tokens cannot feed a model this size to convergence (20 tokens per parameter
would be ~0.25M parameters); each arm is read at its best validation checkpoint. The size is
the issue's suggested range, chosen, not tuned: no size search was run. Every L trains on
32,768 tokens per step (an epoch is ~145 steps) for `steps` steps (default 3000, ~20 epochs),
evaluates 16 fixed valid batches every 100 steps, keeps the best (`train.eval_every`,
`ckpt.best`) and stops 5 evals without a new lowest loss after it (`train.patience`). At 3000
steps no arm reached its validation minimum at L = 1024 (RESULTS.md: two_stream's valid loss
still falls at the end, decoupled_rope's levels off at the cosine schedule's floor), so the
runs are compared at the end of one shared schedule; `steps=N` (a config arg, e.g.
`--config=configs/subword.py:steps=8000` for the sweep, into a new --sweep_dir: a run resumed
with another `steps` changes its learning-rate schedule midway) lengthens every arm's schedule
alike.
`compute_of=two_stream`: decoupled_rope given two_stream's training FLOPs (at V = 16384), i.e.
`steps` times their FLOP ratio; with early stopping that arm may stop improving earlier, which
is the fair reading of "equal compute" here.
Sweep: L = 1024 with seeds 0, 1, 2 and L = 256 with seeds 0, 1, for two_stream,
decoupled_rope and decoupled_rope at two_stream's FLOPs. `data_dir=DIR`: the corpus folder
(default /tmp/subword_corpus); `runlocal`: CPU-sized.
"""

from aoarm.config import config_lib
from aoarm.run import flops

DATA = "/tmp/subword_corpus"  # launch/subword_corpus.py's --out
TOKENS_PER_STEP = 32_768
STEPS = 3000  # the default of the config arg `steps`
VOCAB = 16384


def get_config(arg=None):
  a = config_lib.parse_arg(arg, compute_of="", steps=STEPS)
  variant = a.variant or "two_stream"
  c = config_lib.base_config(variant, arg, compute_of="", steps=STEPS)
  data = a.data_dir or DATA
  c.data.source = "text_files"
  c.data.train_path, c.data.valid_path = f"{data}/train", f"{data}/valid"
  c.data.test_path = f"{data}/test"
  c.data.extensions = ".txt,.jsonl"  # subword_corpus.py names every file one of these
  c.data.tokenizer, c.data.vocab_size = "bpe", VOCAB
  c.data.seq_len = a.seq_len or 1024
  c.model.num_layers, c.model.d_model, c.model.num_heads = 6, 512, 8
  # XLA's matmuls: the Mosaic-GPU kernels' ~65 s of compile a launch (no cache keeps it) would
  # come back in every run and in each of its two best-checkpoint evals (configs/length_sweep.py)
  c.model.kernels.mlp = c.model.kernels.qkv = "xla"
  c.train.batch_size = TOKENS_PER_STEP // c.data.seq_len
  c.train.num_steps = a.steps
  c.train.log_every = 50
  c.train.eval_every = 100  # early stopping: the best of these is kept (DIR/ckpt_best)
  c.train.patience = 5  # and training stops 5 evals (~3 epochs at L = 1024) past the lowest
  c.train.eval_batches = 16
  c.train.final_eval = False  # the evals that count read the best checkpoint
  c.opt.lr, c.opt.warmup_steps = 6e-4, 200
  c.ckpt.every_steps = 500
  c.eval.checkpoint = "best"
  c.eval.batch_size = max(8, 32768 // c.data.seq_len)
  if a.runlocal:
    c.model.num_layers, c.model.d_model, c.model.num_heads = 2, 64, 4
    c.model.dtype = "float32"
    c.data.vocab_size = 512
    c.train.batch_size, c.train.num_steps, c.train.eval_every = 2, min(a.steps, 40), 10
    c.train.eval_batches = 2
    c.eval.max_windows = 16
  if a.compute_of:
    c.train.num_steps = round(c.train.num_steps * compute_ratio(c, a.compute_of))
    c.train.compute_of = a.compute_of
  return c


def compute_ratio(c, other: str) -> float:
  """Training FLOPs per token of `other` over this run's model (same shape, L and vocabulary)."""
  return flops.compute_ratio(c.model, c.data.vocab_size, c.data.seq_len, other)


def sweep():
  runs = []
  for L, seeds in ((1024, (0, 1, 2)), (256, (0, 1))):
    for seed in seeds:
      runs.append({"variant": "two_stream", "seq_len": L, "seed": seed})
      runs.append({"variant": "decoupled_rope", "seq_len": L, "seed": seed})
      runs.append(
        {"variant": "decoupled_rope", "seq_len": L, "seed": seed, "compute_of": "two_stream"}
      )
  return runs
