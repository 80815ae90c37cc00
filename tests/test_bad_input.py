"""Bad input ends with a one-line error naming the problem, a non-zero exit, and the workdir as
it was — through the real command line."""

import concurrent.futures

import pytest
from cli import expect_error

from aoarm.run import modes

from helpers import tiny_run_config

pytestmark = pytest.mark.slow  # each case runs the command line in a subprocess


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
  d = tmp_path_factory.mktemp("texts")
  good = "the quick brown fox jumps over the lazy dog. " * 200
  (d / "train.txt").write_text(good)
  (d / "valid.txt").write_text(good[:2000])
  (d / "other.txt").write_text(good.upper())
  (d / "empty.txt").write_text("")
  (d / "latin1.txt").write_bytes("caf\xe9 au lait ".encode("latin-1") * 50)
  return d


def _files(texts, train="train.txt", valid="valid.txt"):
  return [
    "--config.data.source=text_files",
    f"--config.data.train_path={texts / train}",
    f"--config.data.valid_path={texts / valid}",
  ]


def test_unknown_variant(tmp_path):
  expect_error(str(tmp_path / "w"), "'transformerx'", "--config.model.variant=transformerx")


def test_bad_config_file_arg_or_key(tmp_path):
  expect_error(str(tmp_path / "w"), "configs/nope.py", config="configs/nope.py")
  expect_error(str(tmp_path / "w"), "unknown config arg 'seqlen'", config="configs/ar.py:seqlen=3")
  expect_error(str(tmp_path / "w"), "unknown config key", "--config.train.batchsize=3")
  expect_error(str(tmp_path / "w"), "invalid literal", "--config.train.batch_size=abc")


def test_missing_and_empty_data_file(tmp_path, texts):
  expect_error(str(tmp_path / "w"), "not found", *_files(texts, train="nope.txt"))
  expect_error(str(tmp_path / "w"), "empty", *_files(texts, valid="empty.txt"))


def test_non_utf8_text(tmp_path, texts):
  expect_error(str(tmp_path / "w"), "not UTF-8", *_files(texts, train="latin1.txt"))


def test_bad_seq_len(tmp_path, texts):
  expect_error(str(tmp_path / "w"), "seq_len", *_files(texts), "--config.data.seq_len=1")
  expect_error(
    str(tmp_path / "w"), "seq_len=100000 is larger", *_files(texts), "--config.data.seq_len=100000"
  )


def test_batch_and_mesh_vs_devices(tmp_path):
  # the test process (and so this child) has 8 fake CPU devices
  expect_error(
    str(tmp_path / "w"), "batch_size=12 is not divisible by the 8", "--config.train.batch_size=12"
  )
  expect_error(str(tmp_path / "w"), "needs 16 devices", "--config.mesh.data=16")


def test_restore_with_other_vocabulary_or_shape(tmp_path, texts):
  wd = str(tmp_path / "run")
  c = tiny_run_config()
  c.data.update(
    source="text_files", train_path=str(texts / "train.txt"), valid_path=str(texts / "valid.txt")
  )
  c.train.num_steps = 4
  assert modes.train(c, wd) == 0
  common = _files(texts) + [
    "--config.data.seq_len=16",
    "--config.model.num_heads=2",
    "--config.model.dtype=float32",
  ]
  # held-out text must not be the training file itself: a copy of it under another name
  (texts / "other_valid.txt").write_text((texts / "other.txt").read_text())
  expect_error(
    wd,
    "different vocabulary",
    *_files(texts, "other.txt", "other_valid.txt"),
    "--config.data.seq_len=16",
  )
  expect_error(wd, "d_model: checkpoint 32 vs config 64", *common, "--config.model.d_model=64")
  expect_error(wd, "different model shape", *common, "--config.model.num_layers=3")


# Each refused up front: (flags, text the one error line must contain). The fault attack found
# every one of these accepted (or failing late, or with a traceback) before config_check.
REFUSED = [
  (["--config.opt.grad_accum=0"], "config.opt.grad_accum must be >= 1, got 0"),
  (["--config.order.train=zigzag"], "config.order.train must be one of random|l2r|mixture"),
  (["--config.order.l2r_prob=2"], "config.order.l2r_prob must be in [0, 1], got 2"),
  (["--config.model.kernels.attention=bogus"], "config.model.kernels.attention must be one of"),
  (
    ["--config.model.attention_impl=cudnn"],  # the old name still lands on the new knob
    "config.model.kernels.attention=cudnn needs a GPU; this backend is cpu",
  ),
  (["--config.model.mlp_dim=-5"], "config.model.mlp_dim must be >= 0, got -5"),
  (["--config.seed=-1"], "config.seed must be >= 0, got -1"),
  (["--config.data.source=markov", "--config.data.markov_vocab=0"], "config.data.markov_vocab"),
  (["--config.eval.batch_size=0"], "config.eval.batch_size must be >= 1, got 0"),
  (["--mode=sample", "--config.sample.length=-5"], "config.sample.length must be >= 0"),
  (["--mode=sample", "--config.sample.num_samples=0"], "config.sample.num_samples must be >= 1"),
  (["--mode=sample", "--config.sample.num_samples=-2"], "config.sample.num_samples must be >= 1"),
  (["--mode=sample", "--config.sample.order_positions=a,b"], "config.sample.order_positions"),
  (["--mode=sample", "--config.sample.mdm_steps=-3"], "config.sample.mdm_steps must be >= 0"),
  (
    ["--mode=sample", "--config.sample.temperature=nan"],
    "config.sample.temperature must be finite",
  ),
  (["--mode=sample", "--config.sample.temperature=1e9"], "config.sample.temperature must be"),
  (["--config.train.batch_size=0"], "config.train.batch_size must be >= 1, got 0"),
  (["--config.train.batch_size=-8"], "config.train.batch_size must be >= 1, got -8"),
  (["--config.opt.lr=nan"], "config.opt.lr must be finite, got nan"),
  (["--config.opt.lr=-0.001"], "config.opt.lr must be >= 0, got -0.001"),
  (["--config.model.rope.base=0"], "config.model.rope.base must be > 0"),
  (["--config.model.rope.base=-10"], "config.model.rope.base must be > 0"),
  (["--config.opt.warmup_steps=-1"], "config.opt.warmup_steps must be >= 0, got -1"),
  (["--config.opt.b2=1"], "config.opt.b2 must be in [0, 1), got 1"),
  (["--config.opt.min_lr_ratio=-0.5"], "config.opt.min_lr_ratio must be in [0, 1]"),
  (["--config.train.eval_every=-1"], "config.train.eval_every must be >= 0, got -1"),
  (["--config.train.stop_after=-1"], "config.train.stop_after must be >= 0, got -1"),
  (["--config.train.patience=3"], "config.train.patience=3 needs train.eval_every > 0"),
  (["--config.eval.max_windows=-1"], "config.eval.max_windows must be >= 0, got -1"),
  (["--config.ckpt.keep=0"], "config.ckpt.keep must be >= 1, got 0"),
  (["--config.ckpt.keep=-1"], "config.ckpt.keep must be >= 1, got -1"),
  (["--config.mesh.data=0"], "config.mesh.data must be >= 1 or -1, got 0"),
  (["--config.train.profile=5:2"], "config.train.profile must be 'A:B' with A < B"),
  (["--config.data.tokenizer=wordpiece"], "config.data.tokenizer must be one of"),
  (
    ["--config.data.tokenizer=bpe", "--config.data.source=text_files"]
    + ["--config.data.train_path=/nonexistent/*.txt", "--config.data.valid_path=/x.txt"],
    "data.train_path: the glob '/nonexistent/*.txt' matches no file",
  ),
  (
    ["--config.data.tokenizer=sentencepiece", "--config.data.source=pydoc"],
    "data.tokenizer=sentencepiece reads text files (data.source=text_files)",
  ),
]


def test_refused_up_front(tmp_path):
  """Every input the fault attack got through, in parallel CLI runs: exit 2, one line naming
  the key and the value, and no workdir created."""

  def one(i):
    flags, match = REFUSED[i]
    try:
      expect_error(str(tmp_path / f"w{i}"), match, *flags)
      return None
    except AssertionError as e:
      return f"{flags}: {e}"

  with concurrent.futures.ThreadPoolExecutor(4) as pool:
    failures = [f for f in pool.map(one, range(len(REFUSED))) if f]
  assert not failures, "\n".join(failures)
  assert not any(p.name.startswith("w") for p in tmp_path.iterdir())


def test_workdir_or_cache_is_a_file(tmp_path):
  f = tmp_path / "a_file"
  f.write_text("not a folder")
  expect_error(str(f), "exists and is not a directory")
  expect_error(
    str(tmp_path / "w"), "data.cache_dir", f"--config.data.cache_dir={f}", watch=str(tmp_path)
  )
  expect_error(
    str(tmp_path / "w"), "data.cache_dir", "--mode=eval", f"--config.data.cache_dir={f}",
    watch=str(tmp_path),
  )  # fmt: skip


def test_data_file_that_is_not_a_regular_file(tmp_path, texts):
  expect_error(
    str(tmp_path / "w"), "is not a regular file (a directory)", *_files(texts, train=".")
  )
  expect_error(
    str(tmp_path / "w"),
    "/dev/null is not a regular file (a device",
    *_files(texts, valid="/dev/null"),
  )


def test_config_overrides_without_config(tmp_path):
  expect_error(
    str(tmp_path / "w"), "--config.train.batch_size needs --config=", "--config.train.batch_size=4",
    config=None, tiny=False,
  )  # fmt: skip


def test_a_batch_the_mesh_cannot_split_is_refused_before_the_data_is_read(tmp_path):
  """A subword run with a batch 8 devices cannot split stops before it trains a tokenizer or
  tokenises a store (it used to do both first)."""
  text = tmp_path / "train.txt"
  text.write_text("some words for a tokenizer to learn from\n" * 200, encoding="utf-8")
  held = tmp_path / "valid.txt"
  held.write_text("held out words\n" * 50, encoding="utf-8")
  cache = tmp_path / "cache"
  expect_error(
    str(tmp_path / "w"), "batch_size=12 is not divisible by the 8",
    "--config.train.batch_size=12", "--config.data.source=text_files",
    f"--config.data.train_path={text}", f"--config.data.valid_path={held}",
    "--config.data.tokenizer=bpe", "--config.data.vocab_size=300",
    f"--config.data.cache_dir={cache}", watch=str(tmp_path),
  )  # fmt: skip
  assert not cache.exists()
