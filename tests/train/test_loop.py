"""The fine-tuning loop in-process: smoke runs, sharding, accumulation, errors.
"""

import json

import jax
import pytest

from ftgen import configs
from ftgen.checkpoints import hf
from ftgen.checkpoints import registry
from ftgen.models import flops
from ftgen.train import checkpoint as ckpt_lib
from ftgen.train import loop
from ftgen.train import metrics
from ftgen.train import state as state_lib

import tiny_finetune  # tests/train/tiny_finetune.py

_tiny = tiny_finetune.config


def _datasets():
  return configs.module("data").DATASETS


@pytest.mark.parametrize("name", _datasets())
def test_configs_load_locked_with_tiny_defaults(name):
  tiny = configs.load(f"finetune:{name},tiny")
  assert tiny.model == "tiny" and tiny.steps >= 50
  assert tiny.checkpoint_every == 10
  assert tiny.data.source.name == name
  with pytest.raises(AttributeError):
    tiny.no_such_key = 1
  full = configs.load(f"finetune:{name}")
  assert full.model == "smollm2-135m" and full.lora.rank > 0


@pytest.mark.parametrize("arg", ["", "nope", "reversals,huge"])
def test_bad_config_names_allowed_values(arg):
  with pytest.raises(ValueError, match="allowed|needs a dataset name"):
    configs.load(f"finetune:{arg}")


def _user_docs(tmp_path):
  docs = tmp_path / "docs.jsonl"
  docs.write_text("".join(
      json.dumps({"id": f"d{i}", "text": f"Item {i} is blue. It is small."})
      + "\n" for i in range(6)))
  return str(docs)


@pytest.mark.parametrize("name", [
    n if n == "reversals" else pytest.param(n, marks=pytest.mark.slow)
    for n in _datasets()])
def test_two_step_smoke_run_of_every_tiny_config(name, tmp_path):
  config = _tiny(name, steps=2, eval__every=0,
                 eval__max_questions_per_split=2,
                 export_hf=True)
  if name == "user":
    config.data.source.generator.documents = _user_docs(tmp_path)
  try:
    summary = loop.finetune(config, tmp_path / "run")
  except (ImportError, ModuleNotFoundError) as e:
    pytest.skip(f"dataset {name}: generator not available ({e})")
  assert summary["steps"] == 2
  assert summary["final_loss"] > 0
  saved = json.loads((tmp_path / "run" / "train_summary.json").read_text())
  assert saved["params_digest"] == summary["params_digest"]
  assert len(saved["params_digest"]) == 64
  assert (tmp_path / "run" / "checkpoints" / "2").is_dir()
  assert (tmp_path / "run" / "export" / "model.safetensors").is_file()
  rows = metrics.read_metrics(tmp_path / "run")
  assert [r["step"] for r in rows if "loss" in r] == [1, 2]


def test_lora_run_trains_adapters_and_exports_merged(tmp_path):
  config = _tiny(steps=3, lora__rank=4, lora__targets=("q", "v", "up"),
                 export_hf=True)
  summary = loop.finetune(config, tmp_path / "run")
  assert summary["steps"] == 3
  base = registry.load_model("tiny", seed=0).params
  export = tmp_path / "run" / "export"
  merged = hf.load_hf_params(export, hf.load_hf_config(export), "float32")
  # The export holds the merged weights: q changed, k did not.
  assert state_lib.params_digest(merged) == summary["params_digest"]
  import numpy as np  # pylint: disable=g-import-not-at-top
  q0, q1 = (np.asarray(t["layers"]["attn"]["q"]["kernel"])
            for t in (base, merged))
  k0, k1 = (np.asarray(t["layers"]["attn"]["k"]["kernel"])
            for t in (base, merged))
  assert np.abs(q1 - q0).max() > 0
  np.testing.assert_array_equal(k0, k1)
  # The cost ledger counts LoRA's FLOPs (no frozen-weight gradient).
  setup = loop.build(config, tmp_path / "again")
  shapes = [setup.batcher.batch(s)["inputs"].shape for s in range(3)]
  lora_flops = sum(flops.train_flops(setup.model_config, b * t, t,
                                     lora_rank=4,
                                     lora_targets=("q", "v", "up"))
                   for b, t in shapes)
  assert summary["flops"] == pytest.approx(lora_flops, rel=1e-12)
  assert lora_flops < sum(flops.train_flops(setup.model_config, b * t, t)
                          for b, t in shapes)


def _losses(workdir):
  return [r["loss"] for r in metrics.read_metrics(workdir) if "loss" in r]


@pytest.mark.slow
def test_eight_devices_data_fsdp_tensor_match_one_device(tmp_path):
  steps = 4
  one = _tiny(steps=steps, checkpoint_every=1000)
  loop.finetune(one, tmp_path / "one")
  eight = _tiny(steps=steps, checkpoint_every=1000, num_devices=8,
                mesh__data=2, mesh__fsdp=2, mesh__tensor=2)
  loop.finetune(eight, tmp_path / "eight")
  a, b = _losses(tmp_path / "one"), _losses(tmp_path / "eight")
  assert len(a) == len(b) == steps
  assert a[-1] < a[0]  # It trains.
  for x, y in zip(a, b):
    assert y == pytest.approx(x, rel=1e-5)


@pytest.mark.slow
def test_accumulation_gives_the_same_update(tmp_path):
  s1 = loop.finetune(_tiny(steps=2, checkpoint_every=1000), tmp_path / "a1")
  s2 = loop.finetune(_tiny(steps=2, checkpoint_every=1000, accum_steps=4),
                     tmp_path / "a4")
  assert _losses(tmp_path / "a4") == pytest.approx(_losses(tmp_path / "a1"),
                                                   rel=1e-5)
  assert s2["final_loss"] == pytest.approx(s1["final_loss"], rel=1e-5)


def test_batch_not_divisible_by_data_parallel_size(tmp_path):
  config = _tiny(batch_size=6, num_devices=8, mesh__data=2, mesh__fsdp=2,
                 mesh__tensor=2)
  with pytest.raises(ValueError, match=r"'batch_size' = 6.*data-parallel size"
                     r" 4.*'mesh'"):
    loop.finetune(config, tmp_path / "run")


def test_lora_on_missing_module(tmp_path):
  config = _tiny(lora__rank=4, lora__targets=("q", "wq"))
  with pytest.raises(ValueError, match=r"lora.targets.*\['wq'\].*allowed"):
    loop.finetune(config, tmp_path / "run")


def test_workdir_with_another_models_checkpoint(tmp_path):
  loop.finetune(_tiny(steps=1, checkpoint_every=1), tmp_path / "run")
  other = _tiny(steps=2, model="tiny:qwen2")
  with pytest.raises(ckpt_lib.CheckpointMismatchError,
                     match=r"another model.*model: checkpoint has 'tiny',"
                     r" config gives 'tiny:qwen2'.*'model'"):
    loop.finetune(other, tmp_path / "run")


def test_finished_run_resumes_to_the_same_summary(tmp_path):
  first = loop.finetune(_tiny(steps=3), tmp_path / "run")
  again = loop.finetune(_tiny(steps=3), tmp_path / "run")
  assert again["params_digest"] == first["params_digest"]
  assert again["final_loss"] == first["final_loss"]


def test_auto_compute_dtype_resolves_per_backend():
  # Tests run on CPU, where "auto" means float32; explicit names pass through.
  assert jax.default_backend() == "cpu"
  assert loop.compute_dtype("auto") == "float32"
  assert loop.compute_dtype("bfloat16") == "bfloat16"


def test_summary_counts_the_flops_of_the_batches_it_ran_across_resume(
    tmp_path, monkeypatch):
  shapes = []  # [accum, B / accum, T] of every batch the step was given.
  build = loop.build

  def recording_build(config, workdir):
    setup = build(config, workdir)
    step_fn = setup.train_step

    def train_step(state, frozen, batch):
      shapes.append(tuple(batch["inputs"].shape))
      return step_fn(state, frozen, batch)

    setup.train_step = train_step
    return setup

  monkeypatch.setattr(loop, "build", recording_build)
  # Small batches of split sentences in several length buckets: batches
  # differ in padded length.
  small = dict(checkpoint_every=1, batch_size=2, data__num_buckets=4,
               data__split_mode="independent")
  loop.finetune(_tiny(steps=3, **small), tmp_path / "run")
  # Resumes at step 3 (a changed `steps` needs force_resume).
  summary = loop.finetune(_tiny(steps=6, force_resume=True, **small),
                          tmp_path / "run")
  assert len(shapes) == 6
  assert len({t for *_, t in shapes}) > 1
  model_config = registry.model_config("tiny")
  assert summary["train_tokens"] == sum(a * b * t for a, b, t in shapes)
  assert summary["flops"] == pytest.approx(
      sum(flops.train_flops(model_config, a * b * t, t)
          for a, b, t in shapes), rel=1e-12)
  saved = json.loads((tmp_path / "run" / "train_summary.json").read_text())
  assert saved["flops"] == summary["flops"]
