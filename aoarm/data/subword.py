"""Subword tokenizers: `sentencepiece` (unigram or BPE, the flax lm1b convention) and `bpe`
(Hugging Face `tokenizers`, byte-level BPE as GPT-2's). Each is trained on a bounded sample of
the training split (`data.vocab_size`, `data.tokenizer_sample_bytes`) or loaded from
`data.tokenizer_path`; the whole model travels in `to_json()`, so a run's `vocab.json` and every
checkpoint hold it byte for byte, and a resume or eval with another tokenizer is refused.

Both reserve one id for the end of a document (`eod_id`), appended after every document; the
model's BOS / MASK row is id `vocab_size` for every tokenizer (`tokenizers.special_ids`).
"""

import base64
import hashlib
import io
import os
import re

import numpy as np

from aoarm.infra.errors import UserError

EOD_PIECE = "<|endoftext|>"


def _sha256(b: bytes) -> str:
  return hashlib.sha256(b).hexdigest()


def _lines(texts, limit_bytes: int):
  """Lines of the sample (sentencepiece trains on sentences), at most `limit_bytes` in all."""
  used = 0
  for text in texts:
    for line in text.splitlines():
      if line.strip():
        used += len(line.encode("utf-8"))
        yield line
        if used >= limit_bytes:
          return


class SentencePieceTokenizer:
  kind = "sentencepiece"

  def __init__(self, model_proto: bytes, where: str = "sentencepiece model"):
    import sentencepiece as spm

    try:
      self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
    except Exception as e:  # noqa: BLE001 - the library's own reason, in one line
      raise UserError(f"{where} does not load as a sentencepiece model: {e}") from None
    self.proto = model_proto
    self.sha256 = _sha256(model_proto)
    self.vocab_size = int(self.sp.get_piece_size())
    eos = int(self.sp.eos_id())
    self.eod_id = eos if eos >= 0 else None

  @classmethod
  def train(cls, texts, vocab_size: int, model_type: str, sample_bytes: int):
    import sentencepiece as spm

    out = io.BytesIO()
    try:
      spm.SentencePieceTrainer.train(
        sentence_iterator=_lines(texts, sample_bytes),
        model_writer=out,
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=0.9995,  # the rarest characters go through byte pieces
        byte_fallback=True,  # no unknown bytes: any UTF-8 text encodes
        # minimal normalisation: text decodes to itself (tabs, newlines and runs of spaces kept)
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True,
        unk_id=0,
        eos_id=1,  # the end-of-document token
        bos_id=-1,  # the model has its own BOS row
        pad_id=-1,
        minloglevel=2,
        num_threads=os.cpu_count() or 1,
      )
    except RuntimeError as e:
      m = re.search(r"Please set it to a value <= (\d+)", str(e))
      if m:
        raise UserError(
          f"data.vocab_size={vocab_size} is larger than the tokenizer sample supports "
          f"(at most {m.group(1)}); lower it or raise data.tokenizer_sample_bytes"
        ) from None
      m = re.search(r"smaller than required_chars\. (\d+) vs (\d+)", str(e))
      if m:
        raise UserError(
          f"data.vocab_size={vocab_size} is smaller than the {m.group(2)} pieces the sample's "
          "characters and bytes need; raise it"
        ) from None
      raise UserError(f"sentencepiece training failed: {str(e).splitlines()[-1]}") from None
    return cls(out.getvalue())

  @classmethod
  def load(cls, path: str):
    with open(path, "rb") as f:
      return cls(f.read(), where=path)

  def encode(self, text: str, where: str = "text") -> np.ndarray:
    return np.asarray(self.sp.encode(text), np.int32)

  def encode_docs(self, docs: list) -> list:
    return self.sp.encode(docs)

  def decode(self, ids) -> str:
    return self.sp.decode([int(i) for i in np.asarray(ids).reshape(-1)])

  def to_json(self) -> dict:
    return {
      "kind": self.kind,
      "sha256": self.sha256,
      "vocab_size": self.vocab_size,
      "model": base64.b64encode(self.proto).decode("ascii"),
    }


class BpeTokenizer:
  kind = "bpe"

  def __init__(self, tokenizer_json: str, where: str = "tokenizer.json"):
    from tokenizers import Tokenizer

    try:
      self.tok = Tokenizer.from_str(tokenizer_json)
    except Exception as e:  # noqa: BLE001
      raise UserError(f"{where} does not load as a tokenizers tokenizer: {e}") from None
    self.json = tokenizer_json
    self.sha256 = _sha256(tokenizer_json.encode("utf-8"))
    self.vocab_size = int(self.tok.get_vocab_size())
    self.eod_id = self.tok.token_to_id(EOD_PIECE)

  @classmethod
  def train(cls, texts, vocab_size: int, sample_bytes: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size < len(alphabet) + 1:
      raise UserError(
        f"data.vocab_size={vocab_size} is too small for byte-level BPE (at least "
        f"{len(alphabet) + 1}: 256 bytes and the end-of-document token)"
      )
    trainer = trainers.BpeTrainer(
      vocab_size=vocab_size,
      special_tokens=[EOD_PIECE],
      initial_alphabet=alphabet,
      show_progress=False,
    )
    tok.train_from_iterator(_lines(texts, sample_bytes), trainer)
    out = cls(tok.to_str())
    if out.vocab_size < vocab_size:  # never a smaller vocabulary than asked for, silently
      raise UserError(
        f"data.vocab_size={vocab_size} is larger than the tokenizer sample supports (its merges "
        f"give a bpe of {out.vocab_size} entries): use data.vocab_size <= {out.vocab_size}, "
        "or more training text"
      )
    return out

  @classmethod
  def load(cls, path: str):
    with open(path, "rb") as f:
      raw = f.read()
    try:
      text = raw.decode("utf-8")
    except UnicodeDecodeError:
      raise UserError(f"{path} does not load as a tokenizers tokenizer: not UTF-8 JSON") from None
    return cls(text, where=path)

  def encode(self, text: str, where: str = "text") -> np.ndarray:
    return np.asarray(self.tok.encode(text).ids, np.int32)

  def encode_docs(self, docs: list) -> list:
    # encode_batch_fast keeps no character offsets (~4x less memory per token)
    fast = getattr(self.tok, "encode_batch_fast", self.tok.encode_batch)
    return [e.ids for e in fast(docs)]

  def decode(self, ids) -> str:
    return self.tok.decode([int(i) for i in np.asarray(ids).reshape(-1)])

  def to_json(self) -> dict:
    return {
      "kind": self.kind,
      "sha256": self.sha256,
      "vocab_size": self.vocab_size,
      "model": self.json,
    }


def from_json(d: dict):
  if d["kind"] == "sentencepiece":
    return SentencePieceTokenizer(base64.b64decode(d["model"]))
  return BpeTokenizer(d["model"])


def load_file(kind: str, path: str):
  """A tokenizer from `data.tokenizer_path`: a sentencepiece .model, or a tokenizer.json."""
  if not os.path.isfile(path):
    raise UserError(f"data.tokenizer_path {path} is not a file")
  return SentencePieceTokenizer.load(path) if kind == "sentencepiece" else BpeTokenizer.load(path)
