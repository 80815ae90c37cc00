"""Text sources: local files, any TFDS text dataset, the pydoc text shipped with CPython.

Each returns the raw text of a split; `normalize_text8` maps text to text8's alphabet (a-z and
space, lower-cased, other characters to spaces, runs of spaces collapsed).
"""

import os
import re

from aoarm.errors import UserError

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


def tfds_text(name: str, split: str, key: str, data_dir: str = "") -> str:
  """All examples of a TFDS text dataset split, joined by newlines (array_record, no TF)."""
  import tensorflow_datasets as tfds

  if not name:
    raise UserError("data.source=tfds needs data.tfds_name")
  try:
    source = tfds.data_source(name, split=split, data_dir=data_dir or None, download=False)
  except Exception as e:  # noqa: BLE001 - surface TFDS's reason in one line
    raise UserError(f"tfds dataset {name!r} split {split!r}: {type(e).__name__}: {e}") from None
  texts = []
  for i in range(len(source)):
    ex = source[i]
    if key not in ex:
      raise UserError(f"tfds {name!r} has no feature {key!r}; features: {sorted(ex)}")
    val = ex[key]
    texts.append(val.decode("utf-8") if isinstance(val, bytes) else str(val))
  if not texts:
    raise UserError(f"tfds dataset {name!r} split {split!r} is empty")
  return "\n".join(texts)
