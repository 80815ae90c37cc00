"""--mode=sample: restore the latest checkpoint's parameters and write
DIR/samples/step_<N>.jsonl, one JSON object per sample: text, tokens, order (positions in
generation order), per-token log-probs, and the sampler settings."""

import json
import os

import jax
import numpy as np

from aoarm import experiment, sampling
from aoarm.errors import UserError


def parse_given(tokenizer, prompt: str, infill: str, length: int) -> tuple:
  """Prompt at position 0 plus 'POS=text;POS=text' infill segments -> ((pos, token), ...)."""
  given = {}

  def place(start, text, what):
    ids = tokenizer.encode(text, where=what)
    if start + len(ids) > length:
      raise UserError(f"{what} {text!r} at {start} runs past the sample length {length}")
    for i, t in enumerate(ids):
      if start + i in given:
        raise UserError(f"{what} overlaps another given token at position {start + i}")
      given[start + i] = int(t)

  if prompt:
    place(0, prompt, "sample.prompt")
  for seg in filter(None, infill.split(";")):
    pos, eq, text = seg.partition("=")
    if not eq or not pos.strip().isdigit():
      raise UserError(f"sample.infill segment {seg!r} is not POS=text")
    place(int(pos), text, "sample.infill")
  return tuple(sorted(given.items()))


def spec_from_config(cfg, tokenizer, seq_len: int) -> sampling.SampleSpec:
  s = cfg.sample
  length = s.length or seq_len
  if length > seq_len and cfg.model.variant == "sigma_gpt":
    raise UserError(
      f"sample.length={length} > seq_len={seq_len}: sigma_gpt has no positions past L"
    )
  order_positions = tuple(int(p) for p in s.order_positions.split(",") if p.strip())
  return sampling.SampleSpec(
    length=length,
    order=s.order,
    k=s.k,
    temperature=s.temperature,
    top_p=s.top_p,
    given=parse_given(tokenizer, s.prompt, s.infill, length),
    order_positions=order_positions,
    mdm_steps=s.mdm_steps,
    unroll=s.unroll,
  )


def run(cfg, workdir: str) -> int:
  run_, trainer, params, step = experiment.restore_params(cfg, workdir, "sample")
  spec = spec_from_config(cfg, run_.data.tokenizer, run_.mcfg.seq_len)
  try:
    spec.validate(run_.mcfg.variant, run_.mcfg.vocab_size)
  except ValueError as e:
    raise UserError(str(e)) from None
  fn = sampling.make_sampler(
    trainer.model, run_.mcfg, spec, cfg.sample.num_samples, trainer.rules, trainer.mesh
  )
  out = jax.device_get(fn(params, jax.random.key(cfg.sample.seed)))
  settings = {k: v for k, v in cfg.sample.items()}
  path = os.path.join(run_.workdir, "samples", f"step_{step}.jsonl")
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
      for b in range(cfg.sample.num_samples):
        toks = np.asarray(out["tokens"][b])
        row = {
          "text": run_.data.tokenizer.decode(toks),
          "tokens": toks.tolist(),
          "order": np.asarray(out["order"][b]).tolist(),
          "logprob": np.asarray(out["logprob"][b]).round(5).tolist(),
          "variant": run_.mcfg.variant,
          "step": step,
          "settings": settings,
        }
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(path + ".tmp", path)
    for b in range(min(cfg.sample.num_samples, 4)):
      print(repr(run_.data.tokenizer.decode(np.asarray(out["tokens"][b]))))
    print(f"wrote {path}")
  return 0
