"""--mode=sample and the generative evaluation, end to end on tiny trained runs."""

import glob
import json
import os

import jax
import pytest

from aoarm.run import modes
from aoarm.sample import front
from aoarm.tools import gen_eval

from helpers import tiny_run_config

pytestmark = pytest.mark.slow  # trains a run per variant first


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  root = tmp_path_factory.mktemp("runs")
  out = {}
  for v in ("ar", "two_stream", "mdm"):
    over = {"train.num_steps": 40, "data.source": "pydoc"}
    if v == "ar":  # the judge keeps its best validation checkpoint (early stopping)
      over["train.eval_every"] = 10
    c = tiny_run_config(v, **over)
    assert modes.train(c, str(root / v)) == 0
    if v == "ar":  # the whole-split eval of that checkpoint, which gen_eval must reproduce
      best = c.copy_and_resolve_references()
      best.eval.update(checkpoint="best", max_windows=0)
      out["judge_eval"] = modes.evaluate_checkpoint(best, str(root / v))
    out[v] = (c, str(root / v))
  return out


def test_sample_mode_writes_jsonl(runs):
  c, wd = runs["two_stream"]
  c = c.copy_and_resolve_references()
  c.sample.update(num_samples=3, k=2, order="adaptive", infill="3=a;10=bc")
  assert front.sample(c, wd) == 0
  (path,) = glob.glob(os.path.join(wd, "samples", "step_40-*.jsonl"))
  with open(path) as f:
    rows = [json.loads(line) for line in f]
  c.sample.temperature = 0.5  # another setting: another file, the first one kept
  c.sample.precision = "float64"  # its draws in float64, 64-bit JAX switched off after
  assert front.sample(c, wd) == 0
  assert not jax.config.jax_enable_x64
  assert len(glob.glob(os.path.join(wd, "samples", "step_40-*.jsonl"))) == 2
  assert len(rows) == 3
  for r in rows:
    assert len(r["tokens"]) == len(r["order"]) == 16 and sorted(r["order"]) == list(range(16))
    assert r["text"][3] == "a" and r["text"][10:12] == "bc"
    assert r["settings"]["k"] == 2


def test_frontier_json_and_plot(runs, tmp_path):
  """A tiny end-to-end frontier on the pydoc text: each run's sampler settings (k and the
  adaptive order for two_stream, denoising steps for mdm, the one ancestral sampler for ar),
  float64 final draws, every row self-describing, the held-out reference, one plot per L."""
  _, judge = runs["ar"]
  out = str(tmp_path / "frontier")
  gen_eval.main(
    [
      f"--judge={judge}",
      f"--runs={judge},{runs['two_stream'][1]},{runs['mdm'][1]}",
      "--temperatures=0.01,1.5",
      "--num_samples=16",
      "--ks=1,2",
      "--adaptive",
      "--mdm_steps=0,4",
      "--word_level",
      f"--out={out}",
    ]
  )
  with open(out + ".json") as f:
    res = json.load(f)
  assert os.path.getsize(out + "_L16.png") > 1000 and os.path.exists(out + ".samples.npz")
  assert not jax.config.jax_enable_x64  # the float64 draws left the process as they found it
  by = {(r["variant"], r["sampler"]) for r in res}
  assert by == {
    ("ar", "k=1"),
    ("two_stream", "k=1"),
    ("two_stream", "k=2"),
    ("two_stream", "adaptive k=1"),
    ("two_stream", "adaptive k=2"),
    ("mdm", "S=16"),
    ("mdm", "S=4"),
    ("data", "held-out text"),
  }
  assert len(res) == 2 * (len(by) - 1) + 1
  for r in res:
    assert r["seq_len"] == 16 and r["judge_windows"] == 1 and r["num_samples"] == 16
    assert {"gen_perplexity", "unigram_entropy", "repeat_2gram", "distinct_4"} <= set(r)
    assert 0 <= r["gen_nll_stderr"] < r["gen_nll"]
    if r["temperature"] != 0.01:  # 16 samples that differ (near-greedy ones may not)
      assert r["gen_nll_stderr"] > 0
    assert r["judge_params"] > 0 and r["judge_shape"] == "2x32" and r["judge_valid_bits"] > 0
    # the judge read at its best validation step, its bits measured on the whole split there
    ev = runs["judge_eval"]
    assert r["judge_checkpoint"] == "best" and r["judge_step"] == ev["step"]
    assert not r["judge_eval_capped"] and r["judge_valid_windows"] == ev["num_windows"]
    assert r["judge_valid_bits"] == pytest.approx(ev["bits_per_token"], rel=1e-5)
    assert 0 < r["judge_valid_bits_stderr"] < r["judge_valid_bits"]
    assert r["variant"] == "data" or r["precision"] == "float64"
  ar = {r["temperature"]: r for r in res if r["variant"] == "ar"}
  # the judge scoring its own samples: near-greedy samples are far more likely than hot ones
  assert ar[0.01]["gen_perplexity"] < ar[1.5]["gen_perplexity"]
  assert ar[0.01]["unigram_entropy"] <= ar[1.5]["unigram_entropy"]
  (data,) = [r for r in res if r["variant"] == "data"]
  assert data["valid_words"] > 0.5  # real text is mostly words of the training split


def test_sampling_and_scoring_apart_give_the_same_rows(runs, tmp_path):
  """Sample on one machine (no judge), score the file on another: the rows of one go."""
  _, judge = runs["ar"]
  common = ["--temperatures=0.8", "--num_samples=4", "--precision=float32"]
  both, apart = str(tmp_path / "both"), str(tmp_path / "apart")
  gen_eval.main([f"--judge={judge}", f"--runs={runs['two_stream'][1]}", *common, f"--out={both}"])
  gen_eval.main([f"--runs={runs['two_stream'][1]}", *common, f"--out={apart}"])
  assert not os.path.exists(apart + ".json")
  gen_eval.main([f"--judge={judge}", f"--samples={apart}.samples.npz", f"--out={apart}"])
  rows = [json.load(open(p + ".json")) for p in (both, apart)]
  drop = ("seconds",)
  assert [{k: v for k, v in r.items() if k not in drop} for r in rows[0]] == [
    {k: v for k, v in r.items() if k not in drop} for r in rows[1]
  ]


@pytest.mark.parametrize(
  "argv,message",
  [
    (["--out=x"], "nothing to do"),
    (["--samples=a.npz", "--out=x"], "--samples needs --judge"),
    (["--samples=a.npz", "--text=one.txt", "--out=x"], "give two files"),
    (["--judge=j", "--samples=missing.npz", "--out=x"], "not a samples file"),
  ],
)
def test_gen_eval_refuses_in_one_line(argv, message, capsys):
  with pytest.raises(SystemExit) as e:
    gen_eval.main(argv)
  err = capsys.readouterr().err
  assert e.value.code == 2 and message in err and err.count("\n") == 1


def test_judge_free_scoring_of_a_samples_file(runs, tmp_path):
  """Without a judge, --text=TRAIN,VALID scores samples by entropy and word measures, with the
  held-out reference point, and plots the share of invalid words."""
  from aoarm.data import sources

  text = sources.pydoc_text()
  train, valid = tmp_path / "train.txt", tmp_path / "valid.txt"
  train.write_text(text[: len(text) // 2])
  valid.write_text(text[len(text) // 2 :])
  out = str(tmp_path / "f")
  gen_eval.main(
    [
      f"--runs={runs['two_stream'][1]}",
      "--temperatures=0.7,1.3",
      "--num_samples=8",
      "--precision=float32",
      f"--out={out}",
    ]
  )
  gen_eval.main(
    [f"--samples={out}.samples.npz", f"--text={train},{valid}", "--word_level", f"--out={out}"]
  )
  with open(out + ".json") as f:
    rows = json.load(f)
  assert [r["variant"] for r in rows] == ["two_stream", "two_stream", "data"]
  assert all("gen_perplexity" not in r and 0 <= r["valid_words"] <= 1 for r in rows)
  assert rows[-1]["valid_words"] > 0.3  # held-out text, 16-char windows: 0.5 measured
  assert os.path.getsize(out + "_L16.png") > 1000


@pytest.mark.parametrize(
  "config,flags",
  [
    ("configs/aogpt.py:runlocal", []),
    ("configs/two_stream.py:runlocal", ["--config.model.query_layers=1"]),
  ],
)
def test_new_models_train_and_sample_through_the_cli(tmp_path, config, flags):
  """aogpt and two_stream's query_layers through `aoarm.main`: train, then --mode=sample reads
  the saved config (the option included) and writes its samples."""
  from cli import run

  wd = str(tmp_path / "run")
  res = run(wd, "--config.train.num_steps=4", *flags, config=config)
  assert res.returncode == 0, res.stderr[-2000:]
  res = run(wd, "--mode=sample", "--config.sample.num_samples=2", config=config)
  assert res.returncode == 0, res.stderr[-2000:]
  (path,) = glob.glob(os.path.join(wd, "samples", "step_4-*.jsonl"))
  with open(path) as f:
    rows = [json.loads(line) for line in f]
  assert len(rows) == 2 and all(sorted(r["order"]) == list(range(len(r["order"]))) for r in rows)
  with open(os.path.join(wd, "config.json")) as f:
    saved = json.load(f)
  assert saved["model"]["query_layers"] == (1 if flags else 0)
