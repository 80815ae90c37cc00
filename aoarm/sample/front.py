"""The one front-end of sampling a trained run: `--mode=sample` (`sample`) and the frontier
(`gen_samples.sample_run`) both open the run with `load_run` and compile with `sampler`, so the
run's config is read one way and a sampler spec is checked once."""

import hashlib
import json
import os

import jax
import numpy as np

from aoarm.config import run_config
from aoarm.infra.errors import UserError
from aoarm.run import setup
from aoarm.sample import sample_spec, sampling


def load_run(
  workdir: str, cfg=None, mode: str = "read", explicit: set | None = None, checkpoint=None
):
  """(cfg, run, placed, params, step) of a run directory's newest checkpoint (`checkpoint`:
  "latest" or "best"; None: what the mode's config key says). The config is the
  run's own: its saved config.json over its variant's defaults where `cfg` is None, else `cfg`
  with every key an eval or sample may not set taken from the run (`run_config.for_reading`;
  `explicit`: the command line's own keys)."""
  if cfg is None:
    cfg = run_config.from_workdir(workdir, {}, mode)
  else:
    cfg = run_config.for_reading(cfg, workdir, mode, explicit)
  return (cfg,) + setup.restore_params(cfg, workdir, mode, checkpoint)


def sampler(run, placed, spec: sample_spec.SampleSpec, num_samples: int, where: str = ""):
  """The compiled sampler of `spec` for the run's model: fn(params, rng, temperature=None). A
  spec the variant cannot run is one UserError (prefixed with `where`)."""
  try:
    return sampling.make_sampler(
      placed.model, run.mcfg, spec, num_samples, placed.rules, placed.mesh
    )
  except ValueError as e:
    raise UserError(f"{where}: {e}" if where else str(e)) from None


def sample_name(step: int, settings: dict) -> str:
  """step_<N>-<8 hex digits of the settings>.jsonl: every sampler setting its own file."""
  digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
  return f"step_{step}-{digest}.jsonl"


def sample(cfg, workdir: str, explicit: set | None = None) -> int:
  """--mode=sample: samples of the newest checkpoint (`config.sample`) to
  DIR/samples/step_<N>-<settings>.jsonl, one JSON object per sample: text, tokens, order
  (positions in generation order), per-token log-probs, and the sampler settings. Runs on the
  run's saved config (`load_run`)."""
  cfg, run, placed, params, step = load_run(workdir, cfg, "sample", explicit)
  spec = sample_spec.from_config(cfg, run.data.tokenizer, run.mcfg.seq_len)
  n = cfg.sample.num_samples
  with sampling.precision_scope(spec.precision):
    fn = sampler(run, placed, spec, n)
    out = jax.device_get(fn(params, jax.random.key(cfg.sample.seed)))
  settings = {k: v for k, v in cfg.sample.items()}
  path = os.path.join(run.workdir, "samples", sample_name(step, settings))
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
      for b in range(n):
        toks = np.asarray(out["tokens"][b])
        row = {
          "text": run.data.tokenizer.decode(toks),
          "tokens": toks.tolist(),
          "order": np.asarray(out["order"][b]).tolist(),
          "logprob": np.asarray(out["logprob"][b]).round(5).tolist(),
          "variant": run.mcfg.variant,
          "step": step,
          "weights": run.weights,  # the EMA of the parameters, or the parameters
          "settings": settings,
        }
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(path + ".tmp", path)
    for b in range(min(n, 4)):  # the text itself, as a reader wants it (the file has the rest)
      print(f"--- sample {b} ({spec.order} order) ---")
      print(run.data.tokenizer.decode(np.asarray(out["tokens"][b])))
    print(f"wrote {path}")
  return 0
