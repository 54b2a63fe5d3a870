"""ftgen/train/validate.py: a fine-tuning config's checks before any work,
and resuming only the run a checkpoint was saved by."""

import json
import time

import pytest

from ftgen import configs
from ftgen.train import loop
from ftgen.train import validate

import tiny_finetune  # tests/train/tiny_finetune.py


def _config(arg="reversals,tiny", **overrides):
  name, _, variant = arg.partition(",")
  assert variant == "tiny", arg  # The tests use the tiny variant only.
  return tiny_finetune.config(name, **overrides)


@pytest.mark.parametrize("arg", ["reversals,tiny", "reversals", "semantic",
                                 "process,tiny"])
def test_shipped_configs_pass(arg):
  validate.check_config(configs.load(f"finetune:{arg}"))


@pytest.mark.parametrize("key,value,message", [
    ("batch_size", -2, r"^config.batch_size=-2 must be >= 1$"),
    ("batch_size", 0, r"config.batch_size=0 must be >= 1"),
    ("accum_steps", 3, r"config.accum_steps=3 must divide"
                       r" config.batch_size=8"),
    ("steps", 0, r"config.steps=0 must be >= 1"),
    ("lr", 0.0, r"config.lr=0.0 must be a finite number > 0"),
    ("lr", float("nan"), r"config.lr=nan must be a finite number > 0"),
    ("lr", float("inf"), r"config.lr=inf must be"),
    ("schedule", "cosin", r"config.schedule='cosin' is not one of constant,"
                          r" linear, cosine"),
    ("dtype", "float16", r"config.dtype='float16' is not one of auto,"),
    ("param_dtype", "auto", r"config.param_dtype='auto' is not one of"
                            r" float32, bfloat16"),
    ("warmup_steps", -1, r"config.warmup_steps=-1 must be >= 0"),
    ("grad_clip", -1.0, r"config.grad_clip=-1.0 must be >= 0"),
    ("b2", 1.5, r"config.b2=1.5 must lie in \[0, 1\]"),
    ("eps", 0.0, r"config.eps=0.0 must be > 0"),
    ("lora__rank", -1, r"config.lora.rank=-1 must be >= 0"),
    ("mesh__data", 0, r"config.mesh=.* needs sizes >= 1 and at most one -1"),
    ("data__max_len", 0, r"config.data.max_len=0 must be >= 1"),
    ("data__split_mode", "words", r"config.data.split_mode='words' is not"
                                  r" one of none, independent, cumulative"),
    ("eval__batch_size", 0, r"config.eval.batch_size=0 must be >= 1"),
    ("eval__every", -2, r"config.eval.every=-2 must be >= -1"),
    ("checkpoint_every", 0, r"config.checkpoint_every=0 must be >= 1"),
    ("model", "foo", r"unknown model 'foo'; allowed forms"),
    ("model", "tiny:nope", r"unknown model 'tiny:nope': tiny families are"),
])
def test_bad_value_is_one_line_naming_the_key(key, value, message):
  with pytest.raises(ValueError, match=message) as e:
    validate.check_config(_config(**{key: value}))
  assert "\n" not in str(e.value)


def test_missing_model_file_is_file_not_found(tmp_path):
  with pytest.raises(FileNotFoundError, match="no GGUF file"):
    validate.check_config(_config(model=f"gguf:{tmp_path / 'x.gguf'}"))
  with pytest.raises(FileNotFoundError, match="no config.json"):
    validate.check_config(_config(model=f"hf:{tmp_path}"))


def test_finetune_fails_before_it_creates_anything(tmp_path):
  start = time.perf_counter()
  with pytest.raises(ValueError, match="config.batch_size=-2"):
    loop.finetune(_config(batch_size=-2), tmp_path / "run")
  assert time.perf_counter() - start < 2
  assert not (tmp_path / "run").exists()


def _saved(config):
  return json.loads(config.to_json_best_effort())


def test_resume_changes_ignore_progress_and_logging_fields():
  saved = _saved(_config())
  same = _config(progress=True, log_every=5, checkpoint_every=3,
                 eval__every=7, num_devices=8, export_hf=True,
                 data__dir="/elsewhere", force_resume=True)
  assert validate.resume_changes(saved, same) == []
  other = _config(lr=1e-2, batch_size=4, data__split_mode="independent")
  assert validate.resume_changes(saved, other) == [
      "batch_size", "data.split_mode", "lr"]


def test_check_resume_lists_the_keys_and_obeys_force_resume():
  saved = _saved(_config())
  with pytest.raises(validate.ResumeMismatchError,
                     match=r"^ckpt was saved by a run with another config:"
                     r" lr \(0.003 -> 0.01\).*force_resume=True"):
    validate.check_resume(saved, _config(lr=1e-2), "ckpt")
  validate.check_resume(saved, _config(lr=1e-2, force_resume=True), "ckpt")
  validate.check_resume(None, _config(lr=1e-2), "ckpt")  # Nothing saved.


@pytest.mark.slow  # One tiny run and three restores: ~18 s on 2 cores.
def test_resume_with_a_changed_lr_refuses_and_force_resume_proceeds(tmp_path):
  run = tmp_path / "run"
  first = loop.finetune(_config(steps=1, checkpoint_every=1), run)
  with pytest.raises(validate.ResumeMismatchError,
                     match=r"step 1 in .*run was saved by a run with another"
                     r" config: lr \(0.003 -> 0.001\)"):
    loop.finetune(_config(steps=1, checkpoint_every=1, lr=1e-3), run)
  # A logging field may change; force_resume continues a changed run (here
  # finished: it restores the last step and reports it).
  again = loop.finetune(_config(steps=1, checkpoint_every=1, log_every=2), run)
  forced = loop.finetune(
      _config(steps=1, checkpoint_every=1, lr=1e-3, force_resume=True), run)
  assert again["params_digest"] == forced["params_digest"] == first[
      "params_digest"]


def test_remat_names_its_allowed_values():
  with pytest.raises(ValueError, match="remat.*none, full, save_dots"):
    validate.check_config(tiny_finetune.config(remat="partly"))
  validate.check_config(tiny_finetune.config(remat="save_dots"))
