"""What a resumed run may change. Each checkpoint's meta records the run's config and the SHA-256
of its training tokens; a resume compares them with the new launch before anything is written.
Which key is which is the `resume` column of `aoarm.config.key_table`:

- refused (unless `ckpt.allow_changes`, then a warning each): the seed, the batch size, the
  training data, the training orders and every model option that changes the function the model
  computes. Any of them makes the resumed run a different experiment from the one its first
  steps belong to; its batches or objective would no longer be those of (seed, step).
- refused always: `train.num_steps` below the checkpoint's step, and `opt.clip_norm` or
  `train.ema_decay` switched on or off (the state then has another structure; a restore could
  not read it).
- noted (a warning): optimizer settings and `train.num_steps`, which change the learning-rate
  schedule from the checkpoint's step on.
- silent: evaluation, sampling, logging, checkpointing, the mesh, and the implementation knobs
  (kernels, attention backend, remat), which do not change the mathematics.
"""

import logging

from aoarm.config import key_table
from aoarm.infra.errors import UserError

log = logging.getLogger("aoarm")

WHY = {
  "seed": "the seed fixes the initial weights and every batch and order of (seed, step)",
  "train.batch_size": "each step's rows are a function of the batch size",
  "order": "the training orders define the objective",
  "model": "the model would compute another function than the one its weights learned",
  "data": "the training data",
}


def _refused_key(key: str) -> bool:
  return key_table.on_resume(key) == key_table.REFUSE


def _noted_key(key: str) -> bool:
  return key_table.on_resume(key) == key_table.NOTE


def _why(key: str) -> str:
  return WHY.get(key) or WHY.get(key.split(".")[0], "")


def check(meta: dict, cfg, train_fingerprint: str, ckpt_dir: str):
  """Raise UserError for a refused change; log a warning for each allowed one."""
  step = int(meta.get("step", 0))
  if cfg.train.num_steps < step:
    raise UserError(
      f"config.train.num_steps={cfg.train.num_steps} is below the step of the checkpoint in "
      f"{ckpt_dir} ({step}); a resumed run cannot go back. Use num_steps >= {step}"
    )
  stop = cfg.train.stop_after
  if stop and stop <= step:
    raise UserError(
      f"config.train.stop_after={stop} is at or below the step of the checkpoint in {ckpt_dir} "
      f"({step}): nothing would be trained. Use stop_after > {step}, or 0 to run to num_steps"
    )
  saved_cfg = meta.get("config")
  if saved_cfg is None:
    log.warning(
      "the checkpoint at step %d predates recorded configs: seed, batch size, data and model "
      "options were not compared with this launch",
      step,
    )
    return
  before = key_table.flat(saved_cfg)
  now = key_table.flat(cfg)
  was, is_ = before.get("opt.clip_norm", 0) > 0, now["opt.clip_norm"] > 0
  if was != is_:
    raise UserError(
      f"config.opt.clip_norm={now['opt.clip_norm']} switches gradient clipping "
      f"{'on' if is_ else 'off'}, but the checkpoint in {ckpt_dir} was trained with "
      f"clip_norm={before.get('opt.clip_norm')}: the optimizer state has another structure. "
      "Resume with the checkpoint's value, or use another --workdir"
    )
  was, is_ = before.get("train.ema_decay", 0) > 0, now["train.ema_decay"] > 0
  if was != is_:
    raise UserError(
      f"config.train.ema_decay={now['train.ema_decay']} switches the parameters' EMA "
      f"{'on' if is_ else 'off'}, but the checkpoint in {ckpt_dir} was trained with "
      f"ema_decay={before.get('train.ema_decay', 0.0)}: the state has another structure. "
      "Resume with the checkpoint's value, or use another --workdir"
    )
  refused, noted = [], []
  for key in sorted(set(before) & set(now)):  # a key one version lacks cannot be compared
    a, b = before[key], now[key]
    if a == b:
      continue
    line = f"{key}: checkpoint {a!r} -> now {b!r}"
    if _refused_key(key):
      refused.append(f"{line} ({_why(key)})")
    elif _noted_key(key):
      noted.append(line)
  saved_fp = (meta.get("data") or {}).get("train")
  if saved_fp and saved_fp != train_fingerprint:
    refused.append(
      f"training data: checkpoint tokens sha256 {saved_fp[:12]}… -> now {train_fingerprint[:12]}…"
    )
  if refused and not cfg.ckpt.allow_changes:
    raise UserError(
      f"this launch differs from the checkpoint in {ckpt_dir}: {'; '.join(refused)}. Resuming "
      "would mix two experiments in one run; use another --workdir, or pass "
      "--config.ckpt.allow_changes=true to resume anyway (each change is then logged)"
    )
  for line in refused:
    log.warning("resuming with a changed setting (ckpt.allow_changes): %s", line)
  for line in noted:
    log.warning("resuming with a changed setting (the schedule changes from here on): %s", line)
