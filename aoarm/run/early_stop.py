"""Early stopping (`train.patience`): a run stops once that many in-training evals in a row found
no new lowest held-out loss. The stop is recorded in WORKDIR/early_stop.json (never half-written:
`infra.workdir.write_atomic`), so a relaunch with the same patience trains no further; the
checkpoint of the lowest loss is the best checkpoint (`ckpt.best`, DIR/ckpt_best).

The count starts with each process: a resumed run waits `patience` evals of its own before it
stops (the evals of the process before it are in metrics.jsonl, not counted here)."""

import dataclasses
import json
import math
import os

from aoarm.infra.workdir import write_atomic

FILE = "early_stop.json"


@dataclasses.dataclass
class EarlyStop:
  """Counts evals since the lowest loss; `update` says when to stop."""

  patience: int
  best_loss: float = math.inf
  best_step: int = -1
  since: int = 0  # evals since the lowest

  def update(self, step: int, loss: float) -> bool:
    """Record the eval of `step`; True when the run should stop here."""
    if loss < self.best_loss:
      self.best_loss, self.best_step, self.since = float(loss), step, 0
    else:
      self.since += 1
    return self.patience > 0 and self.since >= self.patience

  def record(self, workdir: str, step: int) -> dict:
    """Write WORKDIR/early_stop.json for the stop at `step`; returns what it wrote."""
    row = {"step": step, "patience": self.patience, "best_step": self.best_step}
    row["best_loss"] = self.best_loss
    write_atomic(os.path.join(workdir, FILE), json.dumps(row))
    return row


def stopped(workdir: str, step: int, patience: int) -> dict | None:
  """The record of an early stop at `step` (the newest checkpoint's) under the same patience;
  None where there is none, or where the run resumes with another patience or step."""
  path = os.path.join(workdir, FILE)
  if not patience or not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    row = json.load(f)
  return row if row.get("step") == step and row.get("patience") == patience else None
