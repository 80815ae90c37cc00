"""The token store: a split tokenised once into memory-mapped shards, shared by every run.

`CACHE/store-<split>-<key>/` holds `shard_NNNNN.bin` files of uint16 token ids (uint32 where the
vocabulary needs it) and `manifest.json`: the sources (path, size, modification time; for a TFDS
split its name, version and number of examples), the
tokenizer's SHA-256, each shard's token count and SHA-256, the split's byte and token counts.
`key` hashes the sources and the tokenizer, so a second run of a sweep opens the store without
tokenising again, while changed sources or another tokenizer get a store of their own.

Building streams the documents (bounded memory whatever the corpus size) through `num_workers`
processes, writes each shard under a temporary name, and makes the store appear by renaming a
finished `.partial` folder: a store is never half-written, and an interrupted build leaves only
a `.partial` folder that the next build removes. Reading: windows of L tokens within each shard,
gathered by index straight from the memory maps (`StoreWindows`), so memory does not grow with
the corpus and each process reads only its own rows.
"""

import collections
import dataclasses
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from aoarm.data import sources
from aoarm.infra import interrupts, workdir
from aoarm.infra.errors import Interrupted, UserError

log = logging.getLogger("aoarm")
VERSION = 1
BATCH_BYTES = 256 << 10  # text per encoding task: its ids, as Python objects, take ~100x that


def tokenizer_id(tok) -> str:
  """The tokenizer's SHA-256 (subword tokenizers carry theirs; others are hashed from JSON)."""
  digest = getattr(tok, "sha256", None)
  return digest or hashlib.sha256(json.dumps(tok.to_json(), sort_keys=True).encode()).hexdigest()


def store_key(split: str, paths: list[str], tok, options: dict) -> str:
  ident = {
    "version": VERSION,
    "split": split,
    "tokenizer": tokenizer_id(tok),
    "options": options,
    "sources": [_source_id(p) for p in paths],
  }
  return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


_DIGESTS: dict = {}  # (path, size, mtime, ctime) -> content SHA-256, within one process


def file_sha256(path: str) -> str:
  """SHA-256 of a file's bytes, streamed (hashed once per process per file version)."""
  st = os.stat(path)
  memo = (os.path.abspath(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns)  # ctime: any write
  if memo not in _DIGESTS:
    _DIGESTS[memo] = workdir.file_sha256(path)
  return _DIGESTS[memo]


def _source_id(path: str) -> list:
  """A source's identity: its path and its content's SHA-256, so an edit in place that keeps
  the size and modification time still names another store (issue 37)."""
  if path.startswith(sources.TFDS_PREFIX):
    return sources.tfds_id(path)
  return [os.path.abspath(path), file_sha256(path)]


# -- reading -------------------------------------------------------------------------------


@dataclasses.dataclass
class TokenStore:
  path: str
  manifest: dict

  def __post_init__(self):
    dt = np.dtype(self.manifest["dtype"])
    self.shards = [
      np.memmap(os.path.join(self.path, s["file"]), dt, mode="r", shape=(s["num_tokens"],))
      for s in self.manifest["shards"]
      if s["num_tokens"]
    ]

  @property
  def num_tokens(self) -> int:
    return int(self.manifest["num_tokens"])

  @property
  def fingerprint(self) -> str:
    return self.manifest["fingerprint"]

  def windows(self, seq_len: int) -> "StoreWindows":
    return StoreWindows(self.shards, seq_len)

  def __len__(self) -> int:
    return self.num_tokens


class StoreWindows:
  """Non-overlapping windows of L tokens inside each shard (a shard's tail is dropped), indexed
  like an int32[N, L] array by integer arrays or slices, read from the memory maps."""

  def __init__(self, shards, seq_len: int):
    self.shards, self.seq_len = shards, seq_len
    counts = np.array([len(s) // seq_len for s in shards], np.int64)
    self.starts = np.concatenate([[0], np.cumsum(counts)])
    self.shape = (int(self.starts[-1]), seq_len)

  def __len__(self) -> int:
    return self.shape[0]

  def __getitem__(self, key) -> np.ndarray:
    if isinstance(key, slice):
      key = np.arange(len(self))[key]
    idx = np.asarray(key, np.int64).reshape(-1)
    if len(idx) and (idx.min() < 0 or idx.max() >= len(self)):
      raise IndexError(f"window index out of range [0, {len(self)})")
    L = self.seq_len
    out = np.empty((len(idx), L), np.int32)
    shard = np.searchsorted(self.starts, idx, side="right") - 1
    for s in np.unique(shard):
      sel = np.nonzero(shard == s)[0]
      offs = (idx[sel] - self.starts[s]) * L
      out[sel] = self.shards[s][offs[:, None] + np.arange(L)]
    return out


def _check(path: str) -> tuple[dict | None, str | None]:
  """(manifest, None) for a complete store, else (None, what is wrong)."""
  try:
    with open(os.path.join(path, "manifest.json"), encoding="utf-8") as f:
      m = json.load(f)
  except (OSError, ValueError) as e:
    return None, f"its manifest cannot be read ({type(e).__name__})"
  item = np.dtype(m.get("dtype", "uint16")).itemsize
  for s in m.get("shards", []):
    f = os.path.join(path, s["file"])
    size = os.path.getsize(f) if os.path.isfile(f) else -1
    if size != s["num_tokens"] * item:
      return (
        None,
        f"shard {s['file']} holds {size} bytes, its manifest says {s['num_tokens'] * item}",
      )
    if s.get("sha256") and workdir.file_sha256(f) != s["sha256"]:  # the file is the ids' bytes
      return None, f"shard {s['file']} does not match its manifest's SHA-256"
  return m, None


def open_store(path: str) -> TokenStore | None:
  """The store at `path`, or None where there is none; a damaged one is removed (it is derived
  data) with a warning, and None returned so that it is built again."""
  if not os.path.isdir(path):
    return None
  manifest, why = _check(path)
  if manifest is None:
    log.warning("token store %s is damaged (%s): building it again", path, why)
    shutil.rmtree(path, ignore_errors=True)
    return None
  return TokenStore(path, manifest)


# -- building ------------------------------------------------------------------------------

_WORKER_TOK = None


def _init_worker(tok_json, parallel: bool = False):
  """The tokenizer, in a worker process (or this one). Several workers each keep to one thread:
  the `tokenizers` library otherwise starts a thread per core in every one of them."""
  global _WORKER_TOK
  if not parallel:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
  from aoarm.data import tokenizers

  _WORKER_TOK = tokenizers.from_json(tok_json)


def _encode(batch):
  """Token ids of a batch of (text, ends_document) pieces, end-of-document ids appended."""
  tok = _WORKER_TOK
  ids = tok.encode_docs([t for t, _ in batch])
  eod = getattr(tok, "eod_id", None)
  out = []
  for (_, end), row in zip(batch, ids):
    out.extend(row)
    if end and eod is not None:
      out.append(eod)
  return np.asarray(out, np.int64), sum(len(t.encode("utf-8")) for t, _ in batch)


def _in_order(pool, batches, depth: int):
  """(tag, `_encode` of the batch) for each (tag, batch) in the pool, results in order, at most
  `depth` batches in flight:
  the reader never runs ahead of the workers by more than that (`Pool.imap` queues the whole
  corpus when workers are slower than reading), and a worker that dies raises
  BrokenProcessPool rather than leaving the build waiting for ever."""
  pending = collections.deque()
  for tag, batch in batches:
    pending.append((tag, pool.submit(_encode, batch)))
    if len(pending) >= depth:
      tag, fut = pending.popleft()
      yield tag, fut.result()
  while pending:
    tag, fut = pending.popleft()
    yield tag, fut.result()


def _batches(pieces):
  batch, size = [], 0
  for text, end in pieces:
    batch.append((text, end))
    size += len(text)
    if size >= BATCH_BYTES:
      yield batch
      batch, size = [], 0
  if batch:
    yield batch


def _source_batches(paths, options):
  """(index of the source, batch) over every source in turn: a batch never mixes two sources,
  so that the manifest can count each one's bytes and tokens."""
  for i, path in enumerate(paths):
    pieces = sources.documents([path], options["doc_per_line"], options["text_key"])
    if options.get("text8"):
      pieces = ((sources.normalize_text8(t), end) for t, end in pieces)
    for batch in _batches(pieces):
      yield i, batch


def _log_sources(split: str, per_source: list[dict], shown: int = 20):
  """One line per source (the first `shown`), then the split's totals."""
  for s in per_source[:shown]:
    log.info(
      "%s split: %s: %s bytes, %s tokens", split, s["path"], f"{s['bytes']:,}", f"{s['tokens']:,}"
    )
  if len(per_source) > shown:
    log.info("%s split: ... and %d more sources", split, len(per_source) - shown)
  nb, nt = sum(s["bytes"] for s in per_source), sum(s["tokens"] for s in per_source)
  log.info("%s split: %d files, %s bytes, %s tokens", split, len(per_source), f"{nb:,}", f"{nt:,}")


class _ShardWriter:
  def __init__(self, folder: str, dtype, shard_tokens: int):
    self.folder, self.dtype, self.shard_tokens = folder, np.dtype(dtype), shard_tokens
    self.buf, self.buffered, self.shards = [], 0, []

  def add(self, ids: np.ndarray):
    self.buf.append(ids.astype(self.dtype))
    self.buffered += len(ids)
    while self.buffered >= self.shard_tokens:
      flat = np.concatenate(self.buf)
      self._write(flat[: self.shard_tokens])
      rest = flat[self.shard_tokens :]
      self.buf, self.buffered = [rest], len(rest)

  def close(self):
    if self.buffered:
      self._write(np.concatenate(self.buf))
    self.buf, self.buffered = [], 0

  def _write(self, ids: np.ndarray):
    name = f"shard_{len(self.shards):05d}.bin"
    tmp = os.path.join(self.folder, name + ".tmp")
    with open(tmp, "wb") as f:
      f.write(ids.tobytes())
    os.replace(tmp, os.path.join(self.folder, name))
    digest = hashlib.sha256(ids.tobytes()).hexdigest()
    self.shards.append({"file": name, "num_tokens": int(len(ids)), "sha256": digest})


def _live_build(name: str) -> bool:
  """`<store>.partial-PID` of a process still running here: another build of the same store at
  once (issue 37: removing its folder ended it with FileNotFoundError)."""
  pid = name.rpartition("-")[2]
  return pid.isdigit() and int(pid) != os.getpid() and workdir.pid_alive(int(pid))


def build_store(path, paths, tok, options, split, shard_tokens, num_workers) -> TokenStore:
  """Tokenise `paths` into a new store at `path` (see the module docstring)."""
  from tqdm import tqdm

  parent = os.path.dirname(path)
  os.makedirs(parent, exist_ok=True)
  for old in os.listdir(parent):  # an interrupted build's leftovers (never a live build's)
    if old.startswith(os.path.basename(path) + ".partial") and not _live_build(old):
      shutil.rmtree(os.path.join(parent, old), ignore_errors=True)
  partial = f"{path}.partial-{os.getpid()}"
  os.makedirs(partial)
  dtype = "uint16" if tok.vocab_size <= 65536 else "uint32"
  writer = _ShardWriter(partial, dtype, shard_tokens)
  # compressed sizes, TFDS splits: no total to count against
  no_total = any(p.endswith(".gz") or p.startswith(sources.TFDS_PREFIX) for p in paths)
  total_bytes = None if no_total else sum(os.path.getsize(p) for p in paths)
  per_source = [{"path": p, "bytes": 0, "tokens": 0} for p in paths]
  n_bytes = n_tokens = 0
  t0 = time.perf_counter()
  bar = tqdm(total=total_bytes, unit="B", unit_scale=True, desc=f"tokenising {split}")
  workers = max(1, num_workers or os.cpu_count() or 1)
  pool = None
  try:
    if workers > 1:
      ctx = multiprocessing.get_context("spawn")
      pool = ProcessPoolExecutor(workers, ctx, _init_worker, (tok.to_json(), False))
      results = _in_order(pool, _source_batches(paths, options), 2 * workers)
    else:
      _init_worker(tok.to_json(), True)
      results = ((i, _encode(b)) for i, b in _source_batches(paths, options))
    for i, (ids, nb) in results:
      interrupts.check_stop(f"tokenising the {split} split")
      writer.add(ids)
      n_bytes += nb
      n_tokens += len(ids)
      per_source[i]["bytes"] += nb
      per_source[i]["tokens"] += len(ids)
      bar.update(nb)
      dt = max(time.perf_counter() - t0, 1e-9)
      bar.set_postfix(tok_s=f"{n_tokens / dt:,.0f}", refresh=False)
    writer.close()
    if total_bytes:  # JSONL's keys and quotes are bytes read, not text: end the bar at 100%
      bar.update(max(0, total_bytes - bar.n))
  except Interrupted:
    shutil.rmtree(partial, ignore_errors=True)
    raise
  except BrokenProcessPool:
    shutil.rmtree(partial, ignore_errors=True)
    raise UserError(
      f"a tokenising worker of the {split} store died (killed, or out of memory?); "
      "nothing was kept: run again, with fewer data.num_workers if memory is short"
    ) from None
  finally:
    bar.close()
    if pool is not None:
      pool.shutdown(wait=False, cancel_futures=True)
  if n_tokens == 0:
    shutil.rmtree(partial, ignore_errors=True)
    raise UserError(f"the {split} split has no text ({len(paths)} files)")
  manifest = {
    "version": VERSION,
    "split": split,
    "dtype": dtype,
    "tokenizer": tokenizer_id(tok),
    "vocab_size": tok.vocab_size,
    "options": options,
    "sources": [_source_id(p) for p in paths],
    "per_source": per_source,  # UTF-8 bytes of text and tokens (end-of-document ids included)
    "num_bytes": n_bytes,
    "num_tokens": n_tokens,
    "shards": writer.shards,
    "fingerprint": hashlib.sha256("".join(s["sha256"] for s in writer.shards).encode()).hexdigest(),
    "seconds": round(time.perf_counter() - t0, 2),
  }
  workdir.write_atomic(os.path.join(partial, "manifest.json"), json.dumps(manifest, indent=1))
  _log_sources(split, per_source)
  try:
    os.rename(partial, path)
  except OSError:  # another process finished the same store first: use theirs
    shutil.rmtree(partial, ignore_errors=True)
  store = open_store(path)
  if store is None:
    raise UserError(f"token store {path} could not be opened after it was built")
  return store
