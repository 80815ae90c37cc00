"""Orbax checkpoints: async saves, keep-N, restore onto any mesh, and a restore that tells a
damaged checkpoint from one that belongs to another configuration.

Each checkpoint step holds two items: `state` (the TrainState PyTree) and `meta` (JSON: step,
data position, model shape, vocabulary, the run's config and data fingerprint) so a restore can
be checked before anything compiles. Orbax writes each step to a temporary directory and renames
it when complete, so a half-written checkpoint is never listed.

A restore first compares the checkpoint's saved tree (its Orbax metadata) with the tree this
config builds: a difference (another optimizer chain, say) is a `CheckpointMismatch` naming the
paths, never "corrupt", and older checkpoints are not tried. Only a checkpoint whose files cannot
be read counts as damaged; the caller decides what to do with damaged steps (training moves them
aside, see `workdir.move_aside`; nothing here deletes one).
"""

import json
import logging
import os

import jax
import orbax.checkpoint as ocp
from etils import epath

from aoarm.infra.errors import UserError

log = logging.getLogger("aoarm")
ITEMS = ("state", "meta")
SEAL = "sha256.json"  # in each finished step folder: the SHA-256 of every file Orbax wrote


def _file_digests(step_dir: str) -> dict:
  """{relative path: SHA-256} of every file of a step folder but the seal."""
  from aoarm.infra import workdir as workdir_lib

  out = {}
  for root, _, files in os.walk(step_dir):
    for f in files:
      p = os.path.join(root, f)
      rel = os.path.relpath(p, step_dir)
      if rel != SEAL:
        out[rel] = workdir_lib.file_sha256(p)
  return out


def seal(step_dir: str):
  """Write the step's seal (atomically): what a later restore checks the files against."""
  from aoarm.infra import workdir as workdir_lib

  body = json.dumps({"files": _file_digests(step_dir)}, indent=0, sort_keys=True)
  workdir_lib.write_atomic(os.path.join(step_dir, SEAL), body)


def check_seal(step_dir: str):
  """Raise DamagedCheckpoint where a file of the step differs from its seal (flipped bytes, a
  zeroed or truncated file); a step without a seal (older aoarm) passes."""
  path = os.path.join(step_dir, SEAL)
  if not os.path.isfile(path):
    return
  with open(path, encoding="utf-8") as f:
    want = json.load(f)["files"]
  have = _file_digests(step_dir)
  # a file that is gone is Orbax's to report (a lost state/_METADATA is restored leaf by leaf)
  bad = sorted(k for k in want if k in have and have[k] != want[k])
  if bad:
    more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
    raise DamagedCheckpoint(
      f"{len(bad)} file(s) differ from their SHA-256 at save: {', '.join(bad[:3])}{more}"
    )


class DamagedCheckpoint(RuntimeError):
  """A step's files are not the ones that were saved (its seal does not match)."""


class CheckpointMismatch(UserError):
  """The checkpoint is readable but was written by a different configuration."""


class CheckpointSaveError(RuntimeError):
  """Saving a checkpoint failed: the run must stop (main exits non-zero at once)."""


class NoRestorableCheckpoint(UserError):
  """Checkpoints exist but none can be read: never start over silently."""


def incomplete_steps(directory: str) -> list[str]:
  """Step folders Orbax would list that cannot be checkpoints (empty, or missing an item)."""
  if not os.path.isdir(directory):
    return []
  out = []
  for name in sorted(os.listdir(directory)):
    path = os.path.join(directory, name)
    if not name.isdigit():
      continue
    if not os.path.isdir(path) or not all(os.path.isdir(os.path.join(path, i)) for i in ITEMS):
      out.append(path)
  return out


def _norm_path(path) -> tuple:
  """A key path as plain strings: Orbax metadata uses dicts and lists where the state has
  dataclasses, tuples and namedtuples."""
  out = []
  for k in path:
    for attr in ("key", "name", "idx"):
      if hasattr(k, attr):
        out.append(str(getattr(k, attr)))
        break
    else:
      out.append(str(k))
  return tuple(out)


def leaves_by_path(tree) -> dict:
  """{('params', 'backbone', ...): (shape, dtype)} over the leaves of a state or metadata tree."""
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {_norm_path(p): (tuple(v.shape), str(v.dtype)) for p, v in flat}


def tree_difference(saved: dict, wanted: dict, partial: bool) -> list[str]:
  """Lines naming how the checkpoint's leaves differ from the ones this config needs."""

  def name(p):
    return "/".join(p)

  lines = [f"missing in the checkpoint: {name(p)}" for p in sorted(set(wanted) - set(saved))]
  if not partial:
    lines += [f"in the checkpoint only: {name(p)}" for p in sorted(set(saved) - set(wanted))]
  for p in sorted(set(saved) & set(wanted)):
    if saved[p] != wanted[p]:
      lines.append(f"{name(p)}: checkpoint {saved[p]} vs config {wanted[p]}")
  return lines


def _drop_read_only_notice(record) -> bool:
  """Orbax warns "Given directory is read only" for every manager opened read-only, which is
  what eval, sample and the tools ask for on purpose (six lines per eval): drop only that."""
  return "Given directory is read only" not in record.getMessage()


class Checkpointer:
  def __init__(
    self,
    directory: str,
    keep: int = 3,
    async_save: bool = True,
    read_only: bool = False,
    best_metric: str | None = None,
  ):
    """`best_metric`: keep the `keep` steps of the lowest value of that metric (Orbax's
    best-checkpoint support: `save(..., metrics={best_metric: value})`), not the newest."""
    self.directory = os.path.abspath(directory)
    if read_only:
      for name in ("absl", ""):  # absl's logger, or the root one where absl is not set up
        logger = logging.getLogger(name)
        if _drop_read_only_notice not in logger.filters:
          logger.addFilter(_drop_read_only_notice)
    options = ocp.CheckpointManagerOptions(
      max_to_keep=None if read_only else keep,
      create=not read_only,
      enable_async_checkpointing=async_save,
      read_only=read_only,
      save_interval_steps=0 if read_only else 1,
      best_fn=(lambda m: float(m[best_metric])) if best_metric else None,
      best_mode="min",
      keep_checkpoints_without_metrics=False,
    )
    self.mngr = ocp.CheckpointManager(self.directory, options=options, item_names=ITEMS)
    self.failed = None  # the first save error: later waits do not wait on a broken manager
    self.read_only = read_only

  def steps(self) -> list[int]:
    return sorted(self.mngr.all_steps())

  def save(self, step: int, state, meta: dict, force: bool = True, metrics=None) -> bool:
    try:
      saved = self.mngr.save(
        step,
        args=ocp.args.Composite(state=ocp.args.PyTreeSave(state), meta=ocp.args.JsonSave(meta)),
        force=force,
        metrics=metrics,
      )
    except Exception as e:  # noqa: BLE001 - any failure to save ends the run
      self._fail(f"saving checkpoint step {step} in {self.directory}", e)
    self._seal_finished(below=step)  # Orbax finished every earlier save before this one
    return saved

  def _seal_finished(self, below: int | None = None):
    """Seal the finished steps that have no seal yet (process 0; the files are shared)."""
    if jax.process_index() != 0:
      return
    for s in self.steps():
      d = os.path.join(self.directory, str(s))
      if (below is None or s < below) and not os.path.exists(os.path.join(d, SEAL)):
        try:
          seal(d)
        except OSError as e:
          log.warning("checkpoint step %d not sealed (%s): its files cannot be checked", s, e)

  def _fail(self, what: str, e: Exception):
    self.failed = f"{what} failed: {_reason(e)}"
    raise CheckpointSaveError(self.failed) from e

  def wait(self):
    if self.failed:
      return
    try:
      self.mngr.wait_until_finished()
    except Exception as e:  # noqa: BLE001 - an async save's error surfaces here
      self._fail(f"finishing a checkpoint save in {self.directory}", e)
    if not self.read_only:  # a reader writes nothing
      self._seal_finished()

  def close(self):
    self.wait()
    if not self.failed:
      self.mngr.close()

  def read_meta(self, step: int) -> dict:
    return self.mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

  def saved_leaves(self, step: int) -> dict | None:
    """The checkpoint's state leaves by path, from Orbax's tree metadata (None if it has none)."""
    path = epath.Path(self.directory) / str(step) / "state"
    if not (path / "_METADATA").exists():
      return None
    return leaves_by_path(ocp.PyTreeCheckpointHandler().metadata(path).tree)

  def restore(self, step: int, abstract, partial: bool = False):
    """(state, meta) of one step. Raises CheckpointMismatch if its tree differs from
    `abstract`; any other exception means the step cannot be read (DamagedCheckpoint: its files
    differ from their seal)."""
    check_seal(os.path.join(self.directory, str(step)))
    saved = self.saved_leaves(step)
    if saved is not None:
      diff = tree_difference(saved, leaves_by_path(abstract), partial)
      if diff:
        more = f" (and {len(diff) - 4} more)" if len(diff) > 4 else ""
        raise CheckpointMismatch(
          f"checkpoint step {step} in {self.directory} holds a different state tree from the "
          f"one this config builds: {'; '.join(diff[:4])}{more}. A changed setting (e.g. "
          "opt.clip_norm switched on or off changes the optimizer state) cannot resume this "
          "run: use the checkpoint's settings, or another --workdir"
        )
    else:  # no tree metadata (e.g. state/_METADATA lost): read each leaf by its saved name
      log.warning("checkpoint step %d has no tree metadata; restoring leaf by leaf", step)
      return self._restore_by_names(step, abstract)
    return self._restore(step, abstract, partial)

  def _restore(self, step: int, abstract, partial: bool):
    restore_args = ocp.checkpoint_utils.construct_restore_args(abstract)
    args = ocp.args.PyTreeRestore(item=abstract, restore_args=restore_args, partial_restore=partial)
    out = self.mngr.restore(step, args=ocp.args.Composite(state=args, meta=ocp.args.JsonRestore()))
    return out["state"], out["meta"]

  def _restore_by_names(self, step: int, abstract):
    """Without tree metadata Orbax cannot rebuild dataclasses or namedtuples; restore a tree of
    plain dicts keyed as the leaves were saved, then put the leaves back into `abstract`'s tree."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(abstract)
    nested = {}
    for path, leaf in flat:
      node = nested
      *parents, last = _norm_path(path)
      for k in parents:
        node = node.setdefault(k, {})
      node[last] = leaf
    state, meta = self._restore(step, nested, partial=True)
    leaves = []
    for path, _ in flat:
      node = state
      for k in _norm_path(path):
        node = node[k]
      leaves.append(node)
    return jax.tree_util.tree_unflatten(treedef, leaves), meta

  def _rotated_away(self, step: int) -> bool:
    """The step's folder is gone: a trainer's keep-N rotation removed it while this process
    read (an eval beside a running trainer), which is no damage."""
    gone = not os.path.isdir(os.path.join(self.directory, str(step)))
    if gone:
      log.info("checkpoint step %d was removed while being read (rotation); skipping it", step)
    return gone

  def restore_latest(self, abstract, partial: bool = False, check_meta=None):
    """(state, meta, step, damaged) from the newest readable checkpoint, or None if there is
    no checkpoint at all. `damaged`: [(step, reason)] of newer steps that could not be read.

    `abstract`: a tree of jax.ShapeDtypeStruct with shardings (the target mesh); with
    partial=True it may hold a subset of the saved tree (e.g. {'params': ...}). `check_meta`
    is called with each candidate's meta first and raises on a mismatch (never skipped).
    Raises CheckpointMismatch (another config) or NoRestorableCheckpoint (steps exist, none
    readable): a run with checkpoints never silently starts over.
    """
    damaged = []
    for step in reversed(self.steps()):
      try:
        meta = self.read_meta(step)
      except Exception as e:  # noqa: BLE001 - an unreadable meta: the step is damaged
        if self._rotated_away(step):
          continue
        damaged.append((step, _reason(e)))
        log.warning("checkpoint step %d unreadable (%s); trying the previous one", step, _reason(e))
        continue
      if check_meta is not None:
        check_meta(meta)
      try:
        state, meta = self.restore(step, abstract, partial)
      except CheckpointMismatch:
        raise
      except Exception as e:  # noqa: BLE001 - unreadable arrays: the step is damaged
        if self._rotated_away(step):
          continue
        damaged.append((step, _reason(e)))
        log.warning("checkpoint step %d is damaged (%s); trying the previous one", step, _reason(e))
        continue
      return state, meta, step, damaged
    if damaged:
      listing = "; ".join(f"step {s}: {r}" for s, r in damaged)
      raise NoRestorableCheckpoint(
        f"no checkpoint in {self.directory} can be read ({listing}). Nothing was changed or "
        "deleted; move the folder aside to start this run over"
      )
    return None


def _reason(e: Exception) -> str:
  return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"


def abstract_with_shardings(tree, shardings):
  return jax.tree.map(
    lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), tree, shardings
  )
