"""The evaluation workdir: one run at a time (docs/design.md#reliability)."""

import os
import re
import time

import pytest

from ftgen import configs
from ftgen.data import pipeline
from ftgen.data import workdir as workdir_lib
from ftgen.eval import evaluate


def test_second_evaluation_on_a_locked_workdir_fails_at_once(tmp_path):
  data = pipeline.ensure_dataset(configs.load("data:reversals,tiny"),
                                 tmp_path / "data")
  config = configs.load("evaluate:pretrained")
  config.model = "tiny"
  config.data = str(data)
  config.progress = False
  out = tmp_path / "eval"
  assert workdir_lib.made_by_ftgen(workdir_lib.make_dir(out, "test"))
  with workdir_lib.locked(out):
    t0 = time.perf_counter()
    with pytest.raises(workdir_lib.WorkdirBusy, match="^" + re.escape(
        f"another run (pid {os.getpid()}) is using {out}")):
      evaluate.run_evaluation(config, out)
    assert time.perf_counter() - t0 < 1.0
  assert sorted(os.listdir(out)) == [workdir_lib.SENTINEL,
                                     workdir_lib.LOCK_FILE]
