"""Issue 37's UNCLEAR cases that need no run: each ends in one clear line or does the right
thing (a cut .gz names its file, a real file name with a comma or brackets is read as it is, a
live build's partial store is left alone, two char vocabularies of one size are told apart, a
stop asked for while tokenising ends the build)."""

import gzip
import os
import signal

import pytest

from aoarm.data import sources, store
from aoarm.infra import interrupts
from aoarm.infra.errors import Interrupted, UserError


def test_a_cut_gzip_file_is_named(tmp_path):
  path = tmp_path / "part.txt.gz"
  with gzip.open(path, "wt") as f:
    f.write("some text\n" * 5000)
  data = path.read_bytes()
  path.write_bytes(data[: len(data) // 2])
  with pytest.raises(UserError, match=r"part.txt.gz: not a whole gzip file"):
    list(sources.documents([str(path)]))


def test_a_file_name_with_a_comma_or_brackets_is_read_as_it_is(tmp_path):
  odd = tmp_path / "part[1],final.txt"
  odd.write_text("text")
  assert sources.expand_paths(str(odd), "data.train_path") == [str(odd)]
  a, b = tmp_path / "a.txt", tmp_path / "b.txt"
  a.write_text("x")
  b.write_text("y")
  assert sources.expand_paths(f"{a},{b}", "data.train_path") == [str(a), str(b)]


def test_a_live_builds_partial_store_is_left_alone():
  assert not store._live_build(f"store-train-x.partial-{os.getpid()}")  # our own: ours to clear
  assert store._live_build(f"store-train-x.partial-{os.getppid()}")  # a live process
  assert not store._live_build("store-train-x.partial-999999999")  # no such process


def test_two_char_vocabularies_of_one_size_are_told_apart():
  from aoarm.run import setup

  a = setup._vocab_desc({"kind": "char", "chars": "abc"})
  b = setup._vocab_desc({"kind": "char", "chars": "abd"})
  assert a != b and "char with 3 symbols, SHA-256" in a


def test_a_stop_while_tokenising_ends_the_build(monkeypatch):
  with interrupts.catch() as stop:
    interrupts.check_stop("tokenising")  # nothing asked: goes on
    stop.preparing = True
    stop.handle(signal.SIGINT, None)
    with pytest.raises(Interrupted, match="stopped while tokenising the train split") as e:
      interrupts.check_stop("tokenising the train split")
    assert e.value.code == 130


def test_empty_sources_and_non_text_jsonl_fields_are_refused(tmp_path):
  """SILENT 9-10: a folder of only empty .txt files trained a 257-entry tokenizer on nothing;
  JSONL records whose text was null, a number or an object were trained as their repr."""
  empty = tmp_path / "empty"
  empty.mkdir()
  for n in ("a.txt", "b.txt"):
    (empty / n).write_text("")
  with pytest.raises(UserError, match=r"data.train_path: 2 file\(s\), all empty"):
    sources.expand_paths(str(empty), "data.train_path")
  for value, kind in (("null", "null"), ("12345", "int"), ('{"nested": [1, 2]}', "dict")):
    path = tmp_path / f"{kind}.jsonl"
    path.write_text('{"text": "fine"}\n{"text": ' + value + "}\n")
    with pytest.raises(UserError, match=rf"{kind}.jsonl:2: 'text' is {kind}, not text"):
      list(sources.documents([str(path)]))


def test_a_bpe_runs_bits_per_byte_are_reported_as_such(tmp_path):
  """SILENT 13: the report put a BPE run's bits/token under bits/char; it now reports bits per
  byte, and says so in the row's scope."""
  import json

  from aoarm.tools import report

  d = tmp_path / "bpe"
  (d / "eval").mkdir(parents=True)
  cfg = {"model": {"variant": "two_stream"}, "data": {"seq_len": 64}, "seed": 0,
         "train": {"batch_size": 8}}  # fmt: skip
  (d / "config.json").write_text(json.dumps(cfg))
  r = {"bits_per_token": 8.56, "bits_per_byte": 4.64, "bytes_per_token": 1.845, "stderr": 0.02}
  ev = {"step": 10, "by_order": {"random": r}, "bits_per_byte": 4.64}
  (d / "eval" / "step_10.json").write_text(json.dumps(ev))
  (row,) = report.gather(str(tmp_path))
  assert row["bits"] == 4.64 and row["label"] == "two_stream [bits/byte]"


def test_a_checkpoint_with_other_parameters_is_named_by_its_meta():
  """model.bias and aogpt's own-position table change the parameter tree: a checkpoint made
  without them is refused in one line naming the key (an older meta without the key passes)."""
  import dataclasses
  import types

  import pytest

  from aoarm.data import tokenizers
  from aoarm.infra.errors import UserError
  from aoarm.models import ModelConfig
  from aoarm.run import setup

  tok = tokenizers.SymbolTokenizer(8)
  cfg = ModelConfig(variant="aogpt", vocab_size=8, bias=True, own_positions="learned")
  run = types.SimpleNamespace(data=types.SimpleNamespace(tokenizer=tok), mcfg=cfg, ckpt_dir="C")
  saved = dataclasses.asdict(dataclasses.replace(cfg, bias=False))
  with pytest.raises(UserError, match="bias: checkpoint False vs config True"):
    setup.check_meta(run, {"vocab": tok.to_json(), "model": saved})
  older = {k: v for k, v in saved.items() if k not in ("bias", "own_positions")}
  setup.check_meta(run, {"vocab": tok.to_json(), "model": older})
