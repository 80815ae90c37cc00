"""The one table that classes every config key; every list of keys elsewhere derives from it.

A key's class says what changing it does:
- `experiment`: what is learned (the function, the data, the objective, the budget). A resumed
  run refuses or notes a change (the `resume` column); `aoarm.tools.report` groups runs by these
  keys; an eval or sample takes the run's saved value whatever the command line says.
- `implementation`: how the same function is computed or placed (kernels, remat, the mesh, the
  compile cache, the token store's workers and shards). The logits are the same up to rounding;
  an eval or sample may set it; a resume and the report ignore it.
- `eval`: how a checkpoint is scored or sampled (`eval.*`, `sample.*`, the held-out files). An
  eval or sample may set it; the report keeps an eval's scope apart by the eval's own JSON.
- `logging`: logging, checkpointing and run control (`ckpt.*`, `train.log_every`, ...). Nothing
  about the model or its scores.

This module imports nothing, so any layer of aoarm may read it (`tests/test_imports.py`).
"""

EXPERIMENT, IMPLEMENTATION, EVAL, LOGGING = "experiment", "implementation", "eval", "logging"
CLASSES = (EXPERIMENT, IMPLEMENTATION, EVAL, LOGGING)
# what a resumed run does where an experiment key differs from its checkpoint's
REFUSE = "refuse"  # a different experiment from the one its first steps belong to
NOTE = "note"  # a warning: the learning-rate schedule changes from the checkpoint's step on
SILENT = ""  # data.*: the training tokens' SHA-256 decides instead of the keys

# (key, or a prefix ending in "." for every key under it; the longest match wins), class, resume
TABLE = (
  ("seed", EXPERIMENT, REFUSE),
  ("data.", EXPERIMENT, SILENT),
  ("data.seq_len", EXPERIMENT, REFUSE),
  ("data.valid_path", EVAL, SILENT),  # scoring a checkpoint on other held-out text is a choice
  ("data.test_path", EVAL, SILENT),
  ("data.cache_dir", IMPLEMENTATION, SILENT),
  ("data.num_workers", IMPLEMENTATION, SILENT),
  ("data.shard_tokens", IMPLEMENTATION, SILENT),
  ("model.", EXPERIMENT, REFUSE),
  ("model.kernels.", IMPLEMENTATION, SILENT),
  ("model.remat", IMPLEMENTATION, SILENT),
  ("model.capture_attention", IMPLEMENTATION, SILENT),
  ("order.", EXPERIMENT, REFUSE),
  ("opt.", EXPERIMENT, NOTE),
  ("train.batch_size", EXPERIMENT, REFUSE),
  ("train.num_steps", EXPERIMENT, NOTE),
  ("train.compute_of", EXPERIMENT, SILENT),  # a label: the budget is train.num_steps
  ("train.ema_decay", EXPERIMENT, NOTE),  # on <-> off is refused: the state's structure
  ("train.ema_warmup", EXPERIMENT, NOTE),
  ("train.compile_cache", IMPLEMENTATION, SILENT),
  ("train.init_on", IMPLEMENTATION, SILENT),  # the initial values up to rounding
  ("train.threefry_kernel", IMPLEMENTATION, SILENT),  # the same bits either way
  ("train.log_every", LOGGING, SILENT),
  ("train.eval_every", LOGGING, SILENT),
  ("train.eval_batches", LOGGING, SILENT),
  ("train.final_eval", LOGGING, SILENT),
  ("train.profile", LOGGING, SILENT),
  ("train.stop_after", LOGGING, SILENT),
  ("train.patience", LOGGING, SILENT),
  ("ckpt.", LOGGING, SILENT),
  ("eval.", EVAL, SILENT),
  ("sample.", EVAL, SILENT),
  ("mesh.", IMPLEMENTATION, SILENT),
)

# old name -> new name of keys that were renamed (committed results' commands and checkpoints
# saved before the rename use the old ones); an old name is classed as its new one
LEGACY = {
  "model.attention_impl": "model.kernels.attention",
  "model.embed_impl": "model.kernels.embed",
  "model.norm_impl": "model.kernels.norm",
  "model.mlp_impl": "model.kernels.mlp",
  "model.qkv_impl": "model.kernels.qkv",
  "model.decode_impl": "model.kernels.decode",
}


# keys that mean something only where another key has one of some values (a character-level
# run's tokenizer settings, a text-file run's Markov settings): elsewhere they change nothing the
# run computes, so the report does not split runs by them (a default changed between commits
# must not make two alike runs two experiments)
_SUBWORD = ("sentencepiece", "bpe")
ONLY_WHERE = {
  "data.vocab_size": ("data.tokenizer", _SUBWORD),
  "data.spm_model_type": ("data.tokenizer", ("sentencepiece",)),
  "data.tokenizer_path": ("data.tokenizer", _SUBWORD),
  "data.tokenizer_sample_bytes": ("data.tokenizer", _SUBWORD),
  "data.markov_vocab": ("data.source", ("markov",)),
  "data.markov_tokens": ("data.source", ("markov",)),
  "data.markov_concentration": ("data.source", ("markov",)),
  "data.valid_fraction": ("data.source", ("pydoc", "markov")),
  "data.tfds_name": ("data.source", ("tfds",)),
  "data.tfds_text_key": ("data.source", ("tfds",)),
  "data.tfds_train_split": ("data.source", ("tfds",)),
  "data.tfds_valid_split": ("data.source", ("tfds",)),
  "data.tfds_data_dir": ("data.source", ("tfds",)),
  "data.extensions": ("data.source", ("text_files",)),
  "data.doc_per_line": ("data.source", ("text_files",)),
  "data.text_key": ("data.source", ("text_files",)),
}


def applies(key: str, flat_cfg: dict) -> bool:
  """Whether `key` means anything in the run whose flat config is `flat_cfg` (`ONLY_WHERE`);
  a run that does not name the deciding key is taken as one where it applies."""
  if key not in ONLY_WHERE:
    return True
  on, values = ONLY_WHERE[key]
  return on not in flat_cfg or flat_cfg[on] in values


def _entry(key: str) -> tuple:
  key = LEGACY.get(key, key)
  best = None
  for entry in TABLE:
    name = entry[0]
    hit = key.startswith(name) if name.endswith(".") else key == name
    if hit and (best is None or len(name) > len(best[0])):
      best = entry
  if best is None:
    raise KeyError(f"config key {key} is not classed in aoarm/config/keys.py")
  return best


def class_of(key: str) -> str:
  """The class of a flat key ('model.kernels.mlp' -> 'implementation')."""
  return _entry(key)[1]


def on_resume(key: str) -> str:
  """REFUSE, NOTE or SILENT: what a resume does where `key` differs from its checkpoint's."""
  cls, resume = _entry(key)[1:]
  return resume if cls == EXPERIMENT else SILENT


def may_change_at_eval(key: str) -> bool:
  """Whether an eval or sample may set `key` for itself (else it takes the run's value)."""
  return class_of(key) in (IMPLEMENTATION, EVAL)


def flat(d, prefix: str = "") -> dict:
  """{'a.b': value} of a nested ConfigDict or dict (the one flattener of aoarm)."""
  out = {}
  for k, v in d.items():
    if hasattr(v, "items"):
      out.update(flat(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out
