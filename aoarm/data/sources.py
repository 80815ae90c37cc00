"""Text sources: local files, any TFDS text dataset, the pydoc text shipped with CPython.

Each returns the raw text of a split; `normalize_text8` maps text to text8's alphabet (a-z and
space, lower-cased, other characters to spaces, runs of spaces collapsed).
"""

import gzip
import os
import re
import zlib

from aoarm.infra.errors import UserError

SPLITS = ("train", "valid", "test")


def read_text_file(path: str) -> str:
  if not path:
    raise UserError("data.source=text_files needs data.train_path / data.valid_path")
  if not os.path.exists(path):
    raise UserError(f"data file not found: {path}")
  if not os.path.isfile(path):
    kind = "a directory" if os.path.isdir(path) else "a device or special file"
    raise UserError(f"data file {path} is not a regular file ({kind})")
  with open(path, "rb") as f:
    raw = f.read()
  try:
    text = raw.decode("utf-8")
  except UnicodeDecodeError as e:
    raise UserError(
      f"{path}: not UTF-8 text (bad byte 0x{raw[e.start]:02x} at offset {e.start})"
    ) from None
  if not text.strip():
    raise UserError(f"data file is empty: {path}")
  return text


def normalize_text8(text: str) -> str:
  text = re.sub(r"[^a-z]+", " ", text.lower())
  return re.sub(" +", " ", text)


def pydoc_text() -> str:
  """The Python language reference topics that ship with CPython (pydoc_data), in a fixed order."""
  from pydoc_data import topics

  return "\n\n".join(topics.topics[k] for k in sorted(topics.topics))


def split_stream(text, valid_fraction: float):
  """Head for training, tail held out (valid, and test = the same held-out tail)."""
  if not 0 < valid_fraction < 1:
    raise UserError(f"data.valid_fraction must be in (0, 1), got {valid_fraction}")
  cut = int(len(text) * (1 - valid_fraction))
  return text[:cut], text[cut:]


TFDS_PREFIX = "tfds:"  # a split of a TFDS dataset where a file path may stand


def tfds_spec(name: str, split: str, data_dir: str = "") -> str:
  """`tfds:NAME:SPLIT:DATA_DIR`: a TFDS split in a list of sources (`documents` streams it)."""
  if not name:
    raise UserError("data.source=tfds needs data.tfds_name")
  return f"{TFDS_PREFIX}{name}:{split}:{data_dir}"


def _tfds_parts(spec: str) -> tuple[str, str, str]:
  """(name, split, data_dir) of a `tfds_spec`."""
  name, split, data_dir = spec[len(TFDS_PREFIX) :].split(":", 2)
  return name, split, data_dir


def tfds_source(spec: str):
  """The split's random-access data source (array_record, no TensorFlow)."""
  import tensorflow_datasets as tfds

  name, split, data_dir = _tfds_parts(spec)
  try:
    return tfds.data_source(name, split=split, data_dir=data_dir or None, download=False)
  except Exception as e:  # noqa: BLE001 - surface TFDS's reason in one line
    raise UserError(f"tfds dataset {name!r} split {split!r}: {type(e).__name__}: {e}") from None


def tfds_id(spec: str) -> list:
  """What identifies a TFDS split's contents: the spec, the dataset's version, its examples."""
  source = tfds_source(spec)
  info = getattr(source, "dataset_info", None)
  return [spec, str(info.version) if info is not None else "", len(source)]


def tfds_documents(spec: str, key: str):
  """Each example's `key` feature, one document each, read one example at a time."""
  source = tfds_source(spec)
  name, split, _ = _tfds_parts(spec)
  if len(source) == 0:
    raise UserError(f"tfds dataset {name!r} split {split!r} is empty")
  for i in range(len(source)):
    ex = source[i]
    if key not in ex:
      raise UserError(f"tfds {name!r} has no feature {key!r}; features: {sorted(ex)}")
    val = ex[key]
    yield val.decode("utf-8") if isinstance(val, bytes) else str(val)


def tfds_text(name: str, split: str, key: str, data_dir: str = "") -> str:
  """All examples of a TFDS text split joined by newlines, for the in-memory char/byte data
  (subword tokenizers stream a split into a token store instead: `documents`)."""
  return "\n".join(tfds_documents(tfds_spec(name, split, data_dir), key))


TEXT_SUFFIXES = (".txt", ".jsonl", ".txt.gz", ".jsonl.gz")
PIECE_BYTES = 256 << 10  # a long document is read and tokenised in pieces of about this size


def _suffixes(extensions: str) -> tuple[str, ...]:
  """'' -> TEXT_SUFFIXES; '.txt,.raw' -> ('.txt', '.raw') (lower case; a leading dot added)."""
  if not extensions:
    return TEXT_SUFFIXES
  parts = (e.strip().lower() for e in extensions.split(","))
  return tuple(e if e.startswith(".") else f".{e}" for e in parts if e)


def expand_paths(spec: str, what: str, extensions: str = "") -> list[str]:
  """Files named by `spec`: a path (read whatever its extension), a glob or a directory (every
  file below it with one of the extensions: `extensions`, a comma list, or by default
  .txt / .jsonl and their .gz, in any case), or a comma list of those; sorted, so a corpus always
  reads in the same order. Nothing is dropped silently: with the default extensions a folder
  or glob that also holds other files is refused with their names (set data.extensions to say
  which to take); with `extensions` given, the files it leaves out are logged."""
  import glob
  import logging

  if not spec:
    raise UserError(f"{what} is empty: name a file, a glob or a directory")
  take = _suffixes(extensions)
  out, skipped = [], []
  # a path that exists is taken as it is, commas and glob characters in its name included
  parts = [spec] if os.path.exists(spec) else filter(None, (p.strip() for p in spec.split(",")))
  for part in parts:
    if os.path.isdir(part) or (not os.path.exists(part) and any(c in part for c in "*?[")):
      if os.path.isdir(part):
        every = [os.path.join(r, f) for r, _, files in os.walk(part) for f in files]
      else:
        every = [p for p in glob.glob(part, recursive=True) if os.path.isfile(p)]
        if not every:
          raise UserError(f"{what}: the glob {part!r} matches no file")
      found = [f for f in every if f.lower().endswith(take)]
      skipped += [f for f in every if not f.lower().endswith(take)]
      if not found:
        raise UserError(f"{what}: {part} holds no {'/'.join(take)} files (data.extensions)")
    else:
      if not os.path.exists(part):
        raise UserError(f"data file not found: {part}")
      if not os.path.isfile(part):
        raise UserError(f"data file {part} is not a regular file (a device or special file)")
      found = [part]
    out.extend(sorted(found))
  if skipped and not extensions:
    names = ", ".join(sorted(skipped)[:8]) + (
      f" and {len(skipped) - 8} more" if len(skipped) > 8 else ""
    )
    raise UserError(
      f"{what}: {len(skipped)} file(s) without a {'/'.join(take)} extension would be left out: "
      f"{names}; name them explicitly, or set data.extensions (e.g. '.txt,.raw') to say which "
      "to take"
    )
  total = sum(os.path.getsize(f) for f in out)
  if total == 0:
    raise UserError(f"{what}: {len(out)} file(s), all empty: there is no text to read")
  log = logging.getLogger("aoarm")
  if skipped:
    log.warning(
      "%s: left out %d file(s) outside data.extensions=%r: %s",
      what,
      len(skipped),
      extensions,
      ", ".join(sorted(skipped)),
    )
  log.info("%s: %d file(s), %.1f MB", what, len(out), total / 1e6)
  return out


def _open_text(path: str):
  if path.endswith(".gz"):
    return gzip.open(path, "rt", encoding="utf-8", newline="")
  return open(path, encoding="utf-8", newline="")


def documents(paths: list[str], doc_per_line: bool = False, text_key: str = "text"):
  """(text, ends_document) pieces of every document of `paths`, streamed (bounded memory):
  JSONL files hold one document per line under `text_key`, as TFDS splits (`tfds_spec`) one per
  example; text files are one document each,
  or one per non-empty line with `doc_per_line`. A long document comes in pieces of about
  PIECE_BYTES, cut at line ends."""
  import json

  for path in paths:
    if path.startswith(TFDS_PREFIX):  # one document per example
      yield from ((text, True) for text in tfds_documents(path, text_key))
      continue
    jsonl = path.endswith((".jsonl", ".jsonl.gz"))
    piece, size = [], 0
    try:
      with _open_text(path) as f:
        for n, line in enumerate(f, 1):
          if jsonl:
            if not line.strip():
              continue
            try:
              rec = json.loads(line)
            except ValueError:
              raise UserError(f"{path}:{n}: not a JSON line") from None
            if not isinstance(rec, dict) or text_key not in rec:
              raise UserError(f"{path}:{n}: no {text_key!r} key (data.text_key)")
            if not isinstance(rec[text_key], str):
              kind = "null" if rec[text_key] is None else type(rec[text_key]).__name__
              raise UserError(f"{path}:{n}: {text_key!r} is {kind}, not text (data.text_key)")
            yield rec[text_key], True
          elif doc_per_line:
            if line.strip():
              yield line.rstrip("\n"), True
          else:
            piece.append(line)
            size += len(line)
            if size >= PIECE_BYTES:
              yield "".join(piece), False
              piece, size = [], 0
        if piece:
          yield "".join(piece), True
        elif not jsonl and not doc_per_line and size == 0:
          yield "", True  # the document's end after a last full piece
    except UnicodeDecodeError as e:
      raise UserError(f"{path}: not UTF-8 text (bad byte at offset {e.start} of a block)") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:  # a cut or damaged .gz
      raise UserError(f"{path}: not a whole gzip file ({type(e).__name__}: {e})") from None
    except OSError as e:
      raise UserError(f"{path}: cannot be read ({e.strerror or e})") from None
