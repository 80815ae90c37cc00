"""Config fragments shared by configs/<variant>.py (big_vision style).

`parse_arg("seq_len=256,runlocal")` -> ConfigDict(seq_len=256, runlocal=True); `base_config`
builds every section with a comment on each field. A config file sets its variant's fields and
its `sweep()`; the command line overrides any field with --config.a.b=value.
"""

import logging

import ml_collections as mlc

DEFAULT_ARGS = dict(seq_len=0, runlocal=False, seed=0, source="", variant="", data_dir="", size="")

# model sizes by name (`size=350m`): layers, d_model, heads. Parameters with a 50304-entry tied
# vocabulary: `python -m aoarm.run.flops --config=configs/ar.py:size=NAME --vocab_size=50304`.
SIZES = {
  "small": (6, 384, 6),  # the length sweep's model
  "124m": (12, 768, 12),  # GPT-2 small
  "350m": (24, 1024, 16),  # GPT-2 medium
  "1.3b": (24, 2048, 16),  # GPT-3 XL's shape
}


def cast_like(default, text: str):
  """`text` as a value of `default`'s type: a flag (1, true, yes or empty are True), an integer,
  a float; any other default takes the text as it is. ValueError for a bad number."""
  if isinstance(default, bool):
    return text.lower() in ("1", "true", "yes", "")
  if isinstance(default, int | float):
    return type(default)(text)
  return text


def parse_arg(arg: str | None, **defaults) -> mlc.ConfigDict:
  """'a=1,b,c=x' -> ConfigDict; a bare name is True; values take the type of their default."""
  out = dict(DEFAULT_ARGS, **defaults)
  for item in filter(None, (arg or "").split(",")):
    key, eq, val = item.partition("=")
    if key not in out:
      raise ValueError(f"unknown config arg {key!r} in {arg!r}; known: {sorted(out)}")
    try:
      out[key] = cast_like(out[key], val) if eq else True
    except ValueError:
      kind = "an integer" if isinstance(out[key], int) else "a number"
      raise ValueError(f"config arg {key}={val!r} is not {kind}") from None
  return mlc.ConfigDict(out)


def base_config(variant: str, arg: str | None, **extra_args) -> mlc.ConfigDict:
  """The defaults of every run. `extra_args`: config-arg names (and defaults) that a config file
  reads itself, accepted here rather than refused as unknown."""
  a = parse_arg(arg, **extra_args)
  c = mlc.ConfigDict()
  c.seed = a.seed  # seeds init, orders and the data order; (seed, step) fixes every batch

  c.data = mlc.ConfigDict()
  c.data.source = a.source or "pydoc"  # pydoc | text_files | tfds | markov
  # text_files: a file, or for subword tokenizers also a glob, a folder or a comma list of
  # .txt / .jsonl / .gz files (UTF-8)
  c.data.train_path = ""  # text_files: training text
  c.data.valid_path = ""  # text_files: held-out text
  c.data.test_path = ""  # text_files: test text (optional)
  # folders and globs: the extensions to take ('.txt,.raw'); '' = .txt/.jsonl(.gz), and a folder
  # that also holds other files is refused with their names (a file named itself is always read)
  c.data.extensions = ""
  c.data.text8 = False  # text_files/tfds: normalise to text8 (a-z and space)
  # char (vocabulary of the training text, saved in workdir) | byte | sentencepiece | bpe
  # (subword: streamed into a memory-mapped token store in data.cache_dir, docs/data.md)
  c.data.tokenizer = "char"
  c.data.vocab_size = 8192  # subword: entries of a tokenizer trained on the training split
  c.data.spm_model_type = "unigram"  # sentencepiece: unigram | bpe
  c.data.tokenizer_path = ""  # subword: a sentencepiece .model or a tokenizer.json to use as is
  # subword: training text a tokenizer learns from; 0 = 100 MB for bpe, 48 MB for sentencepiece
  # (whose trainer holds ~25 bytes of memory per byte of its sample: aoarm/data/streamed.py)
  c.data.tokenizer_sample_bytes = 0
  c.data.doc_per_line = False  # text files: one document per line (else one per file)
  c.data.text_key = "text"  # .jsonl files: the field holding a document's text
  c.data.num_workers = 0  # token store: tokenising processes (0 = one per CPU core)
  c.data.shard_tokens = 1 << 26  # token store: tokens per shard file
  c.data.seq_len = a.seq_len or 128  # L, tokens per window
  c.data.valid_fraction = 0.05  # pydoc/markov: tail fraction of the stream held out
  c.data.tfds_name = ""  # tfds: dataset name, e.g. 'lm1b'
  c.data.tfds_text_key = "text"  # tfds: feature holding the text
  c.data.tfds_train_split = "train"
  c.data.tfds_valid_split = "test"
  c.data.tfds_data_dir = ""  # tfds: data_dir ('' = TFDS default)
  c.data.markov_vocab = 8  # markov: number of symbols
  c.data.markov_tokens = 200_000  # markov: tokens in the stream (train + valid)
  c.data.markov_concentration = 0.3  # markov: Dirichlet concentration of transition rows
  c.data.cache_dir = ""  # tokenised-stream cache ('' = WORKDIR/cache)

  from aoarm.models.model_config import Kernels as _K
  from aoarm.models.model_config import ModelConfig as _M

  c.model = mlc.ConfigDict()  # its defaults are ModelConfig's (one place: models/model_config.py)
  c.model.variant = variant  # a name in aoarm.models.VARIANTS (ar, two_stream, mdm, ...)
  c.model.num_layers = _M.num_layers
  c.model.d_model = _M.d_model
  c.model.num_heads = _M.num_heads
  c.model.mlp_dim = _M.mlp_dim  # 0 -> 4 * d_model
  c.model.tie_embeddings = _M.tie_embeddings  # output head = token table
  c.model.dtype = _M.dtype  # compute dtype; params stay in param_dtype
  c.model.param_dtype = _M.param_dtype
  c.model.remat = _M.remat  # none | full | dots
  c.model.capture_attention = _M.capture_attention  # diagnostics only: slow explicit attention
  # two_stream: query stream in the top n blocks only; 0 = every block
  c.model.query_layers = _M.query_layers
  # aogpt: rope | learned (AO-GPT's own-position table, no RoPE)
  c.model.own_positions = _M.own_positions
  # aogpt: every block's two gates' bias at init (0: AO-GPT's; 1: open)
  c.model.ada_gate_init = _M.ada_gate_init
  # aogpt: init std of the target-position embedding (AO-GPT's 0.02)
  c.model.ada_cond_std = _M.ada_cond_std
  # AO-GPT's (and GPT-2's) parts, for any variant (configs/aogpt.py:recipe sets all four):
  c.model.bias = _M.bias  # a bias on every Linear (q/k/v, attention out, MLP, untied head)
  c.model.norm_eps = _M.norm_eps  # every RMSNorm's epsilon, QK-norm's too (AO-GPT: 1e-5)
  c.model.gelu = _M.gelu  # the MLP's GELU: tanh (approximate) | exact (erf, AO-GPT's)
  c.model.init_trunc = _M.init_trunc  # normal inits cut at +- this many std (AO-GPT: 3); 0 = off
  # how the model computes, never what (aoarm.kernels.AUTO says what each `auto` picks)
  c.model.kernels = mlc.ConfigDict()
  c.model.kernels.attention = _K.attention  # auto (cuDNN on GPU with bf16, else XLA) | xla | cudnn
  c.model.kernels.embed = _K.embed  # auto (one-hot if table <= 1024 rows) | gather | onehot
  c.model.kernels.norm = _K.norm  # RMSNorm: auto (one-read kernels on 1 GPU) | xla | pallas
  c.model.kernels.mlp = _K.mlp  # MLP: auto (GELU in matmul epilogues, 1 Hopper GPU) | xla | pallas
  c.model.kernels.qkv = _K.qkv  # q/k/v: auto (RoPE in the epilogue, 1 Hopper GPU) | xla | pallas
  c.model.kernels.decode = _K.decode  # cached decoding: auto (flash decoding, 1 GPU) | xla | pallas
  c.model.rope = mlc.ConfigDict()
  c.model.rope.base = _M.rope_base
  # decoupled_rope: fraction of heads querying by target pos
  c.model.rope.target_heads = _M.target_heads
  # decoupled_rope: fraction of rotary dims for generation step
  c.model.rope.order_dims = _M.order_dims

  c.order = mlc.ConfigDict()
  c.order.train = "random"  # random | l2r | mixture (AO variants)
  c.order.l2r_prob = 0.0  # mixture: probability of the identity order

  c.opt = mlc.ConfigDict()
  c.opt.lr = 1e-3  # peak learning rate
  c.opt.warmup_steps = 200  # linear warmup, then cosine decay to min_lr_ratio * lr
  c.opt.min_lr_ratio = 0.1
  c.opt.b1 = 0.9
  c.opt.b2 = 0.95
  c.opt.weight_decay = 0.1  # AdamW, on matrices only (not norms, tables, vectors)
  c.opt.decay_tables = False  # weight decay on token and position tables too (AO-GPT's groups)
  c.opt.clip_norm = 1.0  # global gradient-norm clipping (0 = off)
  c.opt.grad_accum = 1  # micro-batches per step (batch_size must divide by it)

  c.train = mlc.ConfigDict()
  c.train.batch_size = 64  # global sequences per step
  c.train.num_steps = 10_000  # total steps (sets the LR schedule)
  # equal compute: the variant whose training FLOPs this run was given (its num_steps set so by
  # the config, e.g. configs/length_sweep.py:compute_of=two_stream); '' = its own budget
  c.train.compute_of = ""
  c.train.stop_after = 0  # stop (with a checkpoint) after this step; 0 = run to num_steps
  # EMA of the parameters, updated every step (0 = off; AO-GPT, MDLM and SEDD evaluate EMA
  # weights, e.g. 0.9999): kept in the checkpoint; eval and sample use it (eval.ema, sample.ema)
  c.train.ema_decay = 0.0
  # the EMA's decay at its n-th update is min(ema_decay, (1 + n) / (10 + n)) (score_sde, MDLM,
  # SEDD, AO-GPT); false: ema_decay from the first update (the EMA then keeps ~decay^n of init)
  c.train.ema_warmup = True
  c.train.log_every = 50  # steps between metric writes
  c.train.eval_every = 0  # steps between held-out evals during training (0 = only at the end)
  # early stopping: stop (with a checkpoint, WORKDIR/early_stop.json) once this many in-training
  # evals in a row found no new lowest loss; a relaunch then trains no further (0 = off)
  c.train.patience = 0
  c.train.profile = ""  # "A:B": jax.profiler trace of steps [A, B) into WORKDIR/profile
  c.train.eval_batches = 16  # batches in an in-training eval (every train.eval_every steps)
  # at the last step, the eval --mode=eval writes (eval/step_<N>.json and .npz), in this process
  c.train.final_eval = True
  # JAX's persistent compilation cache: auto (~/.cache/aoarm/jax) | off | a folder
  c.train.compile_cache = "auto"
  # where the initial state is drawn: device (one program compiled for the accelerator) | host
  # (the same program on the CPU backend, then placed with the state's shardings; one process
  # only; on a GPU the initial values differ from device's in the normal draws' last bits). With
  # train.threefry_kernel on, device compiles as fast as host (RESULTS.md, issue 32)
  c.train.init_on = "device"
  # on a GPU, JAX's threefry hash as one kernel call per draw (jax_threefry_gpu_kernel_lowering)
  # instead of XLA's unrolled integer code: the same bits, and the initial state's program
  # compiles in seconds (an H100: 15.1 -> 2.5 s at the sweep's shape, 49.9 -> 5.2 s at GPT-2's);
  # elsewhere it changes nothing
  c.train.threefry_kernel = True

  c.ckpt = mlc.ConfigDict()
  c.ckpt.every_steps = 1000  # save period (steps); also saved at the end, on SIGTERM and Ctrl-C
  c.ckpt.keep = 3  # checkpoints kept
  c.ckpt.async_save = True  # Orbax async checkpointing
  # with train.eval_every: the checkpoint of the lowest in-training held-out loss is kept apart
  # from the rotation, in DIR/ckpt_best (eval.checkpoint=best reads it)
  c.ckpt.best = True
  # resume: allow another seed, batch size, training data, order or model option than the
  # checkpoint's (each difference is then logged as a warning instead of refused)
  c.ckpt.allow_changes = False

  c.eval = mlc.ConfigDict()
  # valid | test | train (pydoc and markov hold out one tail: their test split is the valid one)
  c.eval.split = "valid"
  c.eval.num_orders = 1  # K random orders (or stratified lambdas for mdm) per window
  c.eval.l2r = True  # AO variants: also report the identity order
  c.eval.batch_size = 64  # windows per eval batch
  c.eval.max_windows = 0  # 0 = the whole split
  c.eval.ema = True  # score the EMA weights where the run keeps them (train.ema_decay > 0)
  c.eval.checkpoint = "latest"  # latest | best (DIR/ckpt_best: the lowest in-training eval loss)

  c.sample = mlc.ConfigDict()
  c.sample.num_samples = 8  # sequences (one batch)
  c.sample.length = 0  # 0 = data.seq_len
  c.sample.order = "random"  # random | l2r | given | adaptive (two_stream)
  c.sample.order_positions = ""  # order=given: comma list, a permutation of 0..length-1
  c.sample.k = 1  # two_stream: targets per step (1 = exact ancestral)
  c.sample.temperature = 1.0  # 0 = greedy
  c.sample.top_p = 1.0
  c.sample.seed = 0
  c.sample.prompt = ""  # text placed at positions 0.. (given tokens)
  c.sample.infill = ""  # 'POS=text;POS=text': text placed from POS on (given tokens)
  c.sample.mdm_steps = 0  # mdm: denoising steps (0 = length)
  c.sample.unroll = 1  # decode-loop unroll: speed only (4: ~11% faster on an H100)
  c.sample.precision = "float32"  # the final draw: float32 | float64 (logits and Gumbel noise)
  c.sample.ema = True  # sample from the EMA weights where the run keeps them
  c.sample.checkpoint = "latest"  # latest | best (DIR/ckpt_best)

  c.mesh = mlc.ConfigDict()
  c.mesh.data = -1  # data-parallel axis (-1: all remaining devices)
  c.mesh.fsdp = 1  # parameter-sharded data parallelism
  c.mesh.tensor = 1  # tensor parallelism (heads, mlp, vocab)

  if a.size:
    if a.size not in SIZES:
      raise ValueError(f"unknown config arg size={a.size!r}; known: {sorted(SIZES)}")
    c.model.num_layers, c.model.d_model, c.model.num_heads = SIZES[a.size]
  if a.runlocal:  # a CPU-sized run: a few minutes on a laptop
    c.model.num_layers, c.model.d_model, c.model.num_heads = 2, 64, 4
    c.model.dtype = "float32"
    c.data.seq_len = a.seq_len or 64
    c.train.batch_size, c.train.num_steps = 16, 300
    c.train.log_every, c.opt.warmup_steps = 25, 30
    c.ckpt.every_steps = 100
    c.eval.batch_size = 32  # the whole held-out split (363 windows of pydoc at L=64)
  return c


def apply_aliases(cfg):
  """Move the kernel knobs' old flat names (model.norm_impl, ...; committed results' commands
  use them) to model.kernels.*, with a warning each. UserError where an old name and its new
  one are both set, to different values."""
  from aoarm.infra.errors import UserError
  from aoarm.models.model_config import LEGACY_KEYS  # the table's model.kernels renames

  for old, new in LEGACY_KEYS.items():
    if old not in cfg.model:
      continue
    value = cfg.model[old]
    with cfg.unlocked():
      del cfg.model[old]
      if "kernels" not in cfg.model:
        cfg.model.kernels = mlc.ConfigDict()
      now = cfg.model.kernels.get(new, "auto")
      if now not in ("auto", value):
        raise UserError(
          f"config.model.{old}={value!r} and config.model.kernels.{new}={now!r} disagree "
          f"(model.{old} is the old name of model.kernels.{new})"
        )
      cfg.model.kernels[new] = value
    logging.getLogger("aoarm").warning(
      "config.model.%s is now config.model.kernels.%s (the old name goes soon)", old, new
    )


def sweep_product(**axes):
  """Cartesian product of named axes -> list of override dicts (for a config's sweep())."""
  import itertools

  keys = list(axes)
  return [dict(zip(keys, vals)) for vals in itertools.product(*(axes[k] for k in keys))]
