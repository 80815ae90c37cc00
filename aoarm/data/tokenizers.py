"""Tokenizers: `char` (vocabulary of the training text, saved with the run) and `byte` (UTF-8);
the subword ones (`sentencepiece`, `bpe`) are in `data.subword`.

Both map text <-> int32 ids in [0, vocab_size). A tokenizer round-trips through `to_json` so a run's
vocabulary is stored in its workdir and checked when a checkpoint is restored.
"""

import json

import numpy as np

from aoarm.infra import workdir
from aoarm.infra.errors import UserError

SUBWORD = ("sentencepiece", "bpe")  # trained on the training split, streamed into a token store
TOKENIZERS = ("char", "byte", *SUBWORD)  # the values of data.tokenizer


class CharTokenizer:
  kind = "char"

  def __init__(self, chars: str):
    if len(set(chars)) != len(chars) or not chars:
      raise UserError("char vocabulary must be non-empty and without repeats")
    self.chars = chars
    self._ids = {c: i for i, c in enumerate(chars)}
    self._ascii = np.full(128, -1, np.int32)
    for c, i in self._ids.items():
      if ord(c) < 128:
        self._ascii[ord(c)] = i

  @classmethod
  def fit(cls, text: str) -> "CharTokenizer":
    return cls("".join(sorted(set(text))))

  @property
  def vocab_size(self) -> int:
    return len(self.chars)

  def encode(self, text: str, where: str = "text") -> np.ndarray:
    if text.isascii():
      ids = self._ascii[np.frombuffer(text.encode("ascii"), np.uint8)]
    else:
      ids = np.fromiter((self._ids.get(c, -1) for c in text), np.int32, len(text))
    if (ids < 0).any():
      bad = sorted({c for c in text if c not in self._ids})
      raise UserError(f"{where}: characters not in the training vocabulary: {bad[:20]!r}")
    return ids.astype(np.int32)

  def decode(self, ids) -> str:
    return "".join(self.chars[int(i)] for i in np.asarray(ids).reshape(-1))

  def to_json(self) -> dict:
    return {"kind": "char", "chars": self.chars}


class ByteTokenizer:
  kind = "byte"
  vocab_size = 256

  def encode(self, text: str, where: str = "text") -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), np.uint8).astype(np.int32)

  def decode(self, ids) -> str:
    return bytes(int(i) for i in np.asarray(ids).reshape(-1)).decode("utf-8", errors="replace")

  def to_json(self) -> dict:
    return {"kind": "byte"}


class SymbolTokenizer:
  """For synthetic sources: ids 0..n-1 shown as letters."""

  kind = "symbol"

  def __init__(self, n: int):
    self.vocab_size = n

  def encode(self, text: str, where: str = "text") -> np.ndarray:
    ids = np.array([ord(c) - ord("a") for c in text], np.int32)
    if len(ids) and (ids.min() < 0 or ids.max() >= self.vocab_size):
      raise UserError(f"{where}: symbols must be letters a..{chr(ord('a') + self.vocab_size - 1)}")
    return ids

  def decode(self, ids) -> str:
    return "".join(
      chr(ord("a") + int(i)) if i < 26 else f"<{int(i)}>" for i in np.asarray(ids).reshape(-1)
    )

  def to_json(self) -> dict:
    return {"kind": "symbol", "n": self.vocab_size}


def special_ids(tok) -> dict:
  """The ids every model and sampler agrees on, for any tokenizer: the model's extra embedding
  row (BOS for the causal variants, MASK for mdm) is id vocab_size, outside the tokenizer's
  range; the end of a document is the tokenizer's own id where it has one (subword), else None."""
  return {"bos": tok.vocab_size, "mask": tok.vocab_size, "eod": getattr(tok, "eod_id", None)}


def from_json(d: dict):
  kind = d.get("kind")
  if kind == "char":
    return CharTokenizer(d["chars"])
  if kind == "byte":
    return ByteTokenizer()
  if kind == "symbol":
    return SymbolTokenizer(int(d["n"]))
  if kind in SUBWORD:
    from aoarm.data import subword

    return subword.from_json(d)
  raise UserError(f"unknown tokenizer kind {kind!r}")


def save(tok, path: str):
  """Atomically: a reader (or a full disk mid-write) never sees a part of the file."""
  workdir.write_atomic(path, json.dumps(tok.to_json(), ensure_ascii=False))


def load(path: str):
  """The saved tokenizer; a damaged file (empty, truncated, not JSON, unknown kind) raises
  UserError naming the file."""
  try:
    with open(path, encoding="utf-8") as f:
      return from_json(json.load(f))
  except (OSError, ValueError, KeyError, TypeError, AttributeError, UserError) as e:
    raise UserError(f"{path} is damaged ({type(e).__name__}: {str(e)[:120]})") from None
