"""Issue 33 (3): periodic validation during training (`train.eval_every`, metrics.jsonl) and the
checkpoint of its lowest loss kept apart from the rotation (Orbax's best-checkpoint support,
DIR/ckpt_best), which `--mode=eval` names with `eval.checkpoint=best`, a resume included."""

import json

from cli import expect_error, run

RUN = ["--config.train.num_steps=12", "--config.train.eval_every=2", "--config.train.log_every=2"]
RUN += ["--config.ckpt.every_steps=4", "--config.ckpt.keep=1", "--config.ckpt.async_save=false"]
RUN += ["--config.opt.lr=0.03", "--config.opt.warmup_steps=1"]  # overshoots: the best is early


def _evals(wd) -> dict:
  out = {}
  for line in (wd / "metrics.jsonl").read_text().splitlines():
    row = json.loads(line)
    if "eval/valid_nll" in row:
      out[row["step"]] = row["eval/valid_nll"]
  return out


def test_the_lowest_in_training_eval_is_kept_apart_and_evaluated_on_request(tmp_path):
  wd = tmp_path / "run"
  res = run(wd, *RUN, "--config.train.stop_after=6")  # a preempted run, then its resume
  assert res.returncode == 0, res.stderr[-2000:]
  res = run(wd, *RUN)
  assert res.returncode == 0, res.stderr[-2000:]
  evals = _evals(wd)
  assert sorted(evals) == [2, 4, 6, 8, 10, 12]  # both processes' periodic evals
  best = min(evals, key=evals.get)
  assert [p.name for p in (wd / "ckpt_best").iterdir() if p.name.isdigit()] == [str(best)]
  assert sorted(p.name for p in (wd / "ckpt").iterdir()) == ["12"]  # the rotation: keep=1
  res = run(wd, "--mode=eval", "--config.eval.checkpoint=best", config=None, tiny=False)
  assert res.returncode == 0, res.stderr[-2000:]
  ev = json.loads((wd / "eval" / f"step_{best}-best.json").read_text())
  assert ev["checkpoint"] == "best" and ev["step"] == best
  last = json.loads((wd / "eval" / "step_12.json").read_text())
  assert last["checkpoint"] == "latest" and last["nll_per_token"] != ev["nll_per_token"]


def test_a_run_without_periodic_evals_has_no_best_checkpoint(tmp_path):
  wd = tmp_path / "run"
  plain = [f for f in RUN if "eval_every" not in f]
  assert run(wd, *plain).returncode == 0
  assert not (wd / "ckpt_best").exists()
  expect_error(
    wd, "no best checkpoint", "--mode=eval", "--config.eval.checkpoint=best", config=None,
    tiny=False,
  )  # fmt: skip
