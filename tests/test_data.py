"""Data: sources, tokenizers, the Markov source's entropy, deterministic host-sharded batches."""

import os

import numpy as np
import pytest

from aoarm import data as data_lib
from aoarm.config import config_lib
from aoarm.data import pipeline, sources, tokenizers
from aoarm.data.markov import MarkovSource
from aoarm.infra.errors import UserError

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "text8like")


def test_text8_normalisation_and_char_tokenizer():
  text = sources.normalize_text8("Hello, World!  It's 42 o'clock.\n")
  assert text == "hello world it s o clock "
  tok = tokenizers.CharTokenizer.fit(text)
  ids = tok.encode(text)
  assert tok.decode(ids) == text and ids.max() < tok.vocab_size
  assert tokenizers.from_json(tok.to_json()).chars == tok.chars
  with pytest.raises(UserError, match="not in the training vocabulary"):
    tok.encode("xyz!")
  uni = tokenizers.CharTokenizer.fit("héllo wörld")
  assert uni.decode(uni.encode("wörld")) == "wörld"


def test_byte_tokenizer_roundtrip():
  tok = tokenizers.ByteTokenizer()
  s = "naïve café ✓"
  assert tok.decode(tok.encode(s)) == s and tok.vocab_size == 256


def test_markov_entropy_matches_empirical_nll():
  src = MarkovSource(vocab=5, concentration=0.5, seed=3)
  x = src.sample(200_000, seed=1)
  P = src.transition
  emp_rate = -np.mean(np.log(P[x[:-1], x[1:]]))
  assert abs(emp_rate - src.entropy_rate()) < 0.01
  pi = src.stationary
  np.testing.assert_allclose(pi @ P, pi, atol=1e-10)
  assert src.true_nll_per_token(1) > src.true_nll_per_token(64) > src.entropy_rate()


def test_train_batches_deterministic_and_host_sharded():
  tokens = np.arange(16 * 50, dtype=np.int32)
  one = pipeline.TrainBatches(tokens, 16, 8, seed=3)
  again = pipeline.TrainBatches(tokens, 16, 8, seed=3)
  np.testing.assert_array_equal(one.batch(17), again.batch(17))  # a function of (seed, step)
  assert not np.array_equal(one.batch(0), pipeline.TrainBatches(tokens, 16, 8, seed=4).batch(0))
  # two processes: the two halves of the single-process global batch, in process order
  h0 = pipeline.TrainBatches(tokens, 16, 8, seed=3, process_index=0, process_count=2)
  h1 = pipeline.TrainBatches(tokens, 16, 8, seed=3, process_index=1, process_count=2)
  for step in (0, 5, 11):
    a, b = h0.batch(step), h1.batch(step)
    assert a.shape == b.shape == (4, 16)
    np.testing.assert_array_equal(np.concatenate([a, b]), one.batch(step))
  # the prefetching iterator yields exactly batch(step), from any start
  it = one.iterate(9)
  for step in range(9, 20):
    np.testing.assert_array_equal(next(it), one.batch(step))
  # an epoch visits every window once
  seen = np.concatenate([one.batch(s) for s in range(50 // 8)])
  assert len({tuple(r) for r in seen}) == len(seen)


def test_eval_batches_cover_every_window_once():
  tokens = np.arange(10 * 7 + 3, dtype=np.int32)  # 10 windows of 7, remainder dropped
  xs, ws = zip(*pipeline.eval_batches(tokens, 7, batch_size=4))
  x, w = np.concatenate(xs), np.concatenate(ws)
  assert len(x) == 12 and w.sum() == 10
  np.testing.assert_array_equal(x[w > 0].reshape(-1), tokens[:70])
  with pytest.raises(UserError, match="larger than"):
    pipeline.windows(tokens, 100)


def test_pydoc_source_and_cache(tmp_path):
  c = config_lib.base_config("ar", "runlocal")
  d = data_lib.load(c.data, str(tmp_path))
  assert len(d.splits["train"]) > 100_000 and d.vocab_size > 50
  assert os.listdir(tmp_path) == []  # nothing is written before commit_cache()
  d.commit_cache()
  names = sorted(os.path.splitext(n)[1] for n in os.listdir(tmp_path))
  assert names == [".json"] * 3 + [".npy"] * 3  # per split: the ids and their checksum record
  d2 = data_lib.load(c.data, str(tmp_path))  # from the cache
  np.testing.assert_array_equal(d2.splits["valid"], d.splits["valid"])


def test_tfds_source_with_mock_data():
  tfds = pytest.importorskip("tensorflow_datasets")
  c = config_lib.base_config("ar", "runlocal")
  c.data.update(source="tfds", tfds_name="lm1b", tfds_text_key="text", seq_len=16, tokenizer="byte")
  with tfds.testing.mock_data(num_examples=20, policy=tfds.testing.MockPolicy.USE_CODE):
    d = data_lib.load(c.data)
  assert d.vocab_size == 256
  assert len(d.splits["train"]) > 16 and len(d.splits["valid"]) > 16
  c.data.tfds_text_key = "nope"
  with tfds.testing.mock_data(num_examples=5, policy=tfds.testing.MockPolicy.USE_CODE):
    with pytest.raises(UserError, match="no feature 'nope'"):
      data_lib.load(c.data)


@pytest.mark.skipif(not os.path.isdir(SHARED), reason="../shared/data/text8like not present")
def test_text8like_corpus_loads():
  c = config_lib.base_config("ar", "runlocal")
  c.data.update(
    source="text_files",
    train_path=os.path.join(SHARED, "valid.txt"),
    valid_path=os.path.join(SHARED, "test.txt"),
  )
  d = data_lib.load(c.data)
  assert d.vocab_size == 27
