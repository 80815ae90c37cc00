"""The model's own settings: a frozen dataclass built from `config.model` (hashable, so linen
modules can hold it), validated before anything is compiled."""

import dataclasses

import jax.numpy as jnp

from aoarm import kernels
from aoarm.config import key_table
from aoarm.models.variant import lookup as traits

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
OWN_POSITIONS = ("rope", "learned")  # model.own_positions (aogpt)
GELUS = ("tanh", "exact")  # model.gelu
CHOICES = {  # Kernels field -> its values
  "attention": ("auto", "xla", "cudnn"),
  "embed": ("auto", "gather", "onehot"),
  "norm": kernels.IMPLS,
  "mlp": kernels.IMPLS,
  "qkv": kernels.IMPLS,
  "decode": kernels.IMPLS,
}
# the kernel knobs' old flat names -> their `kernels` fields (`aoarm.config.key_table.LEGACY`;
# accepted for one release: committed results' commands name them)
LEGACY_KEYS = {
  old.removeprefix("model."): new.removeprefix("model.kernels.")
  for old, new in key_table.LEGACY.items()
  if new.startswith("model.kernels.")
}


@dataclasses.dataclass(frozen=True)
class Kernels:
  """How the model computes, never what (`model.kernels.*`; the same logits either way, up to
  rounding): `auto` picks per backend, see `aoarm.kernels.AUTO` for the Pallas sites."""

  attention: str = "auto"  # auto (cuDNN on GPU in bf16/fp16, else XLA) | xla | cudnn
  embed: str = "auto"  # token lookup: auto (one-hot if table <= 1024 rows) | gather | onehot
  norm: str = "auto"  # RMSNorm: auto | xla | pallas (one-read kernels)
  mlp: str = "auto"  # MLP: auto | xla | pallas (GELU in the matmul epilogues, Hopper)
  qkv: str = "auto"  # q/k/v projection: auto | xla | pallas (RoPE in the epilogue, Hopper)
  decode: str = "auto"  # cached-decoding attention: auto | xla | pallas (flash decoding)

  def __post_init__(self):
    for name, allowed in CHOICES.items():
      if getattr(self, name) not in allowed:
        raise ValueError(
          f"model.kernels.{name} must be one of {allowed}, got {getattr(self, name)!r}"
        )


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  variant: str = "two_stream"
  vocab_size: int = 27  # real symbols; the model adds one special row (BOS or MASK) itself
  seq_len: int = 128  # L; sigma-GPT's position tables have this many rows
  num_layers: int = 6  # every default here is also config.model's (`config_lib.base_config`)
  d_model: int = 384
  num_heads: int = 6
  mlp_dim: int = 0  # 0 -> 4 * d_model
  tie_embeddings: bool = True
  dtype: str = "bfloat16"  # compute dtype: float32 | bfloat16 | float16
  param_dtype: str = "float32"
  remat: str = "none"  # none | full | dots (jax.checkpoint policy per block)
  rope_base: float = 10_000.0
  target_heads: float = 1.0  # decoupled_rope: fraction of heads whose queries use the target pos
  order_dims: float = 0.0  # decoupled_rope: fraction of rotary dims that encode generation step
  query_layers: int = 0  # two-stream: the query stream runs in the top this many blocks; 0: all
  own_positions: str = "rope"  # aogpt: rope | learned (AO-GPT's own table added to the input)
  ada_gate_init: float = 0.0  # aogpt: bias of every block's two gates at init (AO-GPT's: 0)
  ada_cond_std: float = 0.02  # aogpt: init std of the target-position embedding (AO-GPT's)
  # AO-GPT's (and GPT-2's) parts, for every variant; the defaults are aoarm's backbone
  bias: bool = False  # a bias on every Linear: q/k/v, attention out, both MLP layers, untied head
  norm_eps: float = 1e-6  # every RMSNorm's epsilon (QK-norm's too; AO-GPT: 1e-5)
  gelu: str = "tanh"  # the MLP's GELU: tanh (approximate) | exact (erf; torch's nn.GELU())
  init_trunc: float = 0.0  # normal inits cut at +- this many std (AO-GPT: 3); 0 = not cut
  capture_attention: bool = False  # sow attention scores/weights (diagnostics); slow path
  kernels: Kernels = Kernels()  # implementation choices (`model.kernels.*`)

  def __post_init__(self):
    rope_options = traits(self.variant).rope_options
    for name in ("vocab_size", "num_layers", "d_model", "num_heads"):
      if getattr(self, name) < 1:
        raise ValueError(f"model.{name} must be >= 1, got {getattr(self, name)}")
    if self.seq_len < 2:
      raise ValueError(f"seq_len must be >= 2, got {self.seq_len}")
    if self.d_model % self.num_heads:
      raise ValueError(
        f"model.d_model={self.d_model} is not divisible by model.num_heads={self.num_heads}"
      )
    if self.head_dim % 2:
      raise ValueError(f"head dim d_model/num_heads={self.head_dim} must be even for RoPE")
    for name in ("dtype", "param_dtype"):
      if getattr(self, name) not in DTYPES:
        raise ValueError(
          f"model.{name} must be one of {tuple(DTYPES)}, got {getattr(self, name)!r}"
        )
    if self.remat not in ("none", "full", "dots"):
      raise ValueError(f"model.remat must be none|full|dots, got {self.remat!r}")
    for name in ("target_heads", "order_dims"):
      v = getattr(self, name)
      if not 0.0 <= v <= 1.0:
        raise ValueError(f"model.rope.{name} must be in [0, 1], got {v}")
    if not 0 <= self.query_layers <= self.num_layers:
      raise ValueError(
        f"model.query_layers must be in [0, num_layers={self.num_layers}], got {self.query_layers}"
      )
    if self.query_layers and traits(self.variant).streams != 2:
      raise ValueError(
        f"model.query_layers applies to two-stream variants only, not variant={self.variant}"
      )
    if self.own_positions not in OWN_POSITIONS:
      raise ValueError(
        f"model.own_positions must be {'|'.join(OWN_POSITIONS)}, got {self.own_positions!r}"
      )
    if self.own_positions != "rope" and not traits(self.variant).position_options:
      raise ValueError(
        f"model.own_positions={self.own_positions} applies to aogpt only, not "
        f"variant={self.variant}"
      )
    init = (self.ada_gate_init, self.ada_cond_std)
    if (
      init != (ModelConfig.ada_gate_init, ModelConfig.ada_cond_std)
      and not traits(self.variant).adaptive_norm
    ):
      raise ValueError(
        f"model.ada_gate_init / model.ada_cond_std apply to aogpt only, not variant={self.variant}"
      )
    if self.gelu not in GELUS:
      raise ValueError(f"model.gelu must be {'|'.join(GELUS)}, got {self.gelu!r}")
    if not self.norm_eps > 0:
      raise ValueError(f"model.norm_eps must be > 0, got {self.norm_eps}")
    if self.init_trunc < 0 or 0 < self.init_trunc < 1:
      raise ValueError(f"model.init_trunc must be 0 (off) or >= 1 (std), got {self.init_trunc}")
    if not self.ada_cond_std > 0:
      raise ValueError(f"model.ada_cond_std must be > 0, got {self.ada_cond_std}")
    if not rope_options and (self.target_heads != 1.0 or self.order_dims != 0.0):
      raise ValueError(
        f"rope.target_heads / rope.order_dims do not apply to variant={self.variant} "
        "(only to the single-stream probes, e.g. decoupled_rope)"
      )

  @property
  def head_dim(self) -> int:
    return self.d_model // self.num_heads

  @property
  def first_query_layer(self) -> int:
    """The block where a two-stream model's query stream starts (0 unless query_layers)."""
    return self.num_layers - self.query_layers if self.query_layers else 0

  @property
  def hidden_dim(self) -> int:
    return self.mlp_dim or 4 * self.d_model

  @property
  def table_rows(self) -> int:
    """Rows of the token table: vocab + 1 special (BOS/MASK), padded to a multiple of 128 so it
    shards evenly over any tensor axis; logits are sliced back to the real vocabulary."""
    return -(-(self.vocab_size + 1) // 128) * 128

  @property
  def onehot_embed(self) -> bool:
    """Look tokens up by a one-hot matmul instead of a gather. The gather's gradient is a
    scatter-add into the table, which serialises on a small table (27 symbols, or every MASK
    row of mdm hitting one row): 40-86% of an H100 step at 6/384. 'auto': one-hot for tables of
    at most 1024 rows, where its extra FLOPs are negligible."""
    if self.kernels.embed == "auto":
      return self.table_rows <= 1024
    return self.kernels.embed == "onehot"

  @property
  def compute_dtype(self):
    return DTYPES[self.dtype]

  @property
  def params_dtype(self):
    return DTYPES[self.param_dtype]

  @classmethod
  def from_config(cls, model_cfg, seq_len: int | None = None) -> "ModelConfig":
    """From a ConfigDict `config.model` (with nested `rope` and `kernels` sections; the
    knobs' old flat names, e.g. `norm_impl`, are read as their `kernels` fields)."""
    d = dict(model_cfg)
    rope = d.pop("rope", {}) or {}
    d["rope_base"] = rope.get("base", cls.rope_base)
    d["target_heads"] = rope.get("target_heads", cls.target_heads)
    d["order_dims"] = rope.get("order_dims", cls.order_dims)
    kern = dict(d.pop("kernels", {}) or {})
    for old, new in LEGACY_KEYS.items():
      if old in d:
        kern[new] = d.pop(old)
    try:
      d["kernels"] = Kernels(**kern)
    except TypeError:
      unknown = sorted(set(kern) - set(CHOICES))
      raise ValueError(f"unknown config.model.kernels keys: {unknown}") from None
    if seq_len is not None:
      d["seq_len"] = seq_len
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
      raise ValueError(f"unknown config.model keys: {unknown}")
    return cls(**d)
