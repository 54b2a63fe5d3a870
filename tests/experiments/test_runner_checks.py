"""The runner validates before working and resumes only the same run
(docs/reliability.md): bad settings fail in well under 2 s with nothing
created; a workdir holding a run with another config is refused unless
config.force_resume."""

import json
import os
import pathlib
import time

import pytest

from ftgen import configs
from ftgen.data import io as data_io
from ftgen.experiments import runner


def _config(**overrides):
  return configs.override(
      configs.load("experiment:reversals,tiny"),
      {k.replace("__", "."): v for k, v in overrides.items()})


@pytest.mark.parametrize("overrides,error,message", [
    ({"model": "foo"}, runner.ExperimentConfigError,
     r"^config.model: unknown model 'foo'; allowed forms"),
    ({"model": "gguf:/nonexistent/x.gguf"}, FileNotFoundError,
     r"no GGUF file at /nonexistent/x.gguf"),
    ({"finetune__batch_size": -2}, runner.ExperimentConfigError,
     r"^config.finetune.batch_size=-2 must be >= 1$"),
    ({"finetune__lr": 0.0}, runner.ExperimentConfigError,
     r"^config.finetune.lr=0.0 must be a finite number > 0$"),
    ({"finetune__lora__rank": -1}, runner.ExperimentConfigError,
     r"^config.finetune.lora.rank=-1 must be >= 0"),
    ({"finetune__data__max_len": 0}, runner.ExperimentConfigError,
     r"^config.finetune.data.max_len=0 must be >= 1$"),
    ({"evaluate__batch_size": 0}, runner.ExperimentConfigError,
     r"^config.evaluate.batch_size=0 must be >= 1$"),
    ({"augment_local__num_samples": 0}, runner.ExperimentConfigError,
     r"^config.augment_local.num_samples must be >= 1, got 0$"),
    ({"augment_global__unit": "word"}, runner.ExperimentConfigError,
     r"^config.augment_global.unit='word'; allowed"),
])
def test_bad_setting_fails_fast_before_any_directory(tmp_path, overrides,
                                                     error, message):
  start = time.perf_counter()
  with pytest.raises(error, match=message):
    runner.run_experiment(_config(**overrides), tmp_path / "w",
                          log=lambda s: None)
  assert time.perf_counter() - start < 2
  assert not (tmp_path / "w").exists()


def test_stage_settings_of_conditions_not_run_are_not_checked(tmp_path):
  # Only the evaluation runs: the fine-tuning config is not its business.
  c = _config(conditions=("pretrained",), finetune__batch_size=-2,
              evaluate__batch_size=0)
  with pytest.raises(runner.ExperimentConfigError,
                     match="config.evaluate.batch_size"):
    runner.run_experiment(c, tmp_path / "w", log=lambda s: None)


def test_workdir_that_cannot_be_created(tmp_path):
  (tmp_path / "file").write_text("a user's file\n")
  start = time.perf_counter()
  with pytest.raises(NotADirectoryError,
                     match=r"workdir .*file/w cannot be created: .*file is"
                     " not a directory"):
    runner.run_experiment(_config(), tmp_path / "file" / "w")
  assert time.perf_counter() - start < 2
  assert (tmp_path / "file").read_text() == "a user's file\n"


def test_read_only_workdir(tmp_path):
  ro = tmp_path / "ro"
  ro.mkdir()
  ro.chmod(0o555)
  try:
    if os.access(ro, os.W_OK):
      pytest.skip("running as root: permissions do not stop writes")
    with pytest.raises(PermissionError, match=r"workdir .*ro/w is not"
                       " writable"):
      runner.run_experiment(_config(), ro / "w")
    assert list(ro.iterdir()) == []
  finally:
    ro.chmod(0o755)


# ------------------------------------------------------ resume the same run


def _fake_stages(monkeypatch, calls):
  def finetune(cfg, workdir):
    calls.append("finetune")
    pathlib.Path(workdir, "export").mkdir(parents=True, exist_ok=True)
    return {"steps": cfg.steps, "final_loss": 1.0, "params_digest": "x",
            "export_dir": str(pathlib.Path(workdir, "export"))}

  def evaluate(cfg, workdir):
    calls.append(f"eval/{cfg.condition}")
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    _, qs = data_io.load_dataset_dir(cfg.data, need_train=False)
    data_io.write_jsonl(workdir / "results.jsonl", [
        dict(id=q.id, split=q.split, condition=cfg.condition,
             logliks=[0.0] * len(q.choices), pred=0, correct=0 in q.answers,
             context_tokens=10, num_tokens=[1] * len(q.choices))
        for q in qs])
    return {"seconds_scoring": 0.1}

  monkeypatch.setattr(runner, "run_finetune", finetune)
  monkeypatch.setattr(runner, "run_evaluation", evaluate)


def test_rerun_with_another_config_refuses_unless_force_resume(
    tmp_path, monkeypatch):
  calls = []
  _fake_stages(monkeypatch, calls)
  conds = ("pretrained", "finetune")
  runner.run_experiment(_config(conditions=conds), tmp_path,
                        log=lambda s: None)
  assert calls == ["finetune", "eval/pretrained", "eval/finetuned"]
  recorded = json.loads((tmp_path / "config.json").read_text())
  assert recorded["finetune"]["lr"] == 3e-3

  calls.clear()
  with pytest.raises(runner.ExperimentConfigError,
                     match=r"holds a run with another config \(differs in"
                     r" finetune.lr, steps\).*--config.force_resume=True"):
    runner.run_experiment(_config(conditions=conds, finetune__lr=1e-3,
                                  steps=5), tmp_path, log=lambda s: None)
  assert calls == []
  assert json.loads((tmp_path / "config.json").read_text()) == recorded

  # Progress, the report's choices and the conditions may change.
  runner.run_experiment(
      _config(conditions=("pretrained",), progress=True, figure_name="fig",
              finetune__log_every=3), tmp_path, log=lambda s: None)
  assert calls == []

  logs = []
  runner.run_experiment(_config(conditions=conds, finetune__lr=1e-3,
                                force_resume=True), tmp_path, log=logs.append)
  assert calls == []  # Finished stages are reused, as asked.
  assert any("warning: config differs" in line and "finetune.lr" in line
             for line in logs)


def test_runner_sets_the_embedded_force_resume(tmp_path):
  c = _config(force_resume=True)
  ft = runner.stage_configs.finetune_config(
      c, seed=0, data_dir=str(tmp_path), augmented_path="", steps=3,
      split_mode="none")
  assert ft.force_resume is True
  with pytest.raises(runner.ExperimentConfigError,
                     match=r"config.finetune.force_resume is set by the"
                     r" experiment; use --config.force_resume"):
    runner.run_experiment(_config(finetune__force_resume=True), tmp_path)
