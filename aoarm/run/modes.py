"""Two modes of `aoarm.main`: train and evaluate a run's workdir (sampling: `aoarm.sample.front`).

Each starts from `prepare` (every check before anything is compiled or written). Training builds
the optimizer and holds the workdir's lock; eval and sample restore parameters only.
"""

import contextlib
import hashlib
import io
import json
import logging
import os

import jax
import numpy as np

from aoarm.config import key_table, run_config
from aoarm.data import pipeline
from aoarm.infra import interrupts, timing
from aoarm.infra import workdir as workdir_lib
from aoarm.infra.checkpointing import Checkpointer
from aoarm.run import early_stop, setup
from aoarm.run import evaluate as eval_lib
from aoarm.run.train import LoopIO, Trainer, run_loop
from aoarm.run.train_config import TrainConfig

log = logging.getLogger("aoarm")


def _primary(run) -> str:
  return eval_lib.orders_to_report(run.mcfg, run.cfg.eval)[0]


def train(cfg, workdir: str) -> int:
  """Train (or resume) the run in `workdir`; returns the exit code (see train.run_loop)."""
  phases = timing.Phases()  # DIR/timing.json: where this process's time went
  with interrupts.catch() as stop:
    log.info("preparing the run in %s", os.path.abspath(workdir or "."))
    stop.preparing = True
    run = setup.prepare(cfg, workdir, "train")
    stop.preparing = False
    phases.mark("setup")  # the config, the data (read, tokenised or its store), the mesh
    lock = workdir_lib.TrainLock(run.workdir)
    with lock if jax.process_index() == 0 else contextlib.nullcontext():
      trainer = Trainer(TrainConfig.from_config(cfg), run.mcfg, run.mesh)
      state, start = setup.resume_state(run, trainer)
      setup.write_run_files(run)
      phases.mark("init")  # the optimizer, the initial or restored state
      if stop.requested:
        log.warning("stopped before the first step: nothing new to save")
        return stop.exit_code
      done = early_stop.stopped(run.workdir, start, cfg.train.patience)
      if done:
        log.info(
          "stopped early at step %d (train.patience=%d, the lowest loss at step %d): nothing "
          "to train; train.patience=0 (or another value) trains on",
          start,
          done["patience"],
          done["best_step"],
        )
        return 0
      return _train_from(run, trainer, state, start, phases)


def _train_from(run: setup.Run, trainer: Trainer, state, start: int, phases=None) -> int:
  from aoarm.infra.metrics import MetricWriter

  cfg = run.cfg
  run.weights = trainer.cfg.eval_weights  # the run's own evals score its EMA where it has one
  ckpt = Checkpointer(run.ckpt_dir, keep=cfg.ckpt.keep, async_save=cfg.ckpt.async_save)
  batches = pipeline.TrainBatches(
    run.data.splits["train"],
    run.mcfg.seq_len,
    cfg.train.batch_size,
    cfg.seed,
    jax.process_index(),
    jax.process_count(),
  )
  valid = run.data.splits[cfg.eval.split]
  quick = cfg.eval.copy_and_resolve_references()
  quick.max_windows = cfg.train.eval_batches * cfg.eval.batch_size

  def in_training_eval(params):
    split = cfg.eval.split
    r = eval_lib.evaluate(trainer.placed, params, valid, quick, _primary(run), split)
    return {f"eval/{split}_nll": r["nll_per_token"], f"eval/{split}_bits": r["bits_per_token"]}

  def final_eval(params, step):  # the whole eval --mode=eval writes, in this process
    out = write_eval(run, trainer.placed, params, step)
    return {f"eval/{split}_nll": out["nll_per_token"], f"eval/{split}_bits": out["bits_per_token"]}

  split = cfg.eval.split
  writer = MetricWriter(run.workdir, start_step=start)
  best = None
  if cfg.train.eval_every and cfg.ckpt.best:  # apart from the rotation: the lowest eval loss
    best = Checkpointer(run.best_dir, keep=1, async_save=cfg.ckpt.async_save, best_metric="loss")
  try:
    loop_io = LoopIO(batches, ckpt, writer, run.meta, in_training_eval, run.workdir)
    loop_io.timing = phases
    loop_io.best, loop_io.best_key = best, f"eval/{split}_nll"
    if cfg.train.final_eval:
      loop_io.final_fn = final_eval
    if phases is not None:
      phases.mark("loop_setup")  # the checkpointers, the batch stream, the metric writer
    code = run_loop(trainer, state, start, loop_io)
  finally:
    writer.close()
    ckpt.close()
    if best is not None:
      best.close()
  if phases is not None and jax.process_index() == 0:
    phases.mark("close")  # the last checkpoint's write, the metric files
    tokens = (cfg.train.num_steps - start) * cfg.train.batch_size * run.mcfg.seq_len
    extra = {"start_step": start, "num_steps": cfg.train.num_steps, "exit_code": code}
    phases.write(run.workdir, dict(extra, trained_tokens=tokens))
  return code


def evaluate_checkpoint(cfg, workdir: str, explicit: set | None = None) -> dict:
  """Held-out NLL of the newest checkpoint (`write_eval`). Runs on the run's saved config
  (`run_config.for_reading`; `explicit`: the command line's own keys): the command line sets
  only eval/sample/implementation keys."""
  cfg = run_config.for_reading(cfg, workdir, "eval", explicit)
  run, placed, params, step = setup.restore_params(cfg, workdir, "eval")
  return write_eval(run, placed, params, step)


def write_eval(run, placed, params, step: int) -> dict:
  """Held-out NLL of `params` on `eval.split`, for each order the variant reports, written to
  DIR/eval/<eval_name>.json and printed; the NLL of every window of every order goes beside it
  in <eval_name>.npz (`window_index`, `nll_<order>`, `eval_seed`; with K > 1 orders or masking
  rates also `nll_<order>_each`, windows x K), so that two runs scored on the same windows pair
  window by window. The JSON says how many of the split's windows were
  scored (`capped` where `eval.max_windows` cut it) and which data it scored (`data`)."""
  cfg = run.cfg
  split = cfg.eval.split
  tokens = run.data.splits[split]
  results, per_window = {}, {}
  for order in eval_lib.orders_to_report(run.mcfg, cfg.eval):
    results[order], per_window[order], each = eval_lib.evaluate_windows(
      placed, params, tokens, cfg.eval, order, split, run.data.true_nll
    )
    if each is not None:  # K > 1: each order's (mdm: each stratified rate's) NLL per window
      per_window[f"{order}_each"] = each
  num_bytes = run.data.num_bytes.get(split)
  if num_bytes:  # subword: bits per UTF-8 byte, so that tokenizers compare
    bytes_per_token = num_bytes / len(tokens)  # the split's own ratio
    for r in results.values():
      r["bits_per_byte"] = r["bits_per_token"] / bytes_per_token
      r["bytes_per_token"] = bytes_per_token
  total = len(pipeline.windows(tokens, run.mcfg.seq_len, f"{split} split"))
  e = cfg.eval
  scope = {
    "windows_in_split": total,
    "max_windows": e.max_windows,
    "capped": bool(e.max_windows) and e.max_windows < total,  # scored only the first windows
    "data": _data_of(run, split),
  }
  if split == "test" and run.data.splits.get("test") is run.data.splits.get("valid"):
    scope["note"] = f"data.source={cfg.data.source} holds out one tail: test is the valid text"
    log.warning("eval.split=test: %s (so this is the valid split's figure)", scope["note"])
  scope["weights"] = run.weights  # the EMA of the parameters, or the parameters themselves
  scope["checkpoint"] = run.checkpoint  # the newest, or the best in-training eval's
  out = dict(results[_primary(run)], step=step, by_order=results, **scope)
  if jax.process_index() == 0:
    os.makedirs(os.path.join(run.workdir, "eval"), exist_ok=True)
    raw = run.weights == "params" and run.cfg.train.ema_decay > 0  # not the run's default
    best = run.checkpoint == "best"
    name = eval_name(step, e, _data_tag(run, split), raw_params=raw, best=best)
    path = os.path.join(run.workdir, "eval", name)
    n = len(next(iter(per_window.values())))
    buf = io.BytesIO()
    np.savez_compressed(
      buf,
      window_index=np.arange(n, dtype=np.int32),
      eval_seed=np.int64(eval_lib.EVAL_SEED),
      seq_len=np.int64(run.mcfg.seq_len),
      **{f"nll_{order}": nll for order, nll in per_window.items()},
    )
    workdir_lib.write_atomic(path[: -len(".json")] + ".npz", buf.getvalue())
    workdir_lib.write_atomic(path, json.dumps(out, indent=2, sort_keys=True))
    print(json.dumps(out, indent=2, sort_keys=True))
  return out


SPLIT_PATH = {"train": "train_path", "valid": "valid_path", "test": "test_path"}


def _data_of(run, split: str) -> dict:
  """What an eval scored: the split, the file it came from (text_files) and its tokens' SHA-256."""
  d = run.cfg.data
  return {
    "source": d.source,
    "split": split,
    "path": d.get(SPLIT_PATH[split], "") if d.source == "text_files" else "",
    "tokens_sha256": run.data.fingerprints.get(split, ""),
  }


def _data_tag(run, split: str) -> str:
  """'' where the split is the run's own; else 'd' + 8 hex digits of its tokens' SHA-256 (an
  eval of a checkpoint on other held-out text gets its own file, never the run's own one's)."""
  saved = run_config.saved(run.workdir)
  key = f"data.{SPLIT_PATH[split]}"
  if saved is None or saved.get(key, "") == key_table.flat(run.cfg).get(key, ""):
    return ""
  fp = run.data.fingerprints.get(split) or hashlib.sha256(str(saved.get(key)).encode()).hexdigest()
  return "d" + fp[:8]


def eval_name(
  step: int, ecfg, data_tag: str = "", raw_params: bool = False, best: bool = False
) -> str:
  """step_<N>.json for the default evaluation (the run's own valid split, whole, one random
  order and the identity); other settings name their own file, so no eval overwrites another
  kind: the split, K orders, a window cap, no left-to-right, other data (`_data_tag`), the raw
  parameters of a run that keeps an EMA (`eval.ema=false`), the best checkpoint."""
  parts = [ecfg.split] if ecfg.split != "valid" else []
  parts += [f"k{ecfg.num_orders}"] if ecfg.num_orders != 1 else []
  parts += [f"w{ecfg.max_windows}"] if ecfg.max_windows else []
  parts += ["no_l2r"] if not ecfg.l2r else []
  parts += [data_tag] if data_tag else []
  parts += ["params"] if raw_params else []  # a run with an EMA, scored on its raw parameters
  parts += ["best"] if best else []  # DIR/ckpt_best's step (eval.checkpoint=best)
  return f"step_{step}" + "".join(f"-{p}" for p in parts) + ".json"


def evaluate_mode(cfg, workdir: str, explicit: set | None = None) -> int:
  """--mode=eval (`evaluate_checkpoint`): the exit code."""
  evaluate_checkpoint(cfg, workdir, explicit)
  return 0
