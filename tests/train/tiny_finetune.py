"""The tiny fine-tuning config the tests in tests/train start from.

Quiet (no progress bar), no HF export, no in-training evaluation, one
device; keyword overrides name nested keys with `__`
(`data__max_len=64` is `--config.data.max_len=64`).
"""

from ftgen import configs


def config(name: str = "reversals", **overrides):
  """`configs/finetune.py:NAME,tiny` with the test defaults and overrides."""
  c = configs.load(f"finetune:{name},tiny")
  c.progress = False
  c.export_hf = False
  c.eval.every = -1
  c.num_devices = 1
  return configs.override(
      c, {k.replace("__", "."): v for k, v in overrides.items()})
