"""AO-GPT's single stream (Xue et al., ICML 2026): the target position enters every block through
adaptive layer norm, attention has QK-norm (docs/variants.md).

  python -m aoarm.main --config=configs/aogpt.py:runlocal --workdir=/tmp/aogpt
  python -m aoarm.main --config=configs/aogpt.py:recipe --workdir=DIR ...   # AO-GPT's recipe

`recipe`: AO-GPT's training recipe as its authors' code has it (scxue/AO-GPT-MDM,
`config_larger_model_v3/train_AOGPT_AdaLN6_NoRep_cond_128.py` and `train_AOGPT_CL.py`): AdamW at
lr 6e-4 (b2 0.95), 2000 warm-up steps, cosine to lr / 10, clipping at 1.0, weight decay 0.05 on
every tensor of 2 or more dimensions (token and position tables included), ~1M tokens per step
(2^20 / L sequences), an EMA of the parameters at 0.9999 with the (1 + n) / (10 + n) warm-up
(their `ema.py`), the learned own-position table, and the curriculum of 10% left-to-right
sequences (`Random_CL`, random_ratio 0.9); and their model's parts (`MODEL_PARTS`): the learned
own-position table in place of RoPE, biases on every Linear, an untied head with a bias, exact
(erf) GELU, RMSNorm's epsilon 1e-5 and normal inits cut at 3 std. With these, aoarm's aogpt
computes their model's function: `aoarm.tools.convert_aogpt` loads their weights, and
`tests/test_aogpt_torch.py` checks the logits against their own forward.
"""

from aoarm.config import config_lib
from aoarm.models.aogpt import THEIR_PARTS

# AO-GPT's model's parts as config keys (from `aoarm.models.aogpt.THEIR_PARTS`, where each is
# explained): learned own positions, biases, untied head, exact GELU, epsilon 1e-5, cut inits
MODEL_PARTS = {f"model.{k}": v for k, v in THEIR_PARTS.items() if k != "variant"}
# AO-GPT's own recipe (see the docstring); every key a documented config key
RECIPE = {
  **MODEL_PARTS,
  "order.train": "mixture",
  "order.l2r_prob": 0.1,
  "opt.lr": 6e-4,
  "opt.b1": 0.9,
  "opt.b2": 0.95,
  "opt.warmup_steps": 2000,
  "opt.min_lr_ratio": 0.1,
  "opt.clip_norm": 1.0,
  "opt.weight_decay": 0.05,
  "opt.decay_tables": True,
  "train.ema_decay": 0.9999,
  "train.ema_warmup": True,
}
RECIPE_TOKENS_PER_STEP = 1 << 20  # 16 x 1024 x 64 micro-batches: 2^20 tokens


def apply(c, settings: dict):
  """Set flat `settings` ({'opt.lr': 6e-4, ...}) on the ConfigDict `c`."""
  for key, value in settings.items():
    *path, name = key.split(".")
    node = c
    for p in path:
      node = node[p]
    node[name] = value
  return c


def get_config(arg=None):
  a = config_lib.parse_arg(arg, recipe=False)
  c = config_lib.base_config("aogpt", arg, recipe=False)
  if a.recipe:
    warmup = c.opt.warmup_steps
    apply(c, RECIPE)
    if a.runlocal:  # runlocal keeps its CPU-sized batch and its warm-up (of its 300 steps)
      c.opt.warmup_steps = warmup
    else:
      c.train.batch_size = max(RECIPE_TOKENS_PER_STEP // c.data.seq_len, 1)
  return c


def sweep():
  return config_lib.sweep_product(**{"data.seq_len": [128, 1024], "seed": [0]})
