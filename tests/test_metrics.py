"""Metric logs and output names: a resumed run's logs hold each step once, the learning rate is
logged, and evaluations and samples with other settings never overwrite each other."""

import json

import ml_collections as mlc

from aoarm.infra import metrics
from aoarm.run import modes
from aoarm.sample import front


def test_a_resumed_run_drops_the_steps_it_replays(tmp_path):
  w = metrics.MetricWriter(str(tmp_path), enabled=True)
  for step in (2, 4, 6, 8):
    w.write(step, {"train/loss": 10.0 - step})
  w.close()
  with open(tmp_path / "metrics.jsonl", "a") as f:
    f.write('{"step": 9, "train/lo')  # a line cut by the crash
  w = metrics.MetricWriter(str(tmp_path), enabled=True, start_step=4)  # resumed from step 4
  for step in (6, 8):
    w.write(step, {"train/loss": 1.0})
  w.close()
  rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  assert [r["step"] for r in rows] == [2, 4, 6, 8]
  assert [r["train/loss"] for r in rows] == [8.0, 6.0, 1.0, 1.0]


def test_eval_and_sample_outputs_are_named_by_their_settings():
  e = mlc.ConfigDict(dict(split="valid", num_orders=1, max_windows=0, l2r=True))
  assert modes.eval_name(12, e) == "step_12.json"
  e.update(split="test", num_orders=8, max_windows=64)
  assert modes.eval_name(12, e) == "step_12-test-k8-w64.json"
  a = front.sample_name(12, {"k": 1, "temperature": 1.0})
  assert a != front.sample_name(12, {"k": 4, "temperature": 1.0})
  assert a == front.sample_name(12, {"temperature": 1.0, "k": 1})  # order-free


def test_learning_rate_schedule_is_what_is_logged():
  from aoarm.run.train import make_schedule

  opt = mlc.ConfigDict(dict(lr=1e-3, warmup_steps=10, min_lr_ratio=0.1))
  s = make_schedule(opt, 100)
  assert float(s(0)) == 0.0 and abs(float(s(10)) - 1e-3) < 1e-9 and abs(float(s(100)) - 1e-4) < 1e-9


def test_a_config_too_large_for_a_cpu_says_so(caplog):
  """Issue 36 (4): the default config ran ~14 s a step on a CPU with no word; it now says what a
  step costs and points at :runlocal, once, at start; the CPU-sized run says nothing."""
  import types

  import jax

  from aoarm.config import config_lib
  from aoarm.models import ModelConfig
  from aoarm.run import flops, train
  from aoarm.run.train_config import TrainConfig

  def fake(arg):
    c = config_lib.base_config("two_stream", arg)
    m = ModelConfig.from_config(dict(c.model, vocab_size=100), c.data.seq_len)
    mesh = types.SimpleNamespace(devices=__import__("numpy").array(jax.devices()))
    tc = TrainConfig.from_config(c)
    t = types.SimpleNamespace(flops_per_token=flops.train_flops_per_token(m), mesh=mesh, cfg=tc)
    return t, c.train.batch_size * c.data.seq_len

  caplog.set_level("WARNING")
  train._warn_if_slow_here(*fake("runlocal"))
  assert not caplog.records
  train._warn_if_slow_here(*fake(None))
  (r,) = caplog.records
  assert "s a step" in r.message and ":runlocal" in r.message and "num_steps=10000" in r.message
