"""Data: sources -> tokens (cached) -> windows -> batches. Knows nothing of models.

`load(cfg.data, workdir)` returns a `Data` with the tokenizer and the token streams of every
split; the tokenizer is saved to WORKDIR/vocab.json by the caller once all checks pass.
"""

import dataclasses

from aoarm.data import cache, sources, streamed, tokenizers
from aoarm.data.markov import MarkovSource
from aoarm.infra.errors import UserError

SOURCES = ("pydoc", "text_files", "tfds", "markov")


@dataclasses.dataclass
class Data:
  tokenizer: object
  splits: dict  # split name -> int32 token stream
  true_nll: object = None  # markov: callable L -> nats/token lower bound
  fingerprints: dict = dataclasses.field(default_factory=dict)  # split -> SHA-256 of its ids
  num_bytes: dict = dataclasses.field(default_factory=dict)  # split -> UTF-8 bytes (token stores)
  pending_writes: list = dataclasses.field(default_factory=list)

  def commit_cache(self):
    """Write the token cache (called once every check of the run has passed)."""
    for write in self.pending_writes:
      write()
    self.pending_writes = []

  @property
  def vocab_size(self) -> int:
    return self.tokenizer.vocab_size


def _texts(dcfg) -> dict:
  if dcfg.source == "pydoc":
    train, held = sources.split_stream(sources.pydoc_text(), dcfg.valid_fraction)
    return {"train": train, "valid": held, "test": held}
  if dcfg.source == "text_files":
    out = {
      "train": sources.read_text_file(dcfg.train_path),
      "valid": sources.read_text_file(dcfg.valid_path),
    }
    if dcfg.test_path:
      out["test"] = sources.read_text_file(dcfg.test_path)
    return out
  if dcfg.source == "tfds":
    return {
      "train": sources.tfds_text(
        dcfg.tfds_name, dcfg.tfds_train_split, dcfg.tfds_text_key, dcfg.tfds_data_dir
      ),
      "valid": sources.tfds_text(
        dcfg.tfds_name, dcfg.tfds_valid_split, dcfg.tfds_text_key, dcfg.tfds_data_dir
      ),
    }
  raise UserError(f"unknown data.source {dcfg.source!r}; expected one of {SOURCES}")


def _tokenizer(kind: str, train_text: str, fixed=None):
  if fixed is not None:
    return fixed
  if kind == "char":
    return tokenizers.CharTokenizer.fit(train_text)
  if kind == "byte":
    return tokenizers.ByteTokenizer()
  raise UserError(f"unknown data.tokenizer {kind!r}; expected char | byte | sentencepiece | bpe")


def _load_streamed(dcfg, cache_dir: str, tokenizer, splits, check_tokenizer) -> Data:
  """Subword data: every split a memory-mapped token store (`data.store`); with `splits`, only
  those (an eval needs no training store, nor the training corpus once its tokenizer is saved)."""
  # the training files are read only to train a tokenizer, or for a split that is needed
  only = None if splits is None or tokenizer is None else splits
  paths = streamed.split_paths(dcfg, only)
  tok = tokenizer or streamed.tokenizer(dcfg, paths["train"], cache_dir)
  if check_tokenizer is not None:
    check_tokenizer(tok)  # before any store is built
  if splits is not None:
    paths = {k: v for k, v in paths.items() if k in splits}
  stores = streamed.stores(dcfg, tok, cache_dir, paths)
  return Data(
    tok,
    stores,
    fingerprints={k: s.fingerprint for k, s in stores.items()},
    num_bytes={k: s.manifest["num_bytes"] for k, s in stores.items()},
  )


def load(dcfg, cache_dir: str = "", tokenizer=None, splits=None, check_tokenizer=None) -> Data:
  """Token streams for every split. `tokenizer`: a saved vocabulary to reuse (eval, resume).
  `splits` (subword stores): build only these. `check_tokenizer(tok)`: raises where the
  tokenizer is not the run's, before anything is tokenised."""
  if dcfg.seq_len < 2:
    raise UserError(f"data.seq_len must be >= 2, got {dcfg.seq_len}")
  if dcfg.source == "markov":
    src = MarkovSource(dcfg.markov_vocab, dcfg.markov_concentration, seed=0)
    stream = src.sample(dcfg.markov_tokens)
    train, held = sources.split_stream(stream, dcfg.valid_fraction)
    splits = {"train": train, "valid": held, "test": held}
    return Data(
      tokenizers.SymbolTokenizer(src.vocab),
      splits,
      src.true_nll_per_token,
      fingerprints={k: cache.ids_sha256(v) for k, v in splits.items()},
    )
  if dcfg.source not in SOURCES:
    raise UserError(f"unknown data.source {dcfg.source!r}; expected one of {SOURCES}")
  if dcfg.tokenizer in streamed.SUBWORD:
    return _load_streamed(dcfg, cache_dir, tokenizer, splits, check_tokenizer)
  texts = _texts(dcfg)
  if dcfg.text8:
    texts = {k: sources.normalize_text8(v) for k, v in texts.items()}
  # pydoc is one document split in two: its vocabulary is the whole document's.
  fit_text = texts["train"] + texts["valid"] if dcfg.source == "pydoc" else texts["train"]
  tok = _tokenizer(dcfg.tokenizer, fit_text, tokenizer)
  cached = {k: cache.cached_encode(tok, v, k, cache_dir) for k, v in texts.items()}
  return Data(
    tok,
    {k: ids for k, (ids, _, _) in cached.items()},
    fingerprints={k: digest for k, (_, digest, _) in cached.items()},
    pending_writes=[w for _, _, w in cached.values()],
  )
