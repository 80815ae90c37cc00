"""What the trainer and its loop read of a run's config, as typed, frozen sections: `Trainer` and
`run_loop` receive a `TrainConfig`, never the whole ConfigDict (`TrainConfig.from_config`)."""

import dataclasses

from aoarm.config import config_check


@dataclasses.dataclass(frozen=True)
class OptConfig:
  """`config.opt`: AdamW on a warm-up then cosine schedule."""

  lr: float
  warmup_steps: int
  min_lr_ratio: float
  b1: float
  b2: float
  weight_decay: float
  clip_norm: float  # 0 = off
  grad_accum: int
  decay_tables: bool = False  # weight decay on token and position tables too (AO-GPT's groups)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """The training run: the seed, its orders, the optimizer, the budget and the loop's cadence."""

  seed: int
  opt: OptConfig
  order_train: str  # config.order.train: random | l2r | mixture
  l2r_prob: float  # config.order.l2r_prob
  batch_size: int
  num_steps: int
  stop_after: int  # 0 = run to num_steps
  log_every: int
  eval_every: int  # 0 = only at the end
  ckpt_every: int  # config.ckpt.every_steps
  profile: tuple | None  # (first, stop) step of the trace window, from config.train.profile
  ema_decay: float = 0.0  # config.train.ema_decay: 0 = no EMA of the parameters
  ema_warmup: bool = True  # config.train.ema_warmup: decay min(ema_decay, (1 + n) / (10 + n))
  eval_ema: bool = True  # config.eval.ema: in-training evals score the EMA where there is one
  patience: int = 0  # config.train.patience: evals without a new lowest loss before stopping
  init_on: str = "device"  # config.train.init_on: where the initial state is drawn (device | host)

  @classmethod
  def from_config(cls, cfg) -> "TrainConfig":
    t = cfg.train
    return cls(
      seed=int(cfg.seed),
      opt=OptConfig(**{f.name: cfg.opt[f.name] for f in dataclasses.fields(OptConfig)}),
      order_train=cfg.order.train,
      l2r_prob=float(cfg.order.l2r_prob),
      batch_size=t.batch_size,
      num_steps=t.num_steps,
      stop_after=t.stop_after,
      log_every=t.log_every,
      eval_every=t.eval_every,
      ckpt_every=cfg.ckpt.every_steps,
      profile=config_check.profile_window(t.profile),
      ema_decay=float(t.ema_decay),
      ema_warmup=bool(t.ema_warmup),
      eval_ema=bool(cfg.eval.ema),
      patience=int(t.patience),
      init_on=str(t.init_on),
    )

  @property
  def eval_weights(self) -> str:
    """Which weights the run's own evals score: 'ema' or 'params'."""
    return "ema" if self.ema_decay > 0 and self.eval_ema else "params"
