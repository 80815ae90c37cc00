"""The sampling half of a frontier: samples of trained runs over a grid of temperatures and
sampler settings, saved to one `.npz` per run so that any judge can score them later (on another
machine, or with another judge).

A samples file holds `tokens_<i>` (num_samples x L, one per point) and `meta`: a JSON string with
the run's tokenizer and one row per point (run, variant, seq_len, step, temperature, sampler
setting, num_samples, seed, precision, seconds).
"""

import json
import os
import time

import jax
import numpy as np

from aoarm import models
from aoarm.infra.errors import UserError
from aoarm.sample import front, sampling


def settings(traits, L, ks=(1,), adaptive=False, mdm_steps=(0,), order="random") -> list[dict]:
  """The sampler settings a frontier sweeps for one model: k targets per step (and the
  confidence-adaptive order) for the `query` family, denoising steps for `unmask`, the one
  ancestral sampler otherwise."""
  if traits.sampler == "unmask":  # S = 0 means L; S > L is left out (more steps than tokens)
    steps = dict.fromkeys(s or L for s in mdm_steps if (s or L) <= L)
    return [{"mdm_steps": s, "order": "random", "k": 1} for s in steps]
  if traits.sampler == "query":
    out = [{"k": k, "order": order, "mdm_steps": 0} for k in ks]
    return out + ([{"k": k, "order": "adaptive", "mdm_steps": 0} for k in ks] if adaptive else [])
  return [{"k": 1, "order": order if traits.random_orders else "l2r", "mdm_steps": 0}]


def describe(setting: dict) -> str:
  """A short name of a sampler setting for tables and legends."""
  if setting["mdm_steps"]:
    return f"S={setting['mdm_steps']}"
  if setting["order"] in ("random", "l2r"):
    return f"k={setting['k']}"
  return f"{setting['order']} k={setting['k']}"


def sample_run(
  run_dir,
  temperatures,
  num_samples,
  seed=0,
  ks=(1,),
  order="random",
  adaptive=False,
  mdm_steps=(0,),
  precision="float64",
) -> tuple[dict, list[dict]]:
  """(tokenizer JSON, points) of one run: a point per (sampler setting, temperature) with its
  samples under `tokens`. One compiled sampler per setting serves every temperature."""
  cfg, run, placed, params, step = front.load_run(run_dir)
  traits = models.traits(run.mcfg.variant)
  points = []
  for setting in settings(traits, run.mcfg.seq_len, ks, adaptive, mdm_steps, order):
    spec = sampling.SampleSpec(length=run.mcfg.seq_len, precision=precision, **setting)
    with sampling.precision_scope(precision):  # float64 draws: 64-bit JAX, restored after
      fn = front.sampler(run, placed, spec, num_samples, where=run_dir)
      for t in temperatures:
        t0 = time.perf_counter()
        x = np.asarray(jax.device_get(fn(params, jax.random.key(seed), float(t))["tokens"]))
        points.append(
          {
            "run": run_dir,
            "variant": run.mcfg.variant,
            "seq_len": run.mcfg.seq_len,
            "step": step,
            "temperature": float(t),
            "sampler": describe(setting),
            **setting,
            "num_samples": num_samples,
            "seed": seed,  # the sampler's
            "train_seed": cfg.seed,  # the run's: a frontier's seeds of one arm (frontier_plot)
            "precision": precision,
            "seconds": round(time.perf_counter() - t0, 3),  # the first of a setting: + compile
            "tokens": x,
          }
        )
        took = points[-1]["seconds"]
        print(f"sampled {run_dir} {describe(setting)} T={t} ({took} s)", flush=True)
  return run.data.tokenizer.to_json(), points


def save(path: str, tokenizer: dict, points: list[dict]) -> None:
  """One `.npz`, written whole or not at all."""
  meta = {"tokenizer": tokenizer, "points": [_without_tokens(p) for p in points]}
  arrays = {f"tokens_{i}": _narrow(p["tokens"]) for i, p in enumerate(points)}
  tmp = path + ".tmp.npz"
  np.savez_compressed(tmp, meta=np.array(json.dumps(meta)), **arrays)
  os.replace(tmp, path)


def load(path: str) -> tuple[dict, list[dict]]:
  """(tokenizer JSON, points with their `tokens`) from `save`."""
  try:
    with np.load(path) as z:
      meta = json.loads(str(z["meta"]))
      points = [
        dict(p, tokens=z[f"tokens_{i}"].astype(np.int32)) for i, p in enumerate(meta["points"])
      ]
  except (OSError, KeyError, ValueError) as e:
    raise UserError(f"{path} is not a samples file of aoarm.tools.gen_eval ({e})") from None
  return meta["tokenizer"], points


def _narrow(x: np.ndarray) -> np.ndarray:
  """uint16 where the ids fit (a quarter of the bytes of int32); loads back as int32."""
  return x.astype(np.uint16) if x.min() >= 0 and x.max() < 2**16 else x


def _without_tokens(point: dict) -> dict:
  return {k: v for k, v in point.items() if k != "tokens"}
