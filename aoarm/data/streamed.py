"""The data of a subword run: a tokenizer trained once per sample (or loaded), and each split in a
token store (`data.store`), opened where it exists and built where it does not.

The tokenizer trained from a sample is kept in the cache folder under a key of what it was
trained on, so every run of a sweep that shares `data.cache_dir` uses the same one (and so the
same stores) without training or tokenising again.
"""

import hashlib
import json
import logging
import os

from aoarm.data import sources, store, subword, tokenizers
from aoarm.infra import workdir
from aoarm.infra.errors import UserError

log = logging.getLogger("aoarm")
SUBWORD = tokenizers.SUBWORD


def split_paths(dcfg, only=None) -> dict:
  """Split name -> the sources it reads (`text_files`: paths, globs, directories; `tfds`: the
  split, streamed example by example)."""
  if dcfg.source == "tfds":
    return {
      "train": [sources.tfds_spec(dcfg.tfds_name, dcfg.tfds_train_split, dcfg.tfds_data_dir)],
      "valid": [sources.tfds_spec(dcfg.tfds_name, dcfg.tfds_valid_split, dcfg.tfds_data_dir)],
    }
  if dcfg.source != "text_files":
    raise UserError(
      f"data.tokenizer={dcfg.tokenizer} reads text files (data.source=text_files) or a TFDS "
      f"dataset (tfds), not data.source={dcfg.source}"
    )
  specs = {"train": dcfg.train_path, "valid": dcfg.valid_path}
  if dcfg.test_path:
    specs["test"] = dcfg.test_path
  out = {
    k: sources.expand_paths(v, f"data.{k}_path", dcfg.extensions)
    for k, v in specs.items()
    if only is None or k in only
  }
  return out


def _options(dcfg) -> dict:
  key = dcfg.tfds_text_key if dcfg.source == "tfds" else dcfg.text_key
  return {"doc_per_line": bool(dcfg.doc_per_line), "text_key": key, "text8": dcfg.text8}


def _texts(paths, options):
  for text, _ in sources.documents(paths, options["doc_per_line"], options["text_key"]):
    yield sources.normalize_text8(text) if options["text8"] else text


# a tokenizer's training sample where data.tokenizer_sample_bytes = 0: sentencepiece's trainer
# holds ~24 bytes of memory per byte of its sample (measured: 10 / 25 / 40 MB -> 277 / 625 / 982
# MB peak RSS, unigram, 1024 entries), so its default keeps it near 1.2 GB
SAMPLE_BYTES = {"bpe": 100_000_000, "sentencepiece": 48_000_000}
SPM_BYTES_PER_BYTE = 25


def sample_bytes(dcfg) -> int:
  """The bytes of training text the tokenizer learns from (data.tokenizer_sample_bytes, or its
  kind's default where that is 0)."""
  return dcfg.tokenizer_sample_bytes or SAMPLE_BYTES[dcfg.tokenizer]


def tokenizer(dcfg, paths: list[str], cache_dir: str):
  """Loaded from data.tokenizer_path, else trained on the first data.tokenizer_sample_bytes of
  the training files (kept in the cache under a key of what it was trained on)."""
  if dcfg.tokenizer_path:
    tok = subword.load_file(dcfg.tokenizer, dcfg.tokenizer_path)
    if tok.eod_id is None:
      log.warning("%s has no end-of-document token: documents are joined without one", tok.kind)
    return tok
  ident = {
    "kind": dcfg.tokenizer,
    "vocab_size": dcfg.vocab_size,
    "model_type": dcfg.spm_model_type if dcfg.tokenizer == "sentencepiece" else "",
    "sample_bytes": sample_bytes(dcfg),  # resolved: 0 and its default are one tokenizer
    "options": _options(dcfg),
    "sources": [store._source_id(p) for p in paths],
  }
  key = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
  path = os.path.join(cache_dir, f"tokenizer-{dcfg.tokenizer}-{key}.json") if cache_dir else ""
  if path and os.path.exists(path):
    try:
      return tokenizers.load(path)
    except UserError as e:
      log.warning("%s: training the tokenizer again", e)
  texts = _texts(paths, _options(dcfg))
  n = sample_bytes(dcfg)
  log.info(
    "training a %s tokenizer of %d entries on the first %s bytes of the training split",
    dcfg.tokenizer,
    dcfg.vocab_size,
    f"{n:,}",
  )
  if dcfg.tokenizer == "sentencepiece":
    if n > SAMPLE_BYTES["sentencepiece"]:
      log.warning(
        "data.tokenizer_sample_bytes=%d: sentencepiece's trainer will hold about %.1f GB",
        n,
        SPM_BYTES_PER_BYTE * n / 1e9,
      )
    tok = subword.SentencePieceTokenizer.train(texts, dcfg.vocab_size, dcfg.spm_model_type, n)
  else:
    tok = subword.BpeTokenizer.train(texts, dcfg.vocab_size, n)
  if path:
    try:
      os.makedirs(cache_dir, exist_ok=True)
      tokenizers.save(tok, path)
    except OSError as e:
      log.warning("tokenizer not kept in %s (%s)", cache_dir, e)
  return tok


def stores(dcfg, tok, cache_dir: str, paths_by_split: dict) -> dict:
  """Split name -> TokenStore, each opened or built."""
  if not cache_dir:
    raise UserError("subword data needs a cache folder for its token store (data.cache_dir)")
  out = {}
  options = _options(dcfg)
  for split, paths in paths_by_split.items():
    key = store.store_key(split, paths, tok, options)
    path = os.path.join(cache_dir, f"store-{split}-{key}")
    st = store.open_store(path)
    if st is None:
      workdir.check_dir(cache_dir, "data.cache_dir")
      log.info("building the %s token store in %s", split, path)
      st = store.build_store(path, paths, tok, options, split, dcfg.shard_tokens, dcfg.num_workers)
    out[split] = st
  return out
