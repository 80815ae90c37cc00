"""Every config key's allowed values, in one table, checked before anything is read or written.

`RULES` maps each key of `config_lib.base_config` to a rule; `validate(cfg)` raises a UserError
naming the first bad key and value. A key the table does not know is itself an error, so a new
config field cannot skip validation (tests/test_config_check.py checks both directions). Checks
that need the data or the devices (batch vs data-parallel size, seq_len vs the data) stay where
that knowledge is, but also run before anything is compiled or written.
"""

import dataclasses
import math

from aoarm import kernels
from aoarm.config import key_table
from aoarm.data import SOURCES
from aoarm.data.tokenizers import TOKENIZERS
from aoarm.infra.errors import UserError
from aoarm.models import VARIANTS
from aoarm.models.model_config import CHOICES as KERNEL_CHOICES
from aoarm.models.model_config import DTYPES as MODEL_DTYPES
from aoarm.models.model_config import GELUS, OWN_POSITIONS


@dataclasses.dataclass(frozen=True)
class Num:
  """An int (integer=True) or a finite float in [lo, hi]; `open_lo`/`open_hi` exclude the end."""

  lo: float = -math.inf
  hi: float = math.inf
  integer: bool = False
  open_lo: bool = False
  open_hi: bool = False
  also: tuple = ()  # extra allowed values outside the range (e.g. -1 = "the rest")

  def check(self, v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
      return f"must be a number, got {v!r}"
    if self.integer and not float(v).is_integer():
      return f"must be an integer, got {v!r}"
    if v in self.also:
      return None
    if not math.isfinite(v):
      return f"must be finite, got {v}"
    below = v <= self.lo if self.open_lo else v < self.lo
    above = v >= self.hi if self.open_hi else v > self.hi
    if below or above:
      return f"must be {self.describe()}, got {v}"
    return None

  def describe(self):
    if math.isinf(self.hi):
      rng = f"{'>' if self.open_lo else '>='} {_fmt(self.lo)}"
    else:
      lo = "(" if self.open_lo else "["
      hi = ")" if self.open_hi else "]"
      rng = f"in {lo}{_fmt(self.lo)}, {_fmt(self.hi)}{hi}"
    return rng + (f" or {', '.join(map(str, self.also))}" if self.also else "")


def _fmt(x):
  if math.isinf(x):
    return "inf" if x > 0 else "-inf"
  return str(int(x)) if float(x).is_integer() else str(x)


def Int(lo=-math.inf, hi=math.inf, also=()):
  return Num(lo, hi, integer=True, also=also)


@dataclasses.dataclass(frozen=True)
class Choice:
  options: tuple

  def check(self, v):
    return None if v in self.options else f"must be one of {'|'.join(self.options)}, got {v!r}"


@dataclasses.dataclass(frozen=True)
class Bool:
  def check(self, v):
    return None if isinstance(v, bool) else f"must be true or false, got {v!r}"


@dataclasses.dataclass(frozen=True)
class Text:
  """Free text; `parse` (optional) raises ValueError on a malformed value."""

  parse: object = None

  def check(self, v):
    if not isinstance(v, str):
      return f"must be text, got {v!r}"
    if self.parse is not None:
      try:
        self.parse(v)
      except ValueError as e:
        return str(e)
    return None


def profile_window(spec: str) -> tuple | None:
  """`train.profile` 'A:B' -> (A, B), the steps a trace starts at and stops before; '' -> None.
  The one parser of it: the rule below and the training loop both call it."""
  if not spec:
    return None
  a, sep, b = spec.partition(":")
  if not sep or not a.isdigit() or not b.isdigit() or int(b) <= int(a):
    raise ValueError(f"must be 'A:B' with A < B, got {spec!r}")
  return int(a), int(b)


def _profile(spec):
  profile_window(spec)


def _positions(spec):
  items = [p.strip() for p in spec.split(",") if p.strip()]
  if not all(p.isdigit() for p in items):
    raise ValueError(f"must be a comma list of positions 0, 1, ..., got {spec!r}")


POS = Int(1)  # a count: at least 1
NONNEG = Int(0)
FRACTION = Num(0.0, 1.0)
DTYPES = tuple(MODEL_DTYPES)

RULES = {
  "seed": NONNEG,
  "data.source": Choice(SOURCES),
  "data.train_path": Text(),
  "data.valid_path": Text(),
  "data.extensions": Text(),
  "data.test_path": Text(),
  "data.text8": Bool(),
  "data.tokenizer": Choice(TOKENIZERS),
  "data.vocab_size": Int(2, 1 << 32),
  "data.spm_model_type": Choice(("unigram", "bpe")),
  "data.tokenizer_path": Text(),
  "data.tokenizer_sample_bytes": NONNEG,  # 0 = the tokenizer's default
  "data.doc_per_line": Bool(),
  "data.text_key": Text(),
  "data.num_workers": NONNEG,  # 0 = one per CPU core
  "data.shard_tokens": Int(1024),
  "data.seq_len": Int(2),
  "data.valid_fraction": Num(0.0, 1.0, open_lo=True, open_hi=True),
  "data.tfds_name": Text(),
  "data.tfds_text_key": Text(),
  "data.tfds_train_split": Text(),
  "data.tfds_valid_split": Text(),
  "data.tfds_data_dir": Text(),
  "data.markov_vocab": Int(2, 26),  # symbols are shown (and prompted) as the letters a..z
  "data.markov_tokens": Int(4),
  "data.markov_concentration": Num(0.0, open_lo=True),
  "data.cache_dir": Text(),
  "model.variant": Choice(VARIANTS),
  "model.num_layers": POS,
  "model.d_model": POS,
  "model.num_heads": POS,
  "model.mlp_dim": NONNEG,  # 0 = 4 * d_model
  "model.tie_embeddings": Bool(),
  "model.dtype": Choice(DTYPES),
  "model.param_dtype": Choice(DTYPES),
  "model.remat": Choice(("none", "full", "dots")),
  "model.capture_attention": Bool(),
  "model.query_layers": NONNEG,  # 0 = every block
  "model.own_positions": Choice(OWN_POSITIONS),
  "model.ada_gate_init": Num(),
  "model.ada_cond_std": Num(0.0, open_lo=True),
  "model.bias": Bool(),
  "model.norm_eps": Num(0.0, open_lo=True),
  "model.gelu": Choice(GELUS),
  "model.init_trunc": Num(0.0),
  **{f"model.kernels.{k}": Choice(v) for k, v in KERNEL_CHOICES.items()},
  "model.rope.base": Num(0.0, open_lo=True),
  "model.rope.target_heads": FRACTION,
  "model.rope.order_dims": FRACTION,
  "order.train": Choice(("random", "l2r", "mixture")),
  "order.l2r_prob": FRACTION,
  "opt.lr": Num(0.0),
  "opt.warmup_steps": NONNEG,
  "opt.min_lr_ratio": FRACTION,
  "opt.b1": Num(0.0, 1.0, open_hi=True),
  "opt.b2": Num(0.0, 1.0, open_hi=True),
  "opt.weight_decay": Num(0.0),
  "opt.clip_norm": Num(0.0),  # 0 = off
  "opt.grad_accum": POS,
  "opt.decay_tables": Bool(),
  "train.batch_size": POS,
  "train.num_steps": POS,
  "train.compute_of": Choice(("", *VARIANTS)),  # "" = its own budget
  "train.stop_after": NONNEG,  # 0 = run to num_steps
  "train.patience": NONNEG,  # 0 = no early stopping
  "train.ema_decay": Num(0.0, 1.0, open_hi=True),  # 0 = off
  "train.ema_warmup": Bool(),
  "train.log_every": POS,
  "train.eval_every": NONNEG,  # 0 = only at the end
  "train.profile": Text(_profile),
  "train.eval_batches": POS,
  "train.final_eval": Bool(),
  "train.compile_cache": Text(),  # auto | off | a folder
  "train.init_on": Choice(("device", "host")),
  "train.threefry_kernel": Bool(),
  "ckpt.every_steps": POS,
  "ckpt.keep": POS,
  "ckpt.async_save": Bool(),
  "ckpt.allow_changes": Bool(),
  "ckpt.best": Bool(),
  "eval.split": Choice(("valid", "test", "train")),
  "eval.num_orders": POS,
  "eval.l2r": Bool(),
  "eval.batch_size": POS,
  "eval.max_windows": NONNEG,  # 0 = the whole split
  "eval.ema": Bool(),
  "eval.checkpoint": Choice(("latest", "best")),
  "sample.num_samples": POS,
  "sample.length": NONNEG,  # 0 = data.seq_len
  "sample.order": Choice(("random", "l2r", "given", "adaptive")),
  "sample.order_positions": Text(_positions),
  "sample.k": POS,
  "sample.temperature": Num(0.0, 100.0),  # 0 = greedy; far above 1 the draw is uniform noise
  "sample.top_p": Num(0.0, 1.0, open_lo=True),
  "sample.seed": NONNEG,
  "sample.prompt": Text(),
  "sample.infill": Text(),
  "sample.mdm_steps": NONNEG,  # 0 = length
  "sample.unroll": POS,
  "sample.precision": Choice(("float32", "float64")),
  "sample.ema": Bool(),
  "sample.checkpoint": Choice(("latest", "best")),
  "mesh.data": Int(1, also=(-1,)),  # -1 = the remaining devices
  "mesh.fsdp": Int(1, also=(-1,)),
  "mesh.tensor": Int(1, also=(-1,)),
}


def validate(cfg, backend: str | None = None):
  """Raise UserError on the first key outside its range (one line: key, rule, value).
  `backend` ('cpu', 'gpu', 'tpu'): also refuse choices this backend cannot run."""
  values = key_table.flat(cfg)
  unknown = sorted(set(values) - set(RULES))
  if unknown:
    raise UserError(f"unknown config key {unknown[0]} (no rule in aoarm/config/config_check.py)")
  for key, v in values.items():
    problem = RULES[key].check(v)
    if problem:
      raise UserError(f"config.{key} {problem}")
  if cfg.train.patience and not cfg.train.eval_every:
    raise UserError(
      f"config.train.patience={cfg.train.patience} needs train.eval_every > 0: early stopping "
      "counts the in-training evals"
    )
  if backend is None:
    return
  k = cfg.model.kernels
  if backend != "gpu" and k.attention == "cudnn":
    raise UserError(f"config.model.kernels.attention=cudnn needs a GPU; this backend is {backend}")
  for site in ("norm", "mlp", "qkv", "decode"):
    problem = kernels.check(site, k[site], backend)
    if problem:
      raise UserError(f"config.{problem}")
