"""The token cache: a split's token ids stored once per (text, vocabulary), verified on every load.

`CACHE/<split>-<key>.npy` holds the ids; `<split>-<key>.json` beside it holds their SHA-256,
count and dtype and the source's identity (the SHA-256 of the vocabulary and the text, whose
prefix is `key`). A cache whose file is truncated, unreadable, or whose ids do not hash to the
recorded value is not used: the split is tokenised again and the cache rewritten (both files
atomically, the ids first, so a crash between them leaves a cache that fails the check).
"""

import hashlib
import json
import logging
import os

import numpy as np

from aoarm.infra import workdir

log = logging.getLogger("aoarm")


def ids_sha256(ids: np.ndarray) -> str:
  return hashlib.sha256(np.ascontiguousarray(ids, np.int32).tobytes()).hexdigest()


def source_sha256(tok, text: str) -> str:
  return hashlib.sha256(json.dumps(tok.to_json()).encode() + text.encode()).hexdigest()


def _verified(npy: str, sidecar: str, source: str):
  """(ids, their SHA-256, None) from a cache that passes every check, else (None, None, why
  not); `why` is None where there is no cache at all."""
  if not os.path.exists(npy) and not os.path.exists(sidecar):
    return None, None, None
  try:
    with open(sidecar, encoding="utf-8") as f:
      rec = json.load(f)
    ids = np.load(npy, allow_pickle=False)
  except (OSError, ValueError, EOFError) as e:
    return None, None, f"unreadable ({type(e).__name__}: {str(e)[:120]})"
  if rec.get("source_sha256") != source:
    return None, None, "recorded for another text or vocabulary"
  if ids.dtype != np.int32 or ids.ndim != 1 or len(ids) != rec.get("num_tokens"):
    return (
      None,
      None,
      f"holds {ids.dtype}{list(ids.shape)}, recorded int32[{rec.get('num_tokens')}]",
    )
  digest = ids_sha256(ids)
  if digest != rec.get("ids_sha256"):
    return None, None, "its token ids do not match their recorded SHA-256"
  return ids, digest, None


def cached_encode(tok, text: str, split: str, cache_dir: str):
  """(ids, ids_sha256, write): the split's token ids, from a verified cache when there is one;
  `write()` stores a new or repaired cache (called once every check of the run has passed)."""
  source = source_sha256(tok, text)
  if cache_dir:
    stem = os.path.join(cache_dir, f"{split}-{source[:16]}")
    ids, digest, why = _verified(stem + ".npy", stem + ".json", source)
    if ids is not None:  # already hashed by the check: not hashed again
      return ids, digest, lambda: None
    if why:
      log.warning(
        "token cache %s.npy not used (%s): tokenising the %s split again", stem, why, split
      )
  ids = tok.encode(text, where=f"{split} split").astype(np.int32)
  digest = ids_sha256(ids)
  if not cache_dir:
    return ids, digest, lambda: None

  def write():
    try:
      os.makedirs(cache_dir, exist_ok=True)
      tmp = stem + ".tmp.npy"
      np.save(tmp, ids)
      os.replace(tmp, stem + ".npy")
      rec = {"ids_sha256": digest, "num_tokens": int(len(ids)), "dtype": "int32"}
      rec.update(source_sha256=source, split=split)
      workdir.write_atomic(stem + ".json", json.dumps(rec, indent=1) + "\n")
    except OSError as e:  # a read-only or full cache folder: the run goes on without it
      log.warning(
        "token cache %s not written (%s): the split is tokenised again next time", stem, e
      )

  return ids, digest, write
