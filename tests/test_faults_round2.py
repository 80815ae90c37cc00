"""Issue 37, the second fault attack: each LOSS, HANG and SILENT case through the command line
(a run's folder is never someone else's, FIFOs never block, folder sources drop nothing
silently, a stop below the resume step and a held-out file that is the training file are
refused, the tools refuse bad counts and temperatures)."""

import json
import os
import subprocess
import sys
import time

import pytest
from cli import REPO, error_lines, expect_error, run

pytestmark = pytest.mark.slow
BASE = [
  "--config.data.source=markov",
  "--config.data.markov_tokens=20000",
  "--config.data.seq_len=16",
  "--config.train.batch_size=8",
  "--config.train.num_steps=4",
  "--config.ckpt.every_steps=4",
  "--config.eval.max_windows=16",
  "--config.eval.batch_size=8",
]


def _bpe(train, valid, vocab: int) -> list[str]:
  """A tiny BPE text-file run (the last six flags: the model and loop sizes)."""
  return [
    "--config.data.source=text_files",
    f"--config.data.train_path={train}",
    f"--config.data.valid_path={valid}",
    "--config.data.tokenizer=bpe",
    f"--config.data.vocab_size={vocab}",
    "--config.data.num_workers=1",
    "--config.data.seq_len=16",
    "--config.train.batch_size=8",
    "--config.train.num_steps=2",
    "--config.eval.max_windows=8",
    "--config.eval.batch_size=8",
  ]


def _tool(*args, timeout=120):
  return subprocess.run(
    [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
  )


def test_someone_elses_folder_is_never_trained_into(tmp_path):
  """LOSS 2: a folder with a user's config.json, metrics.jsonl and vocab.json is refused and
  left as it was; so is any non-empty folder that is not an aoarm run."""
  theirs = tmp_path / "theirs"
  theirs.mkdir()
  (theirs / "config.json").write_text('{"learning_rate": 3}')
  (theirs / "metrics.jsonl").write_text('{"acc": 0.9}\n')
  (theirs / "vocab.json").write_text('["a", "b"]')
  expect_error(str(theirs), "not an aoarm run's", *BASE)
  notes = tmp_path / "notes"
  notes.mkdir()
  (notes / "paper.tex").write_text("\\section{}")
  expect_error(str(notes), "is not empty and not an aoarm run (it holds paper.tex)", *BASE)


def test_fifos_never_block_a_tool_or_the_trainer(tmp_path):
  """HANG 3: a FIFO named metrics.jsonl (or train.lock) in a run folder: `aoarm.tools.runs` reads
  past it at once, and training refuses in one line."""
  wd = tmp_path / "run"
  res = run(str(wd), *BASE)
  assert res.returncode == 0, res.stderr[-3000:]
  os.remove(wd / "metrics.jsonl")
  os.mkfifo(wd / "metrics.jsonl")
  out = _tool("aoarm.tools.runs", str(tmp_path), timeout=60)
  assert out.returncode == 0 and "| run |" in out.stdout, out.stderr
  expect_error(str(wd), "metrics.jsonl is not a regular file", *BASE, timeout=120)
  os.remove(wd / "metrics.jsonl")
  os.mkfifo(wd / "train.lock")
  expect_error(str(wd), "train.lock is not a regular file", *BASE, timeout=120)


def test_folder_sources_drop_nothing_silently(tmp_path):
  """SILENT 4 (and issue 33.1): a folder holding a .raw file is refused with the file's name;
  named in data.extensions it is read; a file named itself is read whatever its extension."""
  corpus = tmp_path / "corpus"
  corpus.mkdir()
  text = "the quick brown fox jumps over the lazy dog. " * 400
  (corpus / "a.txt").write_text(text)
  (corpus / "wiki.test.raw").write_text(text[::-1])
  (tmp_path / "valid.raw").write_text(text[:3000])
  bpe = _bpe(corpus, tmp_path / "valid.raw", 300)
  line = expect_error(str(tmp_path / "run"), "would be left out", *bpe)
  assert "wiki.test.raw" in line and "data.extensions" in line
  res = run(str(tmp_path / "run"), *bpe, "--config.data.extensions=.txt,.raw")
  assert res.returncode == 0, res.stderr[-3000:]
  assert "data.train_path: 2 file(s)" in res.stderr and "data.valid_path: 1 file(s)" in res.stderr


def test_a_stop_below_the_resume_step_is_refused(tmp_path):
  """SILENT 11: resuming at step 4 with train.stop_after=2 trained on to num_steps."""
  wd = str(tmp_path / "run")
  assert run(wd, *BASE).returncode == 0
  expect_error(wd, "train.stop_after=2 is at or below the step", *BASE,
               "--config.train.num_steps=8", "--config.train.stop_after=2")  # fmt: skip


def test_held_out_text_that_is_the_training_text_is_refused(tmp_path):
  """SILENT 14: data.valid_path equal to data.train_path."""
  f = tmp_path / "t.txt"
  f.write_text("some text to train on. " * 200)
  files = ["--config.data.source=text_files", f"--config.data.train_path={f}"]
  expect_error(str(tmp_path / "run"), "names the training text", *files,
               f"--config.data.valid_path={tmp_path / '.' / 't.txt'}")  # fmt: skip


def test_the_tools_refuse_bad_counts_and_temperatures(tmp_path):
  """SILENT 14 and UNCLEAR: diagnostics --num_windows=-5 / --batch=0 and gen_eval
  --temperatures=-1 / nan / abc and --num_samples=0 end in one line, exit 2."""
  for args, match in (
    (["aoarm.tools.diagnostics", f"--workdir={tmp_path}", "--num_windows=-5"], "--num_windows=-5"),
    (["aoarm.tools.diagnostics", f"--workdir={tmp_path}", "--batch=0"], "--batch=0"),
    (["aoarm.tools.gen_eval", f"--runs={tmp_path}", "--out=x", "--temperatures=-1"], "'-1'"),
    (["aoarm.tools.gen_eval", f"--runs={tmp_path}", "--out=x", "--temperatures=nan"], "'nan'"),
    (
      ["aoarm.tools.gen_eval", f"--runs={tmp_path}", "--out=x", "--temperatures=abc"],
      "not a number",
    ),
    (
      ["aoarm.tools.gen_eval", f"--runs={tmp_path}", "--out=x", "--num_samples=0"],
      "--num_samples=0",
    ),
  ):
    res = _tool(*args)
    lines = error_lines(res.stderr)
    assert res.returncode == 2 and len(lines) == 1 and match in lines[0], res.stderr[-2000:]
    assert "Traceback" not in res.stderr


def test_runs_and_report_read_past_what_a_kill_leaves(tmp_path):
  """UNCLEAR: a truncated config.json or eval JSON and a cut last metrics line break neither
  `aoarm.tools.runs` nor `aoarm.tools.report`; the report lists the run it cannot read."""
  wd = tmp_path / "run"
  assert run(str(wd), *BASE).returncode == 0
  with open(wd / "metrics.jsonl", "a") as f:
    f.write('{"step": 5, "train/lo')
  evals = sorted((wd / "eval").glob("*.json"))
  evals[0].write_text(evals[0].read_text()[:40])
  out = _tool("aoarm.tools.runs", str(tmp_path))
  assert out.returncode == 0, out.stderr
  rep = _tool("aoarm.tools.report", str(tmp_path))
  assert rep.returncode == 2 and "no eval JSONs" in rep.stderr, rep.stderr  # nothing readable
  other = tmp_path / "other"
  assert run(str(other), *BASE).returncode == 0
  rep = _tool("aoarm.tools.report", str(tmp_path))
  assert rep.returncode == 0, rep.stderr
  md = (tmp_path / "report.md").read_text()
  assert "`run` (" in md and "is not whole JSON" in md
  assert json.loads((other / "config.json").read_text())["model"]["variant"] == "two_stream"


def test_a_checkpoint_with_flipped_bytes_is_never_used(tmp_path):
  """SILENT 7: 64 flipped bytes in a saved array file loaded without a word (eval NLL 4.63 for
  1.70). Each finished step is sealed with its files' SHA-256; eval then skips the damaged
  step with a warning and scores the one before, and training moves it aside."""
  wd = tmp_path / "run"
  res = run(str(wd), *BASE, "--config.train.num_steps=8")
  assert res.returncode == 0, res.stderr[-3000:]
  for step in (4, 8):
    assert (wd / "ckpt" / str(step) / "sha256.json").is_file()
  files = [p for p in (wd / "ckpt" / "8" / "state").rglob("*") if p.is_file()]
  biggest = max(files, key=lambda p: p.stat().st_size)
  data = bytearray(biggest.read_bytes())
  mid = len(data) // 2
  data[mid : mid + 64] = bytes(b ^ 0xFF for b in data[mid : mid + 64])
  biggest.write_bytes(bytes(data))
  res = run(str(wd), *BASE, "--mode=eval")
  assert res.returncode == 0, res.stderr[-3000:]
  assert "checkpoint step 8 is damaged (DamagedCheckpoint" in res.stderr
  assert json.loads(res.stdout)["step"] == 4
  res = run(str(wd), *BASE, "--config.train.num_steps=8")
  assert res.returncode == 0, res.stderr[-3000:]
  assert "checkpoint step 8 could not be read" in res.stderr and "moved to" in res.stderr
  assert any(p.name.startswith("step_8_") for p in (wd / "ckpt_aside").iterdir())


_BLOCKED = r"""
import os, signal, sys, threading, time
import jax, jax.numpy as jnp
from aoarm.infra import interrupts

@jax.jit
def slow(x):  # seconds of device work in one call: the main thread waits in C++ meanwhile
  return jax.lax.fori_loop(0, 4000, lambda i, a: jnp.tanh(a @ a), x)

x = jnp.ones((384, 384)) * 1e-3
slow(x).block_until_ready()  # compiled; now time one call
t = time.time(); slow(x).block_until_ready(); one = time.time() - t
with interrupts.catch() as stop:
  def signals():
    time.sleep(0.3)
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.3)
    print(f"recorded={stop.requested} one={one:.2f}", flush=True)
    os.kill(os.getpid(), signal.SIGINT)
  threading.Thread(target=signals, daemon=True).start()
  t = time.time()
  for _ in range(30):
    float(slow(x)[0, 0])  # as the loop reads a loss: a wait that checks no signals
print("not interrupted", flush=True)
"""


def test_ctrl_c_is_seen_while_the_main_thread_waits_on_the_device(tmp_path):
  """Issue 36 (3): a first Ctrl-C is recorded, and a second one ends the process, while the main
  thread is blocked in a device computation (Python's own handlers wait until it returns)."""
  t = time.time()
  res = subprocess.run(
    [sys.executable, "-c", _BLOCKED], cwd=REPO, capture_output=True, text=True, timeout=600
  )
  took = time.time() - t
  assert res.returncode == 130, (res.returncode, res.stdout, res.stderr[-2000:])
  assert "recorded=True" in res.stdout and "not interrupted" not in res.stdout, res.stdout
  one = float(res.stdout.split("one=")[1].split()[0])
  assert "second interrupt: exiting now" in res.stderr
  assert one > 1.0, "the device call is too short to tell"  # 30 of them would take > 30 s
  assert took < 30 * one / 2, (took, one)


def test_a_dangling_link_as_workdir_is_one_line(tmp_path):
  """UNCLEAR: a workdir that is a link to a missing folder gave a FileExistsError traceback."""
  link = tmp_path / "run"
  os.symlink(tmp_path / "gone", link)
  expect_error(str(link), "is a link to", *BASE, watch=str(tmp_path))


def test_subword_eval_needs_no_training_corpus_and_a_swapped_tokenizer_is_refused_first(tmp_path):
  """UNCLEAR: a subword eval tokenised the whole training corpus again (and needed it present);
  a resume with another data.tokenizer_path was refused only after both splits were tokenised."""
  corpus = tmp_path / "corpus"
  corpus.mkdir()
  text = "the quick brown fox jumps over the lazy dog, again and again. " * 300
  (corpus / "train.txt").write_text(text)
  (tmp_path / "valid.txt").write_text(text[:4000])
  bpe = _bpe(corpus / "train.txt", tmp_path / "valid.txt", 280)
  wd = tmp_path / "run"
  res = run(str(wd), *bpe)
  assert res.returncode == 0, res.stderr[-3000:]
  os.rename(corpus / "train.txt", tmp_path / "away.txt")  # the training corpus is gone
  res = run(str(wd), "--mode=eval", "--config.data.cache_dir=" + str(tmp_path / "fresh"),
            config=None, tiny=False)  # fmt: skip
  assert res.returncode == 0, res.stderr[-3000:]
  assert "building the valid token store" in res.stderr
  assert "building the train token store" not in res.stderr
  # another tokenizer for the same run: refused before any store is built
  os.rename(tmp_path / "away.txt", corpus / "train.txt")
  other = tmp_path / "other"
  res = run(str(other), *bpe[:-6], "--config.data.vocab_size=270", "--config.train.num_steps=1",
            "--config.train.batch_size=8", "--config.data.seq_len=16")  # fmt: skip
  assert res.returncode == 0, res.stderr[-3000:]
  from aoarm.data import tokenizers

  tok = tmp_path / "tokenizer.json"  # the other run's tokenizer, as a tokenizers file
  tok.write_text(tokenizers.load(str(next((other / "cache").glob("tokenizer-bpe-*.json")))).json)
  cache = tmp_path / "cache2"
  swap = [f"--config.data.tokenizer_path={tok}", f"--config.data.cache_dir={cache}"]
  line = expect_error(str(wd), "different vocabulary", *bpe, "--config.train.num_steps=4", *swap)
  assert not cache.exists() or not list(cache.glob("store-*")), line
