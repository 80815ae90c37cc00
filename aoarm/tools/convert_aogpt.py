"""AO-GPT's PyTorch weights (scxue/AO-GPT-MDM, `model_AOGPT_AdaLN6_NoRep_cond_128_trunc_qknorm.py`)
as the parameters of aoarm's `aogpt` with AO-GPT's parts (`configs/aogpt.py:MODEL_PARTS`).

Their model and aoarm's compute the same function: rows [None], x[sigma_0], ..., each with its
own position's table row (`wpe`, row 0 for [None]: aoarm's BOS and `pos_own`), every block and
the final norm shifted, scaled and gated by SiLU(wtpe[sigma_t]) through a Linear (`adaLN`:
aoarm's `AdaptiveNorm`, the same six chunks in the same order), QK-norm, biases on every Linear,
an untied head with a bias. Their logits have one row more (the last row's is unused): aoarm's
L rows are their first L. `tests/test_aogpt_torch.py` checks the match against their forward.

  params = convert_aogpt.params_from_state(state_dict, model_config)
  cfg = convert_aogpt.model_config(model_args, seq_len=1024)   # their `model_args` dict
  state, args = convert_aogpt.from_checkpoint(torch.load(path), ema=True)  # their ckpt_N.pt

A state dict is a mapping of their parameter names to arrays (torch tensors: `.numpy()`); the
`_orig_mod.` prefix that torch.compile adds is dropped. Every entry must find its place (their
causal-mask buffer aside), every array is checked against the shape aoarm's model expects, and a
name or shape that does not fit is one error naming it.
"""

from collections.abc import Mapping

import jax
import numpy as np

from aoarm.infra.errors import UserError
from aoarm.models import ModelConfig, get_model
from aoarm.models.aogpt import TARGET_DIM, THEIR_PARTS

PARTS = THEIR_PARTS  # ModelConfig fields of AO-GPT's model


def model_config(model_args: Mapping, seq_len: int | None = None, **over) -> ModelConfig:
  """aoarm's ModelConfig for their `model_args` (n_layer, n_head, n_embd, block_size, bias,
  vocab_size; as their checkpoints hold it). `seq_len` defaults to their block_size."""
  if not model_args.get("bias", True):
    raise UserError("AO-GPT model_args has bias=False: aoarm's converter reads biased models only")
  block = int(model_args["block_size"])
  seq_len = block if seq_len is None else seq_len
  if seq_len > block:
    raise UserError(f"seq_len={seq_len} exceeds the checkpoint's block_size={block}")
  d = int(model_args["n_embd"])
  return ModelConfig(
    **(
      PARTS
      | {
        "vocab_size": int(model_args["vocab_size"]),
        "seq_len": seq_len,
        "num_layers": int(model_args["n_layer"]),
        "d_model": d,
        "num_heads": int(model_args["n_head"]),
        "mlp_dim": 4 * d,
      }
      | over
    )  # fmt: skip
  )


def from_checkpoint(ckpt: Mapping, ema: bool = True) -> tuple[dict, dict]:
  """(state dict, model_args) of one of their training checkpoints (`train_AOGPT_CL.py` saves
  `model`, `ema_model`, `model_args`, ...). With `ema`, the weights are their EMA's
  (`ema_model.shadow_params`, a list in the order of `model.parameters()`, which is the state
  dict's order of parameters: their model has no other buffers than the causal mask, kept only
  without flash attention), as they evaluate."""
  for key in ("model", "model_args"):
    if key not in ckpt:
      raise UserError(f"not an AO-GPT training checkpoint: no {key!r} (keys: {sorted(ckpt)})")
  state = {k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()}
  if not ema:
    return state, dict(ckpt["model_args"])
  if "ema_model" not in ckpt:
    raise UserError("the checkpoint holds no EMA (ema_model): pass ema=False for its weights")
  names = [k for k in state if not k.endswith(".attn.bias")]
  shadow = ckpt["ema_model"]["shadow_params"]
  if len(shadow) != len(names):
    raise UserError(f"the EMA holds {len(shadow)} tensors, the model {len(names)} parameters")
  for name, s in zip(names, shadow, strict=True):
    if tuple(s.shape) != tuple(state[name].shape):
      raise UserError(
        f"EMA tensor for {name}: shape {tuple(s.shape)}, the weight's {tuple(state[name].shape)}"
      )
  return dict(zip(names, shadow, strict=True)), dict(ckpt["model_args"])


def _numpy(x) -> np.ndarray:
  if hasattr(x, "detach"):  # a torch tensor
    x = x.detach().cpu().float().numpy()
  return np.asarray(x, np.float32)


def _pad_rows(a: np.ndarray, rows: int) -> np.ndarray:
  return np.concatenate([a, np.zeros((rows - a.shape[0],) + a.shape[1:], a.dtype)], axis=0)


def _block(get, i: int, cfg: ModelConfig) -> dict:
  """One block's tree from their `transformer.h.<i>.*`."""
  D, H, K = cfg.d_model, cfg.num_heads, cfg.head_dim
  p = f"transformer.h.{i}."
  w_qkv, b_qkv = get(p + "attn.c_attn.weight"), get(p + "attn.c_attn.bias")  # 3D x D, 3D
  attn = {}
  for j, n in enumerate("qkv"):  # torch's Linear is y = x W^T + b, W out x in
    attn[f"w{n}"] = {"kernel": w_qkv[j * D : (j + 1) * D].T.reshape(D, H, K)}
    attn[f"b{n}"] = {"bias": b_qkv[j * D : (j + 1) * D].reshape(H, K)}
  attn["wo"] = {"kernel": get(p + "attn.c_proj.weight").T.reshape(H, K, D)}
  attn["bo"] = {"bias": get(p + "attn.c_proj.bias")}
  attn["q_norm"] = {"scale": get(p + "attn.q_norm.weight")}
  attn["k_norm"] = {"scale": get(p + "attn.k_norm.weight")}
  mlp = {
    "wi": {"kernel": get(p + "mlp.c_fc.weight").T},
    "bi": {"bias": get(p + "mlp.c_fc.bias")},
    "wo": {"kernel": get(p + "mlp.c_proj.weight").T},
    "bo": {"bias": get(p + "mlp.c_proj.bias")},
  }
  ada_w, ada_b = get(p + "adaLN.1.weight"), get(p + "adaLN.1.bias")  # 6D x C, 6D
  return {
    "norm1": {"scale": get(p + "ln_1.weight")},
    "norm2": {"scale": get(p + "ln_2.weight")},
    "attn": attn,
    "mlp": mlp,
    "ada": {"kernel": ada_w.T.reshape(TARGET_DIM, 6, D), "bias": ada_b.reshape(6, D)},
  }


def params_from_state(state: Mapping, cfg: ModelConfig) -> dict:
  """aoarm `aogpt` parameters (float32) from their state dict, for the ModelConfig `cfg`
  (`model_config`); checked leaf by leaf against the model's own parameter shapes."""
  for key, want in PARTS.items():
    if getattr(cfg, key) != want:
      raise UserError(f"model.{key}={getattr(cfg, key)!r}: AO-GPT's weights need {want!r}")
  state = {k.removeprefix("_orig_mod."): v for k, v in state.items()}
  used = set()

  def get(name):
    if name not in state:
      raise UserError(f"AO-GPT state dict has no {name!r} (is it their AdaLN6 qknorm model?)")
    used.add(name)
    return _numpy(state[name])

  D, L, R = cfg.d_model, cfg.seq_len, cfg.table_rows
  V = cfg.vocab_size
  wte, none = get("transformer.wte.weight"), get("transformer.wnonee.weight")
  if wte.shape[0] != V:
    raise UserError(f"AO-GPT's vocabulary is {wte.shape[0]}, model.vocab_size={V}")
  head_w, head_b = get("lm_head.weight"), get("lm_head.bias")
  final_w = get("transformer.final_layer.adaLN_final.1.weight")
  final_b = get("transformer.final_layer.adaLN_final.1.bias")
  backbone = {
    "embed": {"embedding": _pad_rows(np.concatenate([wte, none], 0), R)},  # row V: BOS = [None]
    "final_norm": {"scale": get("transformer.final_layer.ln_f.weight")},
    "final_ada": {"kernel": final_w.T.reshape(TARGET_DIM, 2, D), "bias": final_b.reshape(2, D)},
    "head": {"kernel": _pad_rows(head_w, R).T, "bias": _pad_rows(head_b, R)},
  }
  for i in range(cfg.num_layers):
    backbone[f"block_{i}"] = _block(get, i, cfg)
  wpe, wtpe = get("transformer.wpe.weight"), get("transformer.wtpe.weight")
  if wpe.shape[0] < L + 1 or wtpe.shape[0] < L:
    raise UserError(f"AO-GPT's position tables hold {wtpe.shape[0]} positions, seq_len={L}")
  params = {
    "backbone": backbone,
    "pos_own": {"embedding": wpe[: L + 1]},  # as their crop_block_size keeps the first rows
    "pos_tgt": {"embedding": wtpe[:L]},
  }
  unread = sorted(k for k in state if k not in used and not k.endswith(".attn.bias"))
  if unread:  # `.attn.bias`: their causal-mask buffer (without flash attention), not a weight
    raise UserError(f"AO-GPT state dict entries aoarm's aogpt has no place for: {unread[:5]}")
  _check_shapes(params, cfg)
  return params


def _check_shapes(params: dict, cfg: ModelConfig) -> None:
  """Every leaf where the model has one, of the model's shape; nothing more, nothing less."""
  x = np.zeros((1, cfg.seq_len), np.int32)
  abstract = jax.eval_shape(
    lambda: get_model(cfg).init(jax.random.key(0), x, x + np.arange(cfg.seq_len))
  )["params"]
  want = {
    jax.tree_util.keystr(p): v.shape
    for p, v in jax.tree_util.tree_leaves_with_path(
      abstract, is_leaf=lambda v: hasattr(v, "shape") and not isinstance(v, dict)
    )
  }
  want = {k.removesuffix(".value"): s for k, s in want.items()}
  got = {jax.tree_util.keystr(p): v.shape for p, v in jax.tree_util.tree_leaves_with_path(params)}
  if set(want) != set(got):
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    raise UserError(f"converted tree differs from the model's: missing {missing}, extra {extra}")
  bad = [f"{k}: {got[k]} vs {want[k]}" for k in want if tuple(got[k]) != tuple(want[k])]
  if bad:
    raise UserError(f"converted shapes differ from the model's: {bad[:3]}")
