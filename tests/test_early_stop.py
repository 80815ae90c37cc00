"""Early stopping (`train.patience`, issue 33): a run stops, with a checkpoint, once that many
in-training evals in a row found no new lowest loss; a relaunch with the same patience trains no
further, and patience=0 trains on. The evals' losses are scripted here: the stop step is known."""

import json
import os

from aoarm.run import early_stop, modes

from helpers import losses_by_step, tiny_run_config

SCRIPT = [5.0, 4.0, 4.5, 4.6, 3.0, 2.0]  # evals at steps 2, 4, 6, 8, ...: lowest at 4, then two up


def _scripted(monkeypatch):
  calls = []

  def fake(placed, params, tokens, ecfg, order, split, true_nll=None):
    v = SCRIPT[min(len(calls), len(SCRIPT) - 1)]
    calls.append(v)
    return {"nll_per_token": v, "bits_per_token": v / 0.693}

  monkeypatch.setattr(modes.eval_lib, "evaluate", fake)
  return calls


def _config(patience):
  c = tiny_run_config(**{"train.num_steps": 16, "train.eval_every": 2})
  c.train.patience, c.train.final_eval = patience, False
  return c


def test_patience_stops_at_the_second_eval_without_a_new_best_and_a_relaunch_trains_no_more(
  tmp_path, monkeypatch
):
  wd = str(tmp_path / "run")
  calls = _scripted(monkeypatch)
  assert modes.train(_config(2), wd) == 0
  assert calls == [5.0, 4.0, 4.5, 4.6]  # evals at steps 2, 4, 6, 8: the stop after step 8
  with open(os.path.join(wd, early_stop.FILE)) as f:
    assert json.load(f) == {"step": 8, "patience": 2, "best_step": 4, "best_loss": 4.0}
  assert max(int(s) for s in os.listdir(os.path.join(wd, "ckpt"))) == 8
  assert [p for p in os.listdir(os.path.join(wd, "ckpt_best")) if p.isdigit()] == ["4"]
  assert sorted(losses_by_step(wd)) == list(range(1, 9))
  assert modes.train(_config(2), wd) == 0  # the same patience: nothing to train
  assert sorted(losses_by_step(wd)) == list(range(1, 9)) and len(calls) == 4
  assert modes.train(_config(0), wd) == 0  # patience off: trains on to num_steps
  assert sorted(losses_by_step(wd)) == list(range(1, 17))


def test_without_patience_the_same_evals_do_not_stop_the_run(tmp_path, monkeypatch):
  wd = str(tmp_path / "run")
  calls = _scripted(monkeypatch)
  assert modes.train(_config(0), wd) == 0  # 8 periodic evals and the one at the end
  assert len(calls) == 9 and not os.path.exists(os.path.join(wd, early_stop.FILE))
  assert max(int(s) for s in os.listdir(os.path.join(wd, "ckpt"))) == 16


def test_early_stop_counts_evals_since_the_lowest():
  e = early_stop.EarlyStop(patience=2)
  assert [e.update(s, v) for s, v in [(1, 3.0), (2, 3.0), (3, 2.0), (4, 2.5), (5, 2.1)]] == [
    False, False, False, False, True,
  ]  # fmt: skip
  assert (e.best_step, e.best_loss) == (3, 2.0)
