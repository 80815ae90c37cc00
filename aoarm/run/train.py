"""Training: state built sharded (eval_shape -> jit(out_shardings)), one jitted step with
donation, Orbax checkpoints (async, keep-N, resume), SIGTERM or Ctrl-C -> save and exit, NaN guard.

Every batch is a function of (seed, step), and the step's randomness is fold_in(seed, step), so a
run resumed from step k reproduces the uninterrupted run's losses exactly.
"""

import collections
import contextlib
import dataclasses
import logging
import os
import time
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from aoarm import losses
from aoarm.infra import interrupts, sharding
from aoarm.infra.checkpointing import abstract_with_shardings
from aoarm.infra.errors import UserError
from aoarm.models import ModelConfig
from aoarm.run import flops
from aoarm.run.early_stop import EarlyStop
from aoarm.run.placed_model import PlacedModel
from aoarm.run.train_config import TrainConfig

log = logging.getLogger("aoarm")


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any
  ema: Any = None  # the parameters' EMA (train.ema_decay > 0), else None: no leaves, not saved

  def eval_params(self, weights: str):
    """The weights an eval scores: the EMA ('ema', where the run keeps one) or the parameters."""
    return self.ema if weights == "ema" and self.ema is not None else self.params


def decay_mask(params, tables: bool = False):
  """Weight decay on matrices only: not norms, biases or other vectors, and (unless `tables`:
  AO-GPT's and nanoGPT's groups, every tensor of 2 or more dimensions) not token or position
  tables. A bias is never decayed whatever its shape (attention's H x K, the adaptive norm's
  M x D: AO-GPT's are flat vectors, so its groups leave them out too)."""

  def keep(path, x):
    names = jax.tree_util.keystr(path)
    dict_keys = [k.key for k in path if isinstance(k, jax.tree_util.DictKey)]
    if dict_keys and dict_keys[-1] == "bias":  # (boxed params end in `.value`)
      return False
    return x.ndim >= 2 and (tables or ("embed" not in names and "pos_" not in names))

  return jax.tree_util.tree_map_with_path(keep, params)


def ema_decay_at(decay: float, updates, warmup: bool):
  """The EMA's decay at its `updates`-th update: `decay`, or with `warmup` min(decay,
  (1 + n) / (10 + n)) (the convention of score_sde, MDLM, SEDD and AO-GPT's `ema.py`: early
  averages forget the initialisation instead of keeping ~decay^n of it)."""
  if not warmup:
    return decay
  n = jnp.asarray(updates, jnp.float32)
  return jnp.minimum(decay, (1.0 + n) / (10.0 + n))


def make_schedule(opt_cfg, num_steps: int):
  """Linear warmup to opt.lr, then cosine decay to opt.lr * opt.min_lr_ratio at num_steps."""
  warmup = min(opt_cfg.warmup_steps, max(num_steps - 1, 0))
  return optax.warmup_cosine_decay_schedule(
    0.0, opt_cfg.lr, warmup, max(num_steps, warmup + 1), end_value=opt_cfg.lr * opt_cfg.min_lr_ratio
  )


def make_optimizer(opt_cfg, num_steps: int) -> optax.GradientTransformation:
  schedule = make_schedule(opt_cfg, num_steps)
  parts = [optax.clip_by_global_norm(opt_cfg.clip_norm)] if opt_cfg.clip_norm > 0 else []
  parts.append(
    optax.adamw(
      schedule,
      b1=opt_cfg.b1,
      b2=opt_cfg.b2,
      weight_decay=opt_cfg.weight_decay,
      mask=lambda p: decay_mask(p, opt_cfg.decay_tables),
    )
  )
  return optax.chain(*parts)


@dataclasses.dataclass
class Trainer:
  """The placed model, its optimizer and the jitted functions of one training run."""

  cfg: TrainConfig  # what training reads of the run's config (`TrainConfig.from_config`)
  mcfg: ModelConfig
  mesh: jax.sharding.Mesh

  def __post_init__(self):
    c = self.cfg
    self.placed = PlacedModel(self.mcfg, self.mesh)
    self.model, self.rules = self.placed.model, self.placed.rules
    self.param_shardings = self.placed.param_shardings
    if not isinstance(c, TrainConfig):
      raise TypeError(f"Trainer takes a TrainConfig (TrainConfig.from_config(cfg)), not {type(c)}")
    self.tx = make_optimizer(c.opt, c.num_steps)
    self.schedule = make_schedule(c.opt, c.num_steps)
    abstract_params = self.placed.abstract_params
    abstract_opt = jax.eval_shape(self.tx.init, abstract_params)
    repl = sharding.replicated(self.mesh)
    opt_shardings = optax.tree_map_params(
      self.tx,
      lambda _, s: s,
      abstract_opt,
      self.param_shardings,
      transform_non_params=lambda _: repl,
    )
    ema = c.ema_decay > 0
    self.state_shardings = TrainState(
      step=repl,
      params=self.param_shardings,
      opt_state=opt_shardings,
      ema=self.param_shardings if ema else None,
    )
    self.abstract_state = abstract_with_shardings(
      TrainState(
        step=jax.ShapeDtypeStruct((), jnp.int32),
        params=abstract_params,
        opt_state=abstract_opt,
        ema=abstract_params if ema else None,
      ),
      self.state_shardings,
    )
    self.batch_sharding = sharding.batch_sharding(self.mesh)
    self._init_on_device = jax.jit(self._init_state, out_shardings=self.state_shardings)
    self._init_on_host = jax.jit(self._init_state)  # under the CPU backend (`init_state`)
    self.train_step = jax.jit(
      self._train_step,
      in_shardings=(self.state_shardings, self.batch_sharding),
      out_shardings=(self.state_shardings, repl),
      donate_argnums=(0,),
    )
    self.flops_per_token = flops.train_flops_per_token(self.mcfg)

  # -- state -------------------------------------------------------------------------------
  def init_state(self, rng) -> "TrainState":
    """The initial state, placed with `state_shardings`, drawn where `train.init_on` says: one
    program compiled for the mesh's devices, or the same program on the CPU backend and then
    placed (with `train.threefry_kernel` on, the device's compiles as fast; on a GPU the host's
    values may differ from the device's in their last bits)."""
    if self.cfg.init_on != "host":
      return self._init_on_device(rng)
    if jax.process_count() > 1:
      raise UserError(
        f"train.init_on=host draws the whole state in each process; with "
        f"{jax.process_count()} processes use train.init_on=device"
      )
    try:
      cpu = jax.local_devices(backend="cpu")[0]
    except RuntimeError as e:  # JAX_PLATFORMS names no cpu
      raise UserError(f"train.init_on=host needs JAX's CPU backend ({e})") from None
    with jax.default_device(cpu):
      state = self._init_on_host(jax.device_put(rng, cpu))
    return jax.device_put(state, self.state_shardings)

  def _init_state(self, rng):
    # Rules only: the state's shardings come from out_shardings.
    with nn.logical_axis_rules(self.rules):
      params = nn.unbox(self.placed.init_boxed(rng))
    ema = jax.tree.map(jnp.copy, params) if self.cfg.ema_decay > 0 else None  # starts at init
    return TrainState(
      step=jnp.zeros((), jnp.int32), params=params, opt_state=self.tx.init(params), ema=ema
    )

  # -- step --------------------------------------------------------------------------------
  def loss_fn(self, params, x_BxL, rng):
    c = self.cfg
    return losses.compute_loss(
      self.model.apply,
      params,
      x_BxL,
      rng,
      self.placed.traits.objective,
      self.placed.traits.random_orders,
      self.mcfg.vocab_size,
      c.order_train,
      c.l2r_prob,
    )[0]

  def _train_step(self, state: TrainState, x_BxL):
    rng = jax.random.fold_in(jax.random.key(self.cfg.seed), state.step)
    A = self.cfg.opt.grad_accum
    with sharding.activate(self.mesh, self.rules):
      grad_fn = jax.value_and_grad(self.loss_fn)
      if A == 1:
        loss, grads = grad_fn(state.params, x_BxL, rng)
      else:
        B, L = x_BxL.shape
        # micro-batch a takes rows a::A, so every device keeps its share of each micro-batch
        x_AxMxL = x_BxL.reshape(B // A, A, L).swapaxes(0, 1)

        def micro(carry, xs):
          x_MxL, a = xs
          loss_a, g = grad_fn(state.params, x_MxL, jax.random.fold_in(rng, a))
          return jax.tree.map(jnp.add, carry, (loss_a, g)), None

        zero = (jnp.zeros(()), jax.tree.map(jnp.zeros_like, state.params))
        (loss, grads), _ = jax.lax.scan(micro, zero, (x_AxMxL, jnp.arange(A)))
        loss, grads = jax.tree.map(lambda t: t / A, (loss, grads))
      updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
      params = optax.apply_updates(state.params, updates)
      ema = state.ema
      if ema is not None:  # optax.incremental_update: decay * ema + (1 - decay) * params
        d = ema_decay_at(self.cfg.ema_decay, state.step + 1, self.cfg.ema_warmup)
        ema = optax.incremental_update(params, ema, step_size=1.0 - d)
    metrics = {
      "loss": loss,
      "grad_norm": optax.global_norm(grads),
      "param_norm": optax.global_norm(params),
      # the rate this step took, computed here: evaluated on the host, the schedule's dozen
      # scalar operations each compiled a program of its own at the first log
      "lr": self.schedule(state.step),
    }
    return TrainState(step=state.step + 1, params=params, opt_state=opt_state, ema=ema), metrics


def check_batch(cfg, mesh):
  """`cfg`: the run's ConfigDict (setup checks it before any data is read)."""
  B, dp = cfg.train.batch_size, sharding.data_parallel_size(mesh)
  if B % dp:
    raise UserError(f"train.batch_size={B} is not divisible by the {dp} data-parallel devices")
  if B % cfg.opt.grad_accum or (B // cfg.opt.grad_accum) % dp:
    raise UserError(
      f"train.batch_size={B} does not split into opt.grad_accum="
      f"{cfg.opt.grad_accum} micro-batches over {dp} data-parallel devices"
    )


# Steps dispatched ahead of the device at most: two keep it busy; without a bound the loop ran up
# to train.log_every steps ahead, and a Ctrl-C on a CPU waited ~35 steps (505 s) for its save
MAX_IN_FLIGHT = 2


CPU_FLOPS = 75e9  # what a 2-core CPU sustained on the default config (1.07e12 FLOPs, 14 s a step)


def _warn_if_slow_here(trainer, tokens_per_step: int):
  """Once, at start: a config far too large for a CPU says so (issue 36: the default config ran
  ~14 s a step on a CPU with the bar at 0 for minutes)."""
  if trainer.mesh.devices.flat[0].platform != "cpu":
    return
  step_flops = trainer.flops_per_token * tokens_per_step
  seconds = step_flops / CPU_FLOPS  # fake CPU devices share the same cores
  if seconds > 2:
    log.warning(
      "this config's training step is %.2g FLOPs: on this CPU about %.0f s a step, %s for "
      "train.num_steps=%d; configs/<variant>.py:runlocal is the CPU-sized run",
      step_flops,
      seconds,
      f"~{seconds * trainer.cfg.num_steps / 3600:.1f} h",
      trainer.cfg.num_steps,
    )


@dataclasses.dataclass
class LoopIO:
  """What the training loop reads and writes besides the state."""

  batches: Any  # data.pipeline.TrainBatches
  ckpt: Any  # checkpointing.Checkpointer
  writer: Any  # metrics.MetricWriter
  meta_fn: Any  # step -> the checkpoint's meta
  evaluate_fn: Any = None  # params -> {metric: value}, every train.eval_every and at the end
  workdir: str = "."
  final_fn: Any = None  # (params, step) -> {metric: value}: at the end, instead of evaluate_fn
  timing: Any = None  # infra.timing.Phases: marks first_step, train, final_eval
  best: Any = None  # a Checkpointer keeping the state of the lowest `best_key` of evaluate_fn
  best_key: str = ""


def _mark(io: LoopIO, phase: str):
  if io.timing is not None:
    io.timing.mark(phase)


def _record_early_stop(early: EarlyStop, io: LoopIO, step: int):
  if jax.process_index() == 0:
    early.record(io.workdir, step)
  where = io.best.directory if io.best is not None else None
  log.info(
    "early stop at step %d (train.patience=%d): no lower held-out loss since step %d (%.4f)%s",
    step,
    early.patience,
    early.best_step,
    early.best_loss,
    f"; its checkpoint is in {where}" if where else "",
  )


def run_loop(trainer: Trainer, state, start_step: int, io: LoopIO) -> int:
  """Steps from start_step to num_steps. Returns the exit code: 0, 1 after a NaN, or after a
  SIGTERM (0) or Ctrl-C (130) the code of that stop, once its checkpoint is saved."""
  from aoarm.infra.metrics import Progress

  batches, ckpt, writer, meta_fn = io.batches, io.ckpt, io.writer, io.meta_fn
  evaluate_fn, workdir = io.evaluate_fn, io.workdir
  c = trainer.cfg
  n = c.num_steps
  interrupted = contextlib.ExitStack()
  stop = interrupted.enter_context(interrupts.catch())
  bar = Progress(start_step, n)
  tokens_per_step = c.batch_size * trainer.mcfg.seq_len
  _warn_if_slow_here(trainer, tokens_per_step)
  one = flops.device_peak(trainer.mesh.devices.flat[0].device_kind)  # MFU: of the mesh's peak
  peak = one * trainer.mesh.devices.size if one else None
  t0, s0 = time.perf_counter(), start_step
  # Batches are read and put on the devices by a background thread a few steps ahead, so this
  # thread only dispatches steps (a host-to-device copy may wait on the device's stream).
  stream = batches.iterate(start_step, put=lambda x: sharding.global_batch(x, trainer.mesh))
  prof_start, prof_stop = c.profile or (-1, -1)
  inflight = collections.deque()
  early = EarlyStop(c.patience)
  try:
    for step in range(start_step, n):
      if step == prof_start:
        jax.profiler.start_trace(os.path.join(workdir, "profile"), create_perfetto_trace=True)
      state, m = trainer.train_step(state, next(stream))
      inflight.append(m["loss"])
      if len(inflight) > MAX_IN_FLIGHT:  # a stop never waits on more queued steps than this
        jax.block_until_ready(inflight.popleft())
      if step == start_step:  # the one step that compiles: say how long a launch waited
        jax.block_until_ready(m["loss"])
        log.info("first step done in %.1f s (compilation included)", time.perf_counter() - t0)
        _mark(io, "first_step")
      else:
        bar.tick(step + 1)
      if step + 1 == prof_stop:
        jax.block_until_ready(m["loss"])
        jax.profiler.stop_trace()
      done = step + 1
      log_now = done % c.log_every == 0 or done == n
      stop_now = stop.requested or done == c.stop_after
      save_now = done % c.ckpt_every == 0 or done == n or stop_now
      if log_now or save_now:
        loss = float(m["loss"])  # host sync only here
        if not (np.isfinite(loss) and np.isfinite(float(m["param_norm"]))):
          log.error(
            "non-finite %s at step %d (loss %s, parameter norm %s): stopping without saving; "
            "the last good checkpoint is kept (steps %s)",
            "loss" if not np.isfinite(loss) else "parameters",
            done,
            loss,
            float(m["param_norm"]),
            ckpt.steps(),
          )
          return 1
      if log_now:
        dt = time.perf_counter() - t0
        tps = (done - s0) * tokens_per_step / max(dt, 1e-9)
        mfu = tps * trainer.flops_per_token / peak if peak else None
        writer.write(
          done,
          {
            "train/loss": loss,
            "train/grad_norm": float(m["grad_norm"]),
            "train/tokens_per_s": tps,
            "train/lr": float(m["lr"]),  # the rate step `done` took
            **({"train/mfu": mfu} if mfu is not None else {}),
          },
        )
        shown = {"mfu": f"{100 * mfu:.1f}%"} if mfu is not None else {}
        bar.update(done, loss=loss, tok_s=f"{tps:,.0f}", **shown)
        t0, s0 = time.perf_counter(), done
      if evaluate_fn is not None and c.eval_every and done % c.eval_every == 0:
        scores = evaluate_fn(state.eval_params(c.eval_weights))
        writer.write(done, scores)
        if io.best is not None:  # Orbax keeps the step of the lowest loss (best_fn)
          io.best.save(done, state, meta_fn(done), metrics={"loss": scores[io.best_key]})
        if early.update(done, scores[io.best_key]) and done < n:
          stop_now = save_now = True
          _record_early_stop(early, io, done)
      if save_now:
        ckpt.save(done, state, meta_fn(done))
      if stop_now:
        ckpt.wait()
        _mark(io, "train")
        return stop.exit_code
    _mark(io, "train")  # every step after the first, with its logs, evals and saves
    weights = state.eval_params(c.eval_weights)
    if io.final_fn is not None:
      final = io.final_fn(weights, n)
    else:
      final = evaluate_fn(weights) if evaluate_fn is not None else {}
    _mark(io, "final_eval")
    if final:
      writer.write(n, final)
    held = "".join(f", {k.split('/')[-1]} {v:.4f}" for k, v in final.items() if k.endswith("bits"))
    if start_step < n:
      log.info(
        "done: step %d, train loss %.4f%s; checkpoint %s",
        n,
        loss,
        held,
        os.path.join(os.path.abspath(workdir), "ckpt", str(n)),
      )
    return 0
  finally:
    bar.close()
    interrupted.close()
    ckpt.wait()
