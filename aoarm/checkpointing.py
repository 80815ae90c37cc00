"""Orbax checkpoints: async saves, keep-N, restore onto any mesh, fall back past a bad latest.

Each checkpoint step holds two items: `state` (the TrainState PyTree) and `meta` (JSON: step,
data position, model shape and vocabulary) so a restore can be checked before anything compiles.
Orbax writes each step to a temporary directory and renames it when complete, so a half-written
checkpoint is never listed; one that is listed but unreadable is skipped with a warning.
"""

import logging
import os

import jax
import orbax.checkpoint as ocp

log = logging.getLogger("aoarm")


class Checkpointer:
  def __init__(
    self, directory: str, keep: int = 3, async_save: bool = True, read_only: bool = False
  ):
    self.directory = os.path.abspath(directory)
    options = ocp.CheckpointManagerOptions(
      max_to_keep=keep,
      create=not read_only,
      enable_async_checkpointing=async_save,
      read_only=read_only,
    )
    self.mngr = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))

  def steps(self) -> list[int]:
    return sorted(self.mngr.all_steps())

  def latest_step(self):
    return self.mngr.latest_step()

  def save(self, step: int, state, meta: dict, force: bool = True) -> bool:
    return self.mngr.save(
      step,
      args=ocp.args.Composite(state=ocp.args.PyTreeSave(state), meta=ocp.args.JsonSave(meta)),
      force=force,
    )

  def wait(self):
    self.mngr.wait_until_finished()

  def close(self):
    self.mngr.wait_until_finished()
    self.mngr.close()

  def read_meta(self, step: int) -> dict:
    return self.mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

  def _restore(self, step: int, abstract, partial: bool):
    restore_args = ocp.checkpoint_utils.construct_restore_args(abstract)
    args = ocp.args.PyTreeRestore(item=abstract, restore_args=restore_args, partial_restore=partial)
    out = self.mngr.restore(step, args=ocp.args.Composite(state=args, meta=ocp.args.JsonRestore()))
    return out["state"], out["meta"]

  def restore_latest(self, abstract, partial: bool = False, check_meta=None):
    """(state, meta, step) from the newest readable checkpoint, or None if there is none.

    `abstract`: a tree of jax.ShapeDtypeStruct with shardings (the target mesh); with
    partial=True it may hold a subset of the saved tree (e.g. {'params': ...}). `check_meta`
    is called with each candidate's meta first and raises on a mismatch (never skipped).
    """
    for step in reversed(self.steps()):
      try:
        meta = self.read_meta(step)
      except Exception as e:  # noqa: BLE001 - any unreadable checkpoint: warn, try the previous
        log.warning(
          "checkpoint step %d unreadable (%s: %s); trying the previous one",
          step,
          type(e).__name__,
          e,
        )
        continue
      if check_meta is not None:
        check_meta(meta)
      try:
        state, meta = self._restore(step, abstract, partial)
      except Exception as e:  # noqa: BLE001
        log.warning(
          "checkpoint step %d is corrupt or partial (%s: %s); using the previous one",
          step,
          type(e).__name__,
          str(e)[:200],
        )
        continue
      return state, meta, step
    return None


def abstract_with_shardings(tree, shardings):
  return jax.tree.map(
    lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), tree, shardings
  )
