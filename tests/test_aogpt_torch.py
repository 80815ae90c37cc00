"""Issue 34 (1): aoarm's aogpt with AO-GPT's parts computes AO-GPT's own forward.

Against a checkout of scxue/AO-GPT-MDM named by AOGPT_MDM_DIR (their model is imported from it,
never copied here), with torch installed; skipped where either is absent. Their model is built
with their own init, then every weight is moved off it (biases and norm scales start at 0 and 1,
the adaptive norm's gates near 0: a mis-wired bias or block would not show there), converted by
`aoarm.tools.convert_aogpt`, and both forwards run in float32 on the same tokens and orders.

  AOGPT_MDM_DIR=/path/to/AO-GPT-MDM python3 -m pytest -q -s tests/test_aogpt_torch.py
"""

import importlib.util
import os

import jax
import numpy as np
import pytest

from aoarm.infra.errors import UserError
from aoarm.models import get_model
from aoarm.tools import convert_aogpt

MODEL_FILE = "model_AOGPT_AdaLN6_NoRep_cond_128_trunc_qknorm.py"


def _their_module():
  torch = pytest.importorskip("torch")
  root = os.environ.get("AOGPT_MDM_DIR", "")
  path = os.path.join(root, MODEL_FILE)
  if not root or not os.path.isfile(path):
    pytest.skip(f"AOGPT_MDM_DIR does not name a checkout of scxue/AO-GPT-MDM with {MODEL_FILE}")
  spec = importlib.util.spec_from_file_location("aogpt_theirs", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return torch, mod


def _their_model(torch, mod, args, seed=0):
  torch.manual_seed(seed)
  model = mod.AOGPT(mod.AOGPTConfig(**args, dropout=0.0))
  gen = torch.Generator().manual_seed(seed + 1)
  with torch.no_grad():  # every weight away from its init: biases, scales and gates matter
    for name, p in model.named_parameters():
      scale = 0.3 if "adaLN" in name else 0.1
      p.add_(scale * torch.randn(p.shape, generator=gen))
  return model.eval()


def _match(args, seq_len, batch, seed=0):
  """(their logits, aoarm's, their loss, aoarm's mean NLL) on the same tokens and orders."""
  torch, mod = _their_module()
  model = _their_model(torch, mod, args, seed)
  gen = torch.Generator().manual_seed(seed + 2)
  idx = torch.randint(0, args["vocab_size"], (batch, seq_len), generator=gen)
  orders = torch.stack([torch.randperm(seq_len, generator=gen) for _ in range(batch)])
  orders[-1] = torch.arange(seq_len)  # left to right among them
  with torch.no_grad():
    logits, loss = model(idx, mode=None, orders=orders)
  theirs = logits[:, :seq_len].double().numpy()  # their last row predicts nothing

  cfg = convert_aogpt.model_config(args, seq_len=seq_len, dtype="float32")
  params = convert_aogpt.params_from_state(model.state_dict(), cfg)
  x, sigma = idx.numpy().astype(np.int32), orders.numpy().astype(np.int32)
  ours = np.asarray(get_model(cfg).apply({"params": params}, x, sigma), np.float64)
  y = np.take_along_axis(x, sigma, axis=1)  # row t predicts y_t = x[sigma_t]
  logz = np.log(np.exp(ours - ours.max(-1, keepdims=True)).sum(-1)) + ours.max(-1)
  nll = float(np.mean(logz - np.take_along_axis(ours, y[..., None], -1)[..., 0]))
  return theirs, ours, float(loss), nll


def _report(name, theirs, ours, loss, nll):
  err = np.abs(ours - theirs)
  rel = float(err.max() / np.abs(theirs).max())
  big = np.abs(theirs) > 0.1 * np.abs(theirs).max()
  elem = float((err[big] / np.abs(theirs[big])).max())
  print(
    f"\n{name}: logits {theirs.shape}, max |diff| {err.max():.3g}, max |theirs| "
    f"{np.abs(theirs).max():.3g}, max relative error {rel:.3g} (elementwise, where |logit| > 10% "
    f"of the max: {elem:.3g}); their loss {loss:.6f}, aoarm's {nll:.6f}"
  )
  return rel, elem


SMALL = {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 16, "vocab_size": 37, "bias": True}


def test_logits_match_their_forward():
  theirs, ours, loss, nll = _match(SMALL, seq_len=12, batch=4)  # 12 < block_size: tables cut
  rel, elem = _report("small 2x32", theirs, ours, loss, nll)
  assert rel <= 1e-4 and elem <= 1e-4
  assert abs(loss - nll) <= 1e-4 * abs(loss)
  assert np.abs(theirs).max() > 1.0  # the logits are not near zero, so the match means something


@pytest.mark.slow
def test_logits_match_their_forward_at_gpt2_shape():
  """GPT-2 small's shape (12 x 768, their padded 50304 vocabulary), L = 256 of block 1024."""
  args = {"n_layer": 12, "n_head": 12, "n_embd": 768, "block_size": 1024, "vocab_size": 50304}
  theirs, ours, loss, nll = _match(args | {"bias": True}, seq_len=256, batch=1)
  rel, elem = _report("GPT-2 shape 12x768", theirs, ours, loss, nll)
  assert rel <= 1e-4 and elem <= 1e-4


def test_the_converter_refuses_what_does_not_fit():
  torch, mod = _their_module()
  model = _their_model(torch, mod, SMALL)
  state = model.state_dict()
  cfg = convert_aogpt.model_config(SMALL, dtype="float32")
  with pytest.raises(UserError, match="seq_len=32 exceeds the checkpoint's block_size=16"):
    convert_aogpt.model_config(SMALL, seq_len=32)
  with pytest.raises(UserError, match="no 'lm_head.bias'"):
    convert_aogpt.params_from_state({k: v for k, v in state.items() if k != "lm_head.bias"}, cfg)
  with pytest.raises(UserError, match="no place for"):
    convert_aogpt.params_from_state(state | {"extra.weight": state["lm_head.bias"]}, cfg)
  with pytest.raises(UserError, match="model.gelu='tanh'"):
    convert_aogpt.params_from_state(state, convert_aogpt.model_config(SMALL, gelu="tanh"))
  # torch.compile's prefix is dropped; the result is what the plain names give
  compiled = {f"_orig_mod.{k}": v for k, v in state.items()}
  a, b = (convert_aogpt.params_from_state(s, cfg) for s in (state, compiled))
  jax.tree.map(np.testing.assert_array_equal, a, b)


def test_their_training_checkpoint_gives_its_weights_or_its_ema():
  """`from_checkpoint`: their ckpt_N.pt layout (model, ema_model.shadow_params in the order of
  model.parameters(), model_args); the EMA's tensors land on the right names."""
  torch, mod = _their_module()
  model = _their_model(torch, mod, SMALL)
  shadow = [0.5 * p.detach().clone() for p in model.parameters()]
  ckpt = {"model": model.state_dict(), "model_args": dict(SMALL), "iter_num": 7,
          "ema_model": {"decay": 0.9999, "num_updates": 7, "shadow_params": shadow}}  # fmt: skip
  state, args = convert_aogpt.from_checkpoint(ckpt, ema=True)
  assert args == SMALL
  for name, p in model.named_parameters():
    np.testing.assert_array_equal(state[name].numpy(), 0.5 * p.detach().numpy())
  raw, _ = convert_aogpt.from_checkpoint(ckpt, ema=False)
  assert raw.keys() == state.keys()
  cfg = convert_aogpt.model_config(args, dtype="float32")
  ema_params = convert_aogpt.params_from_state(state, cfg)
  np.testing.assert_allclose(
    ema_params["backbone"]["head"]["bias"][: SMALL["vocab_size"]],
    0.5 * model.lm_head.bias.detach().numpy(),
  )
  with pytest.raises(UserError, match="no 'model_args'"):
    convert_aogpt.from_checkpoint({"model": ckpt["model"]})
  with pytest.raises(UserError, match="EMA holds 3 tensors"):
    convert_aogpt.from_checkpoint(dict(ckpt, ema_model={"shadow_params": shadow[:3]}))
