"""The fine-tuning loop: resume, train, checkpoint, evaluate, log, export.

`finetune(config, workdir)` is what `launch/finetune.py` calls. It resumes
from the newest complete checkpoint in `workdir/checkpoints`, trains to
`config.steps`, and writes `workdir/train_summary.json`
(docs/design.md#fine-tuning-outputs).
On SIGTERM it saves the current step, stops cleanly and returns a summary
with `preempted: True` (rerun the same command to continue).
"""

from __future__ import annotations

import dataclasses
import json
import signal
import threading
import time
from typing import Any

from etils import epath
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from ftgen.checkpoints import gguf_export
from ftgen.checkpoints import hf
from ftgen.checkpoints import registry
from ftgen.data import io as data_io
from ftgen.data import pipeline
from ftgen.data import workdir as workdir_lib
from ftgen.parallel import distributed
from ftgen.parallel import mesh as mesh_lib
from ftgen.parallel import sharding as sharding_lib
from ftgen.train import checkpoint as ckpt_lib
from ftgen.train import data as data_lib
from ftgen.train import evaluate as eval_lib
from ftgen.models import decoder
from ftgen.models import flops as flops_lib
from ftgen.train import lora as lora_lib
from ftgen.train import metrics as metrics_lib
from ftgen.train import optim
from ftgen.train import state as state_lib
from ftgen.train import step as step_lib
from ftgen.train import validate

P = jax.sharding.PartitionSpec


@dataclasses.dataclass
class Setup:
  """Everything built from a config before the first step."""

  config: Any
  model: nn.Module
  model_config: Any
  tokenizer: Any
  mesh: jax.sharding.Mesh
  batcher: data_lib.Batcher
  questions: list
  state: dict[str, Any]
  shardings: dict[str, Any]
  frozen: Any
  frozen_shardings: Any
  train_step: Any
  fingerprint: dict[str, Any]
  schedule: Any


class _StopFlag:
  """Set by SIGTERM (preemption); checked between steps."""

  def __init__(self):
    self.requested = False
    self._previous = None

  def install(self):
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):
    del signum, frame
    self.requested = True

  def uninstall(self):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None


def ensure_dataset(config: Any, workdir: epath.Path) -> epath.Path:
  """The dataset directory, generated under WORKDIR/data when absent."""
  if config.data.dir:
    path = workdir_lib.as_path(config.data.dir)
    if not (path / "train.jsonl").is_file():
      raise ValueError(
          f"config key 'data.dir' = {str(path)!r} holds no train.jsonl; point"
          " it at a dataset directory or leave it empty to generate one")
    return path
  return pipeline.ensure_dataset(config.data.source, workdir / "data")


def compute_dtype(name: str) -> str:
  """`name`, with "auto" resolved for the default backend.

  bfloat16 on accelerators; float32 on CPU, where XLA's bfloat16 matmuls are
  slower (a SmolLM2-shape LoRA step: 1.28x the time, docs/benchmarks.md).
  """
  if name != "auto":
    return name
  return "float32" if jax.default_backend() == "cpu" else "bfloat16"


def load_model(config: Any, mesh: jax.sharding.Mesh):
  """(model config, params on the mesh, tokenizer) of `config.model`."""
  loaded = registry.load_model(config.model, dtype=config.param_dtype,
                               compute_dtype=compute_dtype(config.dtype),
                               mesh=mesh, seed=config.model_seed)
  return loaded.config, loaded.params, loaded.tokenizer


def _check_batch(config: Any, mesh: jax.sharding.Mesh):
  # The config alone was checked by validate.check_config; this needs the mesh.
  micro = config.batch_size // config.accum_steps
  dp = mesh.shape["data"] * mesh.shape["fsdp"]
  if micro % dp:
    raise ValueError(
        f"config key 'batch_size' = {config.batch_size} (micro-batch"
        f" {micro} with accum_steps={config.accum_steps}) is not divisible by"
        f" the data-parallel size {dp} (config key 'mesh': data="
        f"{mesh.shape['data']} x fsdp={mesh.shape['fsdp']}); use a multiple"
        f" of {dp}")


def build(config: Any, workdir: epath.PathLike) -> Setup:
  """Model, data, mesh, sharded state and the jitted step of a config
  (checked by `validate.check_config`)."""
  workdir = workdir_lib.as_path(workdir)
  devices = jax.devices()
  if config.num_devices:
    if config.num_devices > len(devices):
      raise ValueError(
          f"config key 'num_devices' = {config.num_devices} but only"
          f" {len(devices)} devices are visible")
    devices = devices[:config.num_devices]
  mesh = mesh_lib.make_mesh(dict(config.mesh), devices=devices)
  _check_batch(config, mesh)
  model_config, params, tokenizer = load_model(config, mesh)
  if config.export_gguf:  # refuse an unexportable model before training
    gguf_export.gguf_architecture(model_config)
  model = _decoder(model_config, config)

  data_dir = distributed.primary_first(
      lambda: ensure_dataset(config, workdir), "dataset generated")
  # Own documents may come without questions: train, skip evaluation.
  documents, questions = data_io.load_dataset_dir(data_dir,
                                                  need_questions=False)
  batcher = data_lib.build_batcher(documents, tokenizer, config.data,
                                   config.batch_size, config.seed)

  param_sh = jax.tree.map(lambda x: x.sharding, params)
  optimizer, schedule = optim.make_optimizer(config)
  rank = config.lora.rank
  if rank:
    adapters = lora_lib.init(params, tuple(config.lora.targets), rank,
                             model_config.embed_dim, config.seed)
    trainable_sh = state_lib.lora_shardings(adapters, mesh)
    trainable = jax.device_put(adapters, trainable_sh)
    frozen, frozen_sh = params, param_sh
  else:
    trainable, trainable_sh = params, param_sh
    frozen, frozen_sh = {}, {}
  state, shardings = state_lib.init_state(trainable, trainable_sh, optimizer,
                                          config.seed, mesh)
  batch_sh = sharding_lib.batch_sharding(
      (config.accum_steps, config.batch_size // config.accum_steps, 8), mesh,
      logical_axes=(None, "batch", "length"))
  train_step = step_lib.make_train_step(
      model, optimizer, schedule, mesh=mesh, state_shardings=shardings,
      frozen_shardings=frozen_sh, batch_sharding=batch_sh, lora_rank=rank,
      lora_alpha=config.lora.alpha,
      loss_chunk_tokens=config.loss_chunk_tokens)
  fp = state_lib.fingerprint(
      config.model, params,
      {"lora_rank": rank,
       "lora_targets": sorted(config.lora.targets) if rank else []})
  return Setup(config, model, model_config, tokenizer, mesh, batcher,
               list(questions), state, shardings, frozen, frozen_sh,
               train_step, fp, schedule)


def _decoder(model_config: Any, config: Any) -> nn.Module:
  return decoder.Decoder(model_config, remat=config.remat,
                         attention=config.attention)


def final_params(setup: Setup, state: dict[str, Any]) -> Any:
  """The full params after training (LoRA merged into the base weights)."""
  if setup.config.lora.rank:
    merge = jax.jit(lambda f, a: lora_lib.merge(
        f, a, setup.config.lora.rank, setup.config.lora.alpha))
    return merge(setup.frozen, state["params"])
  return state["params"]


def _put_batch(batch: dict[str, np.ndarray], setup: Setup) -> dict[str, Any]:
  a = setup.config.accum_steps
  out = {}
  for k, v in batch.items():
    v = v.reshape(a, v.shape[0] // a, *v.shape[1:])
    sh = sharding_lib.batch_sharding(v.shape, setup.mesh,
                                     logical_axes=(None, "batch", "length"))
    out[k] = jax.device_put(v, sh)
  return out


def _meta(setup: Setup, step: int, loss: float) -> dict[str, Any]:
  return {"fingerprint": setup.fingerprint, "step": step, "loss": loss,
          "data": {"seed": setup.config.seed, "next_step": step},
          "config": json.loads(setup.config.to_json_best_effort())}


@jax.jit
def _copy_state(state: Any) -> Any:
  return jax.tree.map(jnp.copy, state)


def _save(ckpt: ckpt_lib.Checkpointer, setup: Setup, state: Any, step: int,
          metrics: Any, force: bool = False):
  loss = float(jax.device_get(metrics["loss"]))
  # On CPU a device array may share memory with the host copy orbax writes
  # asynchronously; the next step donates (overwrites) the state, so save a
  # private copy there.
  if setup.mesh.devices.flat[0].platform == "cpu":
    state = _copy_state(state)
  ckpt.save(step, state, _meta(setup, step, loss), force=force)


def _run_eval(setup: Setup, state: Any, step: int,
              writer: metrics_lib.MetricsWriter,
              rows_path: epath.Path | None = None) -> dict[str, Any]:
  """Evaluates the current params; writes the rows to `rows_path` if given.

  The rows are those `launch/evaluate.py` (finetuned) writes to
  results.jsonl for the export, calibrated variants included.
  """
  cfg = setup.config
  qs = eval_lib.select_questions(setup.questions, cfg.eval)
  if not qs:
    return {}
  params = final_params(setup, state)
  with sharding_lib.mesh_context(setup.mesh):
    result = eval_lib.evaluate(
        setup.model_config, params, setup.tokenizer, qs,
        batch_size=cfg.eval.batch_size, results_path=rows_path,
        model_name=cfg.model, mesh=setup.mesh)
  writer.write(step, {f"eval/{s}/acc": r["acc"] for s, r in result.items()})
  return result


def _step_flops(setup: Setup, b: int, t: int) -> float:
  """Training FLOPs of a [b, t] batch: full fine-tuning's or LoRA's count."""
  lora = setup.config.lora
  return flops_lib.train_flops(
      setup.model_config, b * t, t, lora_rank=lora.rank,
      lora_targets=tuple(lora.targets) if lora.rank else ())


def _batches_cost(setup: Setup, steps: int) -> tuple[int, float]:
  """Tokens (padding included) and training FLOPs of batches [0, steps).

  A resumed run counts the steps it did not run itself this way: batches are
  a pure function of (seed, step), so the count is exact.
  """
  tokens, flops = 0, 0.0
  for step in range(steps):
    b, t = setup.batcher.batch(step)["inputs"].shape
    tokens += b * t
    flops += _step_flops(setup, b, t)
  return tokens, flops


def finetune(config: Any, workdir: epath.PathLike) -> dict[str, Any]:
  """Fine-tunes per `config` in `workdir` (resuming), returns the summary.

  One run per workdir: the workdir's lock is held throughout (process 0 of
  a multi-host job takes it), and no input may lie in `workdir/export`,
  which each finished run replaces (docs/design.md#reliability).
  """
  # Before anything is created or loaded (docs/reliability.md).
  validate.check_config(config)
  workdir = workdir_lib.as_path(workdir)
  workdir_lib.check_inputs_outside(config.to_dict(), [workdir / "export"])
  distributed.primary_first(
      lambda: workdir_lib.make_dir(workdir, "fine-tuning workdir"),
      "fine-tuning workdir made")
  with workdir_lib.locked(workdir, enabled=distributed.is_primary()):
    return _finetune(config, workdir)


def _finetune(config: Any, workdir: epath.Path) -> dict[str, Any]:
  """`finetune` with the workdir locked."""
  setup = build(config, workdir)
  ckpt = ckpt_lib.Checkpointer(workdir, max_to_keep=config.max_to_keep,
                               async_save=config.async_checkpointing)
  ckpt.check_model(setup.fingerprint)
  state = setup.state
  restored = ckpt.restore_latest(
      state_lib.abstract_like(state, setup.shardings))
  start, last_loss = 0, float("nan")
  if restored is not None:
    state, meta = restored
    start = int(jax.device_get(state["step"]))
    # Only the run that saved it may continue it (docs/reliability.md).
    validate.check_resume(meta.get("config"), config,
                          f"the checkpoint of step {start} in {workdir}")
    last_loss = float(meta.get("loss", float("nan")))
    print(f"resumed from step {start} (checkpoint of"
          f" {meta['fingerprint']['model']})")
  if start == 0:
    trained = state_lib.tree_size(state["params"])
    print(state_lib.overview(final_params(setup, state),
                             None if config.lora.rank else setup.shardings[
                                 "params"], trainable=trained))
    print(f"examples: {len(setup.batcher.original)} original"
          + (f", {len(setup.batcher.augmented)} augmented"
             if setup.batcher.augmented is not None else "")
          + f"; {setup.batcher.epoch_steps():.1f} steps per epoch;"
          f" buckets {setup.batcher.buckets}; mesh"
          f" {dict(setup.mesh.shape)}")

  # Process 0 writes the workdir's files; every process trains, saves its
  # shards (orbax coordinates them) and evaluates.
  primary = distributed.is_primary()
  writer = metrics_lib.MetricsWriter(workdir, resume_step=start,
                                     enabled=primary)
  stop = _StopFlag()
  stop.install()
  num_devices = setup.mesh.devices.size
  bar = tqdm.tqdm(total=config.steps, initial=start,
                  disable=not config.progress, desc="finetune",
                  dynamic_ncols=True)
  eval_result: dict[str, Any] = {}
  preempted = False
  t_mark, tokens_since, flops_since, first = time.perf_counter(), 0, 0.0, True
  train_tokens, train_flops = _batches_cost(setup, start)
  train_start = time.perf_counter()
  step = start
  # Checked where the loop fetches metrics anyway (log, eval, save): a
  # diverged run stops there, before any save or export.
  watch = step_lib.NonFiniteWatch(lr=config.lr,
                                  dtype=compute_dtype(config.dtype),
                                  param_dtype=config.param_dtype)
  try:
    with sharding_lib.mesh_context(setup.mesh):
      while step < config.steps:
        batch = setup.batcher.batch(step)
        b, t = batch["inputs"].shape
        state, metrics = setup.train_step(state, setup.frozen,
                                          _put_batch(batch, setup))
        step += 1
        watch.add(step, metrics)
        step_flops = _step_flops(setup, b, t)
        tokens_since += b * t
        flops_since += step_flops
        train_tokens += b * t
        train_flops += step_flops
        if step % config.log_every == 0 or step == config.steps:
          m = {k: float(v) for k, v in jax.device_get(metrics).items()}
          now = time.perf_counter()
          if not first:  # The first interval includes compilation.
            dt = now - t_mark
            m["tokens_per_s"] = tokens_since / dt
            m["mfu"] = flops_lib.mfu(flops_since, dt, config.peak_flops,
                                     num_devices)
          first = False
          t_mark, tokens_since, flops_since = now, 0, 0.0
          last_loss = m["loss"]
          writer.write(step, m)
          watch.check(ckpt.latest_step)
          bar.set_postfix(loss=f"{m['loss']:.4f}", refresh=False)
        bar.update(1)
        if (config.eval.every > 0 and step % config.eval.every == 0
            and step < config.steps):
          watch.check(ckpt.latest_step)
          _run_eval(setup, state, step, writer)
        saved = step % config.checkpoint_every == 0 or step == config.steps
        if saved or stop.requested:
          watch.check(ckpt.latest_step)
        if saved:
          _save(ckpt, setup, state, step, metrics)
          writer.flush()  # On gs://, the rows up to the checkpoint.
        if stop.requested and step < config.steps:
          if not saved:  # Off-interval: save the current step now.
            _save(ckpt, setup, state, step, metrics, force=True)
          preempted = True
          break
  finally:
    bar.close()
    stop.uninstall()
    ckpt.close()

  summary: dict[str, Any] = {
      "steps": step, "final_loss": last_loss, "model": config.model,
      "dataset": config.name, "wall_s": time.perf_counter() - train_start,
      "train_tokens": train_tokens, "flops": train_flops,
  }
  if preempted:
    summary["preempted"] = True
    if primary:
      data_io.atomic_write_json(workdir / "preempted.json", {"step": step},
                                indent=None)
    writer.close()
    print(f"preempted (SIGTERM): saved step {step}; rerun to resume")
    return summary
  if primary:
    (workdir / "preempted.json").unlink(missing_ok=True)
  params = final_params(setup, state)
  if config.eval.every >= 0:
    eval_result = _run_eval(
        setup, state, step, writer,
        rows_path=workdir / "eval_results.jsonl" if primary else None)
  writer.close()
  summary["final_loss"] = last_loss
  summary["params_digest"] = state_lib.params_digest(params)
  if eval_result:
    summary["eval"] = eval_result
  if config.export_hf or config.export_gguf:
    # On every process: params sharded over several hosts are gathered.
    params = distributed.fetch(params)
  if config.export_hf and primary:
    summary["export_dir"] = _export(setup, params, workdir)
  if config.export_gguf and primary:
    summary["export_gguf"] = str(gguf_export.write_gguf(
        workdir / f"model-{config.export_gguf_type}.gguf",
        setup.model_config, params, setup.tokenizer,
        ggml_type=config.export_gguf_type, name=f"ftgen-{config.name}"))
  if primary:
    data_io.atomic_write_json(workdir / "train_summary.json", summary,
                              indent=1)
  return summary


def _export(setup: Setup, params: Any, workdir: epath.Path) -> str:
  """Writes the fine-tuned weights (host arrays) as an HF-style directory.

  The directory is filled aside and renamed into place with ftgen's
  sentinel, so a rerun replaces it whole and nothing is written through a
  symlink in it (docs/design.md#reliability).
  """
  out = workdir / "export"
  with data_io.atomic_path(out, directory=True) as tmp:
    hf.save_hf(tmp, setup.model_config, params)
    setup.tokenizer.save(tmp)
    workdir_lib.mark(tmp, "fine-tuned export")
  return str(out)
