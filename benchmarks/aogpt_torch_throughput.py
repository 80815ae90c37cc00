"""The peer's training throughput: AO-GPT's own PyTorch model and training step (imported from a
checkout of scxue/AO-GPT-MDM, never copied), timed as their `train_AOGPT_CL.py` runs it: bf16
autocast on CUDA, `torch.compile`, fused AdamW, clipping at 1.0, random orders drawn by their
`mode="Random"`. Prints one JSON line like `benchmarks/train_throughput.py`'s rows (tokens/s,
median step of the timed windows, peak memory), so both run side by side in one device call:

  AOGPT_MDM_DIR=/path/to/AO-GPT-MDM python benchmarks/aogpt_torch_throughput.py \\
      --batch=32 --steps=30 --window=15 --json=OUT/peer.jsonl
  python benchmarks/train_throughput.py --preset=gpt2 --batch=32 --steps=30 --window=15 \\
      --variants=aogpt \\
      --model=own_positions=learned,bias=True,tie_embeddings=False,gelu=exact,norm_eps=1e-5

The GPT-2 shape by default (12 x 768, 12 heads, L = 1024, their padded vocabulary 50304);
`--layers/--d_model/--heads/--seq_len/--vocab` for others, `--no_compile` for eager PyTorch (the
CPU check in tests/test_aogpt_torch.py uses it at a tiny shape).
"""

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time

MODEL_FILE = "model_AOGPT_AdaLN6_NoRep_cond_128_trunc_qknorm.py"


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--aogpt_dir", default=os.environ.get("AOGPT_MDM_DIR", ""))
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--seq_len", type=int, default=1024)
  p.add_argument("--layers", type=int, default=12)
  p.add_argument("--d_model", type=int, default=768)
  p.add_argument("--heads", type=int, default=12)
  p.add_argument("--vocab", type=int, default=50304)
  p.add_argument("--steps", type=int, default=30)
  p.add_argument("--warmup", type=int, default=3)
  p.add_argument("--window", type=int, default=15)
  p.add_argument("--no_compile", action="store_true")
  p.add_argument("--json", default="")
  a = p.parse_args(argv)
  path = os.path.join(a.aogpt_dir, MODEL_FILE)
  if not os.path.isfile(path):
    sys.exit(f"aogpt_torch_throughput: --aogpt_dir={a.aogpt_dir!r} holds no {MODEL_FILE}")
  for flag in ("batch", "seq_len", "steps", "window"):
    if getattr(a, flag) < 1:
      sys.exit(f"aogpt_torch_throughput: --{flag}={getattr(a, flag)} must be at least 1")

  import torch

  spec = importlib.util.spec_from_file_location("aogpt_theirs", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  cuda = torch.cuda.is_available()
  device = "cuda" if cuda else "cpu"
  torch.manual_seed(0)
  cfg = mod.AOGPTConfig(
    block_size=a.seq_len, vocab_size=a.vocab, n_layer=a.layers, n_head=a.heads,
    n_embd=a.d_model, dropout=0.0, bias=True,
  )  # fmt: skip
  model = mod.AOGPT(cfg).to(device)
  opt = model.configure_optimizers(0.05, 6e-4, (0.9, 0.95), device)
  step_model = model if a.no_compile else torch.compile(model)
  if cuda:
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
  autocast = torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=cuda)
  x = torch.randint(0, a.vocab, (a.batch, a.seq_len), device=device)

  def step():
    with autocast:
      _, loss = step_model(x, mode="Random")
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss

  def sync():
    if cuda:
      torch.cuda.synchronize()

  t0 = time.perf_counter()
  for _ in range(a.warmup):
    step()
  sync()
  warm_s = time.perf_counter() - t0
  if cuda:
    torch.cuda.reset_peak_memory_stats()
  windows = []
  done = 0
  while done < a.steps:
    n = min(a.window, a.steps - done)
    t = time.perf_counter()
    for _ in range(n):
      loss = step()
    float(loss)  # wait for the window's last step, as a logging step does
    sync()
    windows.append((time.perf_counter() - t) / n)
    done += n
  step_s = statistics.median(windows)
  row = {
    "impl": "ao-gpt-torch" + ("" if a.no_compile else "-compiled"),
    "device": torch.cuda.get_device_name() if cuda else "cpu",
    "torch": torch.__version__,
    "shape": f"{a.layers}x{a.d_model}",
    "batch": a.batch,
    "seq_len": a.seq_len,
    "vocab": a.vocab,
    "params": sum(q.numel() for q in model.parameters()),
    "tokens_per_s": round(a.batch * a.seq_len / step_s, 1),
    "step_ms": round(1e3 * step_s, 2),
    "warmup_s": round(warm_s, 1),  # compile included
    "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
    "loss": round(float(loss), 4),
  }
  print(json.dumps(row), flush=True)
  if a.json:
    with open(a.json, "a") as f:
      f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
  main()
