"""Windows and batches. Deterministic from (seed, step): a resumed run sees exactly the batches it
would have seen; each process reads only its rows of the global batch.

Training: non-overlapping windows of L tokens, shuffled per epoch by grain (`MapDataset.shuffle`
re-permutes each epoch), random access by step. Evaluation: every window of the split in order,
the last batch padded and weighted out.
"""

import grain
import numpy as np

from aoarm.errors import UserError


def windows(tokens: np.ndarray, seq_len: int, what: str = "data") -> np.ndarray:
  n = len(tokens) // seq_len
  if n < 1:
    raise UserError(f"seq_len={seq_len} is larger than the {what} ({len(tokens)} tokens)")
  return tokens[: n * seq_len].reshape(n, seq_len)


class TrainBatches:
  """batch(step) -> int32[local_batch, L], this process's rows of the global batch at `step`."""

  def __init__(
    self,
    tokens: np.ndarray,
    seq_len: int,
    global_batch: int,
    seed: int,
    process_index: int = 0,
    process_count: int = 1,
  ):
    if global_batch % process_count:
      raise UserError(
        f"train.batch_size={global_batch} does not divide over {process_count} processes"
      )
    self.windows = windows(tokens, seq_len, "training data")
    self.local_batch = global_batch // process_count
    ds = grain.MapDataset.source(self.windows).shuffle(seed=seed).repeat()
    self._ds = ds[process_index::process_count].batch(self.local_batch, drop_remainder=True)

  def batch(self, step: int) -> np.ndarray:
    return np.asarray(self._ds[step], np.int32)

  def iterate(self, start_step: int, threads: int = 4, prefetch: int = 8):
    """Batches start_step, start_step+1, ... read ahead by grain's threads (same as batch())."""
    opts = grain.ReadOptions(num_threads=threads, prefetch_buffer_size=prefetch)
    for b in self._ds[start_step:].to_iter_dataset(opts):
      yield np.asarray(b, np.int32)


def eval_batches(tokens: np.ndarray, seq_len: int, batch_size: int, max_windows: int = 0):
  """Yields (x int32[batch, L], weight float32[batch]) over every window; pads the last batch."""
  w = windows(tokens, seq_len, "evaluation split")
  if max_windows:
    w = w[:max_windows]
  for start in range(0, len(w), batch_size):
    chunk = w[start : start + batch_size]
    weight = np.ones(batch_size, np.float32)
    if len(chunk) < batch_size:
      weight[len(chunk) :] = 0
      chunk = np.concatenate([chunk, np.repeat(chunk[:1], batch_size - len(chunk), 0)])
    yield chunk.astype(np.int32), weight


def num_windows(tokens: np.ndarray, seq_len: int, max_windows: int = 0) -> int:
  n = len(tokens) // seq_len
  return min(n, max_windows) if max_windows else n
