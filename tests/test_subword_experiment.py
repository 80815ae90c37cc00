"""Issue 33 (4) on the CPU: the corpus split (launch/subword_corpus.py) and the sweep file
(configs/subword.py) of the subword experiment."""

import importlib.util
import json
import os
import subprocess
import sys

from aoarm.config import config_check

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _corpus(*args):
  return subprocess.run(
    [sys.executable, "launch/subword_corpus.py", *args], cwd=REPO, capture_output=True, text=True
  )


def test_every_source_is_split_into_train_valid_and_test_and_nothing_is_dropped_unsaid(tmp_path):
  raw = tmp_path / "raw"
  (raw / "wikitext-2").mkdir(parents=True)
  (raw / "books").mkdir()
  (raw / "books" / "a.txt").write_text("".join(f"line {i}\n" for i in range(100)))
  (raw / "wikitext-2" / "wiki.test.raw").write_text("".join(f"w {i}\n" for i in range(40)))
  (raw / "wikitext-2" / "wiki.test.tokens").write_text("w 0\n")
  (raw / "books" / "SOURCE.txt").write_text("where it came from\n")
  res = _corpus(f"--raw={raw}", f"--out={tmp_path / 'out'}")
  assert res.returncode == 0, res.stderr
  assert (
    "skipped wikitext-2/wiki.test.tokens" in res.stdout and "skipped books/SOURCE.txt" in res.stdout
  )
  out = tmp_path / "out"
  lines = {
    s: (out / s / "books_a.txt").read_text().splitlines() for s in ("train", "valid", "test")
  }
  assert [len(v) for v in lines.values()] == [90, 5, 5]
  assert sum(lines.values(), []) == [f"line {i}" for i in range(100)]  # in order, each once
  assert (out / "valid" / "wikitext-2_wiki.test.raw.txt").read_text().startswith("w 36\n")
  record = json.loads((out / "corpus.json").read_text())
  assert set(record["taken"]) == {"books/a.txt", "wikitext-2/wiki.test.raw"}
  assert set(record["skipped"]) == {"books/SOURCE.txt", "wikitext-2/wiki.test.tokens"}
  again = _corpus(f"--raw={raw}", f"--out={out}")
  assert again.returncode != 0 and "is not empty" in again.stderr
  bad = _corpus(f"--raw={raw}", f"--out={tmp_path / 'o2'}", "--skip=nope.txt")
  assert bad.returncode != 0 and "nope.txt" in bad.stderr


def test_the_sweep_compares_three_arms_at_their_best_checkpoints():
  spec = importlib.util.spec_from_file_location(
    "subword", os.path.join(REPO, "configs", "subword.py")
  )
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  entries = mod.sweep()
  seeds = {L: {e["seed"] for e in entries if e["seq_len"] == L} for L in (256, 1024)}
  assert seeds == {256: {0, 1}, 1024: {0, 1, 2}} and len(entries) == 15
  steps = {}
  for e in entries:
    c = mod.get_config(",".join(f"{k}={v}" for k, v in e.items()))
    config_check.validate(c, "gpu")
    assert c.data.tokenizer == "bpe" and c.data.test_path.endswith("/test")
    assert c.train.eval_every > 0 and c.ckpt.best and c.eval.checkpoint == "best"
    assert c.train.batch_size * c.data.seq_len == mod.TOKENS_PER_STEP
    steps[(e["variant"], e["seq_len"], e.get("compute_of", ""))] = c.train.num_steps
  for L in (256, 1024):
    assert steps[("decoupled_rope", L, "two_stream")] > steps[("two_stream", L, "")] == mod.STEPS
  longer = {
    v: mod.get_config(f"variant=decoupled_rope,seq_len=1024,steps=8000{v}")
    for v in ("", ",compute_of=two_stream")
  }
  assert longer[""].train.num_steps == 8000  # steps=N lengthens every arm alike
  ratio = steps[("decoupled_rope", 1024, "two_stream")] / mod.STEPS
  assert abs(longer[",compute_of=two_stream"].train.num_steps / 8000 - ratio) < 1e-3
  local = mod.get_config("variant=two_stream,seq_len=256,runlocal,data_dir=/x")
  config_check.validate(local, "cpu")
  assert local.data.train_path == "/x/train"
