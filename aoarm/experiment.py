"""One run's setup and entry points: every check first, then the workdir is written.

`prepare` loads and checks data, model config, mesh, batch sizes and any existing checkpoint's
vocabulary and model shape, all before compiling or writing anything; `train` and `evaluate` run
on top of it. Workdir layout: config.json, vocab.json, ckpt/<step>/, metrics.jsonl, tb/,
eval/step_<N>.json, cache/.
"""

import dataclasses
import json
import logging
import os

import jax

from aoarm import data as data_lib
from aoarm import evaluate as eval_lib
from aoarm import sharding
from aoarm.checkpointing import Checkpointer
from aoarm.data import pipeline, tokenizers
from aoarm.errors import UserError
from aoarm.models import ModelConfig
from aoarm.train import Trainer, check_batch, profile_window, run_loop

log = logging.getLogger("aoarm")


@dataclasses.dataclass
class Run:
  cfg: object
  workdir: str
  data: data_lib.Data
  mcfg: ModelConfig
  mesh: jax.sharding.Mesh
  ckpt_dir: str

  def meta(self, step: int) -> dict:
    return {
      "step": step,
      "data_position": step,
      "model": dataclasses.asdict(self.mcfg),
      "vocab": self.data.tokenizer.to_json(),
      "seed": self.cfg.seed,
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
  keys = [k for k in SHAPE_KEYS if k != "seq_len" or now["variant"] == "sigma_gpt"]
  diff = {k: (saved[k], now[k]) for k in keys if k in saved and saved[k] != now[k]}
  if diff:
    desc = ", ".join(f"{k}: checkpoint {a!r} vs config {b!r}" for k, (a, b) in diff.items())
    raise UserError(f"checkpoint in {run.ckpt_dir} has a different model shape: {desc}")


def _vocab_desc(v):
  if not v:
    return "none"
  return f"{v.get('kind')} with {len(v['chars'])} symbols" if v.get("kind") == "char" else str(v)


def _model_config(cfg, vocab_size: int) -> ModelConfig:
  try:
    return ModelConfig.from_config(dict(cfg.model, vocab_size=vocab_size), cfg.data.seq_len)
  except ValueError as e:
    raise UserError(str(e)) from None


def prepare(cfg, workdir: str, mode: str) -> Run:
  if not workdir:
    raise UserError("--workdir is required")
  workdir = os.path.abspath(workdir)
  _model_config(cfg, vocab_size=1)  # the model section is checked before any data is read
  ckpt_dir = os.path.join(workdir, "ckpt")
  vocab_path = os.path.join(workdir, "vocab.json")
  saved_tok = None
  if os.path.exists(vocab_path):
    saved_tok = tokenizers.load(vocab_path)
  elif mode != "train":
    raise UserError(f"no run in {workdir} (no vocab.json): train first")
  cache = cfg.data.cache_dir or os.path.join(workdir, "cache")
  data = data_lib.load(cfg.data, cache, tokenizer=saved_tok if mode != "train" else None)
  if saved_tok is not None and saved_tok.to_json() != data.tokenizer.to_json():
    raise UserError(
      f"the run in {workdir} has a different vocabulary "
      f"({_vocab_desc(saved_tok.to_json())}) from this data "
      f"({_vocab_desc(data.tokenizer.to_json())})"
    )
  mcfg = _model_config(cfg, data.vocab_size)
  pipeline.windows(data.splits["train"], mcfg.seq_len, "training data")
  split = cfg.eval.split
  if split not in data.splits:
    raise UserError(f"eval.split={split!r} not available; splits: {sorted(data.splits)}")
  pipeline.windows(data.splits[split], mcfg.seq_len, f"{split} split")
  mesh = sharding.make_mesh(cfg.mesh)
  check_batch(cfg, mesh)
  dp = sharding.data_parallel_size(mesh)
  if cfg.eval.batch_size % dp:
    raise UserError(
      f"eval.batch_size={cfg.eval.batch_size} is not divisible by the {dp} data-parallel devices"
    )
  if cfg.eval.num_orders < 1:
    raise UserError(f"eval.num_orders must be >= 1, got {cfg.eval.num_orders}")
  profile_window(cfg.train.profile)  # a malformed profile window fails before anything runs
  if cfg.ckpt.every_steps < 1 or cfg.train.num_steps < 1 or cfg.train.log_every < 1:
    raise UserError("ckpt.every_steps, train.num_steps and train.log_every must be >= 1")
  run = Run(cfg, workdir, data, mcfg, mesh, ckpt_dir)
  if os.path.isdir(ckpt_dir):
    ck = Checkpointer(ckpt_dir, read_only=True)
    for step in reversed(ck.steps()):
      try:
        meta = ck.read_meta(step)
      except Exception:  # noqa: BLE001 - unreadable: restore_latest warns and skips it
        continue
      check_meta(run, meta)
      break
  return run


def _write_run_files(run: Run):
  if jax.process_index() != 0:
    return
  os.makedirs(run.workdir, exist_ok=True)
  with open(os.path.join(run.workdir, "config.json"), "w") as f:
    f.write(run.cfg.to_json_best_effort(indent=2, sort_keys=True))
  tokenizers.save(run.data.tokenizer, os.path.join(run.workdir, "vocab.json"))
  run.data.commit_cache()


def train(cfg, workdir: str) -> int:
  from aoarm.metrics import MetricWriter

  run = prepare(cfg, workdir, "train")
  _write_run_files(run)
  trainer = Trainer(cfg, run.mcfg, run.mesh)
  ckpt = Checkpointer(run.ckpt_dir, keep=cfg.ckpt.keep, async_save=cfg.ckpt.async_save)
  restored = ckpt.restore_latest(trainer.abstract_state, check_meta=lambda m: check_meta(run, m))
  if restored is None:
    state, start = trainer.init_state(jax.random.key(cfg.seed)), 0
  else:
    state, meta, _ = restored
    start = int(meta["data_position"])
    log.info("resuming from step %d", start)
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
    r = eval_lib.evaluate(
      trainer.model,
      run.mcfg,
      run.mesh,
      trainer.rules,
      params,
      valid,
      quick,
      eval_lib.orders_to_report(run.mcfg, cfg.eval)[0],
      cfg.eval.split,
      run.data.true_nll,
    )
    return {
      f"eval/{cfg.eval.split}_nll": r["nll_per_token"],
      f"eval/{cfg.eval.split}_bits": r["bits_per_token"],
    }

  writer = MetricWriter(run.workdir)
  try:
    code = run_loop(
      trainer, state, batches, ckpt, writer, start, run.meta, in_training_eval, run.workdir
    )
  finally:
    writer.close()
    ckpt.close()
  return code


def restore_params(cfg, workdir: str, mode: str):
  """(run, trainer, params, step): the newest readable checkpoint's parameters, restored onto
  this process's mesh (params only), after every check of `prepare`."""
  run = prepare(cfg, workdir, mode)
  trainer = Trainer(cfg, run.mcfg, run.mesh)
  if not os.path.isdir(run.ckpt_dir):
    raise UserError(f"no checkpoint in {run.ckpt_dir}")
  ckpt = Checkpointer(run.ckpt_dir, read_only=True)
  abstract = {"params": trainer.abstract_state.params}  # already carries the mesh's shardings
  restored = ckpt.restore_latest(abstract, partial=True, check_meta=lambda m: check_meta(run, m))
  ckpt.close()
  if restored is None:
    raise UserError(f"no readable checkpoint in {run.ckpt_dir}")
  tree, _, step = restored
  return run, trainer, tree["params"], step


def evaluate(cfg, workdir: str) -> dict:
  run, trainer, params, step = restore_params(cfg, workdir, "eval")
  split = cfg.eval.split
  results = {}
  for order in eval_lib.orders_to_report(run.mcfg, cfg.eval):
    results[order] = eval_lib.evaluate(
      trainer.model,
      run.mcfg,
      run.mesh,
      trainer.rules,
      params,
      run.data.splits[split],
      cfg.eval,
      order,
      split,
      run.data.true_nll,
    )
  primary = eval_lib.orders_to_report(run.mcfg, cfg.eval)[0]
  out = dict(results[primary], step=step, by_order=results)
  if jax.process_index() == 0:
    os.makedirs(os.path.join(run.workdir, "eval"), exist_ok=True)
    path = os.path.join(run.workdir, "eval", f"step_{step}.json")
    with open(path + ".tmp", "w") as f:
      json.dump(out, f, indent=2, sort_keys=True)
    os.replace(path + ".tmp", path)
    print(json.dumps(out, indent=2, sort_keys=True))
  return out
