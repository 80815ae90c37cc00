"""A run's setup: every check first, then the workdir is written.

`prepare` loads and checks data, model config, mesh, batch sizes and any existing checkpoint's
vocabulary and model shape, all before compiling or writing anything; the modes
(`aoarm.run.modes`: train, eval, sample) run on top of it. `resume_state` finds the state training
starts from and moves damaged checkpoints aside (`workdir`); what a resume may change is
`resume`'s; `restore_params` reads parameters only, for every other mode and tool. Workdir
layout: config.json, vocab.json, train.lock, ckpt/<step>/, ckpt_aside/, metrics.jsonl, tb/,
eval/step_<N>.json, samples/, cache/.
"""

import dataclasses
import hashlib
import logging
import os

import jax

from aoarm import data as data_lib
from aoarm import models
from aoarm.config import config_check, config_lib, resume
from aoarm.data import pipeline, tokenizers
from aoarm.infra import compile_cache, sharding
from aoarm.infra import workdir as workdir_lib
from aoarm.infra.checkpointing import Checkpointer, incomplete_steps
from aoarm.infra.errors import UserError
from aoarm.models import ModelConfig
from aoarm.run.placed_model import PlacedModel
from aoarm.run.train import check_batch

log = logging.getLogger("aoarm")


@dataclasses.dataclass
class Run:
  cfg: object
  workdir: str
  data: data_lib.Data
  mcfg: ModelConfig
  mesh: jax.sharding.Mesh
  ckpt_dir: str
  weights: str = "params"  # what its evals and samples read: "ema" or "params" (restore_params)
  checkpoint: str = "latest"  # which checkpoint they read: the newest, or "best" (DIR/ckpt_best)

  @property
  def best_dir(self) -> str:
    """The checkpoint of the lowest in-training held-out loss (ckpt.best, train.eval_every)."""
    return os.path.join(self.workdir, "ckpt_best")

  def meta(self, step: int) -> dict:
    return {
      "step": step,
      "data_position": step,
      "model": dataclasses.asdict(self.mcfg),
      "traits": dataclasses.asdict(models.traits(self.mcfg.variant)),  # what the variant is
      "vocab": self.data.tokenizer.to_json(),
      "seed": self.cfg.seed,
      "config": self.cfg.to_dict(),  # compared on resume (aoarm.config.resume)
      "data": {"train": self.data.fingerprints.get("train", "")},  # SHA-256 of its token ids
    }


# seq_len is a shape only where learned position tables have one row per position
SHAPE_KEYS = (
  "variant",
  "vocab_size",
  "seq_len",
  "num_layers",
  "d_model",
  "num_heads",
  "mlp_dim",
  "tie_embeddings",
  "param_dtype",
  "bias",  # biases are parameters (model.bias)
  "own_positions",  # aogpt's learned own-position table is one
)


def check_meta(run: Run, meta: dict):
  """A checkpoint must match this run's vocabulary and model shape: else a clear error."""
  if meta.get("vocab") != run.data.tokenizer.to_json():
    raise UserError(
      f"checkpoint in {run.ckpt_dir} has a different vocabulary "
      f"({_vocab_desc(meta.get('vocab'))}) from this run's data "
      f"({_vocab_desc(run.data.tokenizer.to_json())})"
    )
  saved, now = meta.get("model", {}), dataclasses.asdict(run.mcfg)
  tables = models.traits(run.mcfg.variant).position_tables
  keys = [k for k in SHAPE_KEYS if k != "seq_len" or tables]
  diff = {k: (saved[k], now[k]) for k in keys if k in saved and saved[k] != now[k]}
  if diff:
    desc = ", ".join(f"{k}: checkpoint {a!r} vs config {b!r}" for k, (a, b) in diff.items())
    raise UserError(f"checkpoint in {run.ckpt_dir} has a different model shape: {desc}")


def _vocab_desc(v):
  if not v:
    return "none"
  if v.get("kind") == "char":  # symbols in order: two vocabularies of one size still differ
    digest = hashlib.sha256(v["chars"].encode("utf-8")).hexdigest()[:12]
    return f"char with {len(v['chars'])} symbols, SHA-256 {digest}"
  if v.get("sha256"):
    return f"{v['kind']} of {v.get('vocab_size')} entries, SHA-256 {v['sha256'][:12]}"
  return str(v)


def _model_config(cfg, vocab_size: int) -> ModelConfig:
  try:
    return ModelConfig.from_config(dict(cfg.model, vocab_size=vocab_size), cfg.data.seq_len)
  except ValueError as e:
    raise UserError(str(e)) from None


def _latest_meta(ckpt_dir: str):
  """(step, meta) of the newest checkpoint whose meta can be read, or (None, None)."""
  if not os.path.isdir(ckpt_dir):
    return None, None
  ck = Checkpointer(ckpt_dir, read_only=True)
  for step in reversed(ck.steps()):
    try:
      return step, ck.read_meta(step)
    except Exception:  # noqa: BLE001 - unreadable: restore_latest warns and skips it
      continue
  return None, None


def _saved_tokenizer(workdir: str, mode: str, meta_step, meta):
  """The run's saved tokenizer: vocab.json, or where that is missing or damaged, the copy in
  the newest checkpoint's meta (vocab.json is rewritten from it by the next training)."""
  vocab_path = os.path.join(workdir, "vocab.json")
  problem = None
  if os.path.exists(vocab_path):
    try:
      return tokenizers.load(vocab_path)
    except UserError as e:
      problem = str(e)
  if meta and meta.get("vocab"):
    log.warning(
      "%s; using the vocabulary saved with checkpoint step %d",
      problem or f"{vocab_path} is missing",
      meta_step,
    )
    return tokenizers.from_json(meta["vocab"])
  if mode == "train":
    if problem:
      log.warning("%s and there is no checkpoint: fitting it again from the data", problem)
    return None
  raise UserError(problem or f"no run in {workdir} (no vocab.json): train first")


def _check_paths(cfg, workdir: str, mode: str) -> tuple[str, str]:
  """The workdir, cache and output folders are folders this process can write: (ckpt, cache)."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise UserError(f"--workdir {workdir} exists and is not a directory")
  if os.path.islink(workdir) and not os.path.exists(workdir):
    raise UserError(f"--workdir {workdir} is a link to {os.readlink(workdir)}, which is missing")
  cache = os.path.abspath(cfg.data.cache_dir or os.path.join(workdir, "cache"))
  if os.path.exists(cache) and not os.path.isdir(cache):
    raise UserError(f"data.cache_dir {cache} exists and is not a directory")
  ckpt_dir = os.path.join(workdir, "ckpt")
  if os.path.exists(ckpt_dir) and not os.path.isdir(ckpt_dir):
    raise UserError(f"{ckpt_dir} exists and is not a directory (checkpoints go there)")
  if jax.process_index() == 0:
    if mode == "train":  # (the token cache is only an optimisation: see data.cache)
      workdir_lib.check_dir(workdir, "--workdir")
      workdir_lib.check_run_folder(workdir)
    elif mode in ("eval", "sample"):  # other tools ("read") write elsewhere
      out = os.path.join(workdir, "eval" if mode == "eval" else "samples")
      workdir_lib.check_dir(out, f"the {mode} output folder")
  return ckpt_dir, cache


def _check_held_out(d):
  """A held-out file must not be the training file (the held-out NLL would be a training one;
  eval.split=train scores the training text on purpose)."""
  if d.source != "text_files" or not d.train_path:
    return
  train = {os.path.realpath(p.strip()) for p in d.train_path.split(",") if p.strip()}
  for key in ("valid_path", "test_path"):
    held = {os.path.realpath(p.strip()) for p in d[key].split(",") if p.strip()}
    if held & train:
      raise UserError(
        f"data.{key}={d[key]!r} names the training text ({d.train_path!r}): a held-out split "
        "must be other text (to score the training text, use eval.split=train)"
      )


def prepare(cfg, workdir: str, mode: str) -> Run:
  if not workdir:
    raise UserError("--workdir is required")
  workdir = os.path.abspath(workdir)
  config_lib.apply_aliases(cfg)
  config_check.validate(cfg, jax.default_backend())  # the one check of a run's config
  compile_cache.enable(cfg.train.compile_cache)  # before anything is compiled
  compile_cache.threefry_kernel(cfg.train.threefry_kernel)
  _model_config(cfg, vocab_size=1)  # the model section is checked before any data is read
  _check_held_out(cfg.data)
  ckpt_dir, cache = _check_paths(cfg, workdir, mode)
  meta_step, meta = _latest_meta(ckpt_dir)
  saved_tok = _saved_tokenizer(workdir, mode, meta_step, meta)

  def same_vocabulary(tok):
    if saved_tok is not None and saved_tok.to_json() != tok.to_json():
      raise UserError(
        f"the run in {workdir} has a different vocabulary "
        f"({_vocab_desc(saved_tok.to_json())}) from this data "
        f"({_vocab_desc(tok.to_json())})"
      )

  # the mesh and the batch sizes it divides are checked before any data is read or tokenised
  mesh = sharding.make_mesh(cfg.mesh)
  check_batch(cfg, mesh)
  dp = sharding.data_parallel_size(mesh)
  if cfg.eval.batch_size % dp:
    raise UserError(
      f"eval.batch_size={cfg.eval.batch_size} is not divisible by the {dp} data-parallel devices"
    )
  # eval and sample read no training store (nor need the training corpus) once a run exists
  needed = {cfg.eval.split} if mode in ("eval", "sample") and saved_tok is not None else None
  data = data_lib.load(
    cfg.data,
    cache,
    tokenizer=saved_tok if mode != "train" else None,
    splits=needed,
    check_tokenizer=same_vocabulary,
  )
  same_vocabulary(data.tokenizer)
  mcfg = _model_config(cfg, data.vocab_size)
  if "train" in data.splits:
    pipeline.windows(data.splits["train"], mcfg.seq_len, "training data")
  split = cfg.eval.split
  if split not in data.splits:
    raise UserError(f"eval.split={split!r} not available; splits: {sorted(data.splits)}")
  pipeline.windows(data.splits[split], mcfg.seq_len, f"{split} split")
  run = Run(cfg, workdir, data, mcfg, mesh, ckpt_dir)
  if meta is not None:
    check_meta(run, meta)
    if mode == "train":
      resume.check(meta, cfg, data.fingerprints.get("train", ""), ckpt_dir)
  return run


def write_run_files(run: Run):
  if jax.process_index() != 0:
    return
  os.makedirs(run.workdir, exist_ok=True)
  workdir_lib.write_atomic(
    os.path.join(run.workdir, "config.json"), run.cfg.to_json_best_effort(indent=2, sort_keys=True)
  )
  tokenizers.save(run.data.tokenizer, os.path.join(run.workdir, "vocab.json"))
  run.data.commit_cache()


def resume_state(run: Run, trainer):
  """(state, step): the newest readable checkpoint's state, or a fresh one at step 0 where there
  is no checkpoint. Step folders that are not checkpoints (empty, an item missing) and damaged
  steps newer than the restored one are moved to DIR/ckpt_aside/, never deleted; a run whose
  checkpoints are all unreadable stops (NoRestorableCheckpoint), never starts over."""
  lead = jax.process_index() == 0
  for path in incomplete_steps(run.ckpt_dir):
    if lead:
      dest = workdir_lib.move_aside(run.workdir, path, "not a checkpoint (empty or incomplete)")
      log.warning("%s is not a checkpoint (empty or incomplete): moved to %s", path, dest)
  _sync("aoarm-incomplete-aside")
  if not os.path.isdir(run.ckpt_dir):
    return trainer.init_state(jax.random.key(run.cfg.seed)), 0
  reader = Checkpointer(run.ckpt_dir, read_only=True)
  restored = reader.restore_latest(trainer.abstract_state, check_meta=lambda m: check_meta(run, m))
  reader.close()
  if restored is None:
    return trainer.init_state(jax.random.key(run.cfg.seed)), 0
  state, meta, step, damaged = restored
  for bad, reason in damaged:
    if lead:
      src = os.path.join(run.ckpt_dir, str(bad))
      dest = workdir_lib.move_aside(run.workdir, src, f"unreadable: {reason}")
      log.warning("checkpoint step %d could not be read (%s): moved to %s", bad, reason, dest)
  _sync("aoarm-damaged-aside")
  log.info("resuming from step %d", step)
  return state, int(meta["data_position"])


def _sync(name: str):
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices(name)


def weights_to_read(cfg, mode: str) -> str:
  """'ema' where the run keeps an EMA of its parameters (train.ema_decay > 0) and the mode's
  switch (eval.ema for eval, sample.ema for sample; other readers: on) says to use it."""
  if cfg.train.ema_decay <= 0:
    return "params"
  use = {"eval": cfg.eval.ema, "sample": cfg.sample.ema}.get(mode, True)
  return "ema" if use else "params"


def restore_params(cfg, workdir: str, mode: str, checkpoint: str | None = None):
  """(run, placed, params, step): the newest readable checkpoint's weights (or the best one's:
  eval.checkpoint / sample.checkpoint, or `checkpoint` where given, recorded as
  `run.checkpoint`; its EMA where
  `weights_to_read` says so, recorded as `run.weights`), restored onto this process's mesh,
  after every check of `prepare`. Only those weights are read and no optimizer is built
  (`placed_model.PlacedModel`)."""
  run = prepare(cfg, workdir, mode)
  run.weights = weights_to_read(cfg, mode)
  which = {"eval": cfg.eval.checkpoint, "sample": cfg.sample.checkpoint}
  run.checkpoint = checkpoint or which.get(mode, "latest")
  placed = PlacedModel(run.mcfg, run.mesh)
  where = run.best_dir if run.checkpoint == "best" else run.ckpt_dir
  if not os.path.isdir(where):
    if run.checkpoint == "best":
      raise UserError(
        f"no best checkpoint in {where}: a run keeps one where it evaluates during training "
        "(train.eval_every > 0, ckpt.best=true)"
      )
    raise UserError(f"no checkpoint in {run.ckpt_dir}")
  ckpt = Checkpointer(where, read_only=True)
  abstract = {run.weights: placed.abstract_params}  # already carries the mesh's shardings
  restored = ckpt.restore_latest(abstract, partial=True, check_meta=lambda m: check_meta(run, m))
  ckpt.close()
  if restored is None:
    raise UserError(f"no readable checkpoint in {where}")
  tree, _, step, _ = restored
  return run, placed, tree[run.weights], step
