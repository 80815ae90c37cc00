"""Metric writers (process 0 only): tensorboardX + a JSONL file in the workdir, and a tqdm
progress bar with loss, tokens/s and MFU (docs/flops.md)."""

import json
import os
import time

import jax
import tqdm


class MetricWriter:
  """Appends to DIR/metrics.jsonl and DIR/tb/. A run resumed from step k first drops what the
  interrupted run logged after k (those steps are replayed): the JSONL rows are rewritten without
  them, and TensorBoard purges its events past k (`purge_step`). So a resumed run's curves hold
  each step once."""

  def __init__(self, workdir: str, enabled: bool | None = None, start_step: int = 0):
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self._tb = None
    self._jsonl = None
    if self.enabled:
      from tensorboardX import SummaryWriter

      os.makedirs(workdir, exist_ok=True)
      path = os.path.join(workdir, "metrics.jsonl")
      _drop_after(path, start_step)
      self._tb = SummaryWriter(os.path.join(workdir, "tb"), purge_step=start_step + 1)
      self._jsonl = open(path, "a", encoding="utf-8")

  def write(self, step: int, metrics: dict):
    if not self.enabled:
      return
    row = {"step": int(step), "time": time.time(), **{k: float(v) for k, v in metrics.items()}}
    self._jsonl.write(json.dumps(row) + "\n")
    self._jsonl.flush()
    for k, v in metrics.items():
      self._tb.add_scalar(k, float(v), step)

  def close(self):
    if self.enabled:
      self._jsonl.close()
      self._tb.close()


def _drop_after(path: str, step: int):
  """Rewrite the JSONL file without rows logged after `step` (atomically)."""
  if not os.path.exists(path):
    return
  keep, dropped = [], 0
  with open(path, encoding="utf-8") as f:
    for line in f:
      try:
        later = json.loads(line).get("step", 0) > step
      except ValueError:  # a line cut by a crash
        later = True
      if later:
        dropped += 1
      else:
        keep.append(line)
  if dropped:
    from aoarm.infra import workdir

    workdir.write_atomic(path, "".join(keep))


class Progress:
  """A tqdm bar over steps; `update(step, loss, tokens_per_s, mfu)` at each log."""

  def __init__(self, start: int, total: int, enabled: bool | None = None):
    enabled = jax.process_index() == 0 if enabled is None else enabled
    self.bar = tqdm.tqdm(
      total=total,
      initial=start,
      disable=not enabled,
      unit="step",
      dynamic_ncols=True,
      mininterval=1.0,
    )

  def update(self, step: int, **shown):
    self.bar.n = step
    self.bar.set_postfix(
      {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in shown.items()}, refresh=True
    )

  def tick(self, step: int):
    """The step count between logs (no host sync): the bar's own rate shows from the first
    steps on, where a log every train.log_every steps of a slow step would show none for long."""
    self.bar.update(step - self.bar.n)

  def close(self):
    self.bar.close()
