"""Loads the configs of the repository's `configs/` directory.

`configs/` (top level of the repository) is not a package: each file there
defines `get_config(arg) -> ConfigDict`. This is the one place that turns a
config name into that file's ConfigDict, for launchers, notebooks, tests,
benchmarks and the config files themselves:

  load("experiment:reversals,tiny")
  load("configs/experiment.py:reversals,tiny")   # a path, as launchers take

The directory is, in order: a `config_dir` argument, `$FTGEN_CONFIG_DIR`,
or `configs/` next to the installed `ftgen` package (the editable install of
a checkout).
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import pathlib
import types
from typing import Any

import ml_collections

ENV_VAR = "FTGEN_CONFIG_DIR"

# Keys that were renamed (old dotted leaf -> new dotted key), so an old
# command line gets a one-line pointer instead of a bare "no such key".
RENAMED = {
    "eval_every": "eval.every",
    "eval_splits": "eval.splits",
    "eval_batch_size": "eval.batch_size",
    "eval_max_questions": "eval.max_questions_per_split",
}


class ConfigError(ValueError):
  """An unknown config file, config name or key; the message is one line."""


def directory(explicit: str | os.PathLike[str] | None = None
               ) -> pathlib.Path:
  """The `configs/` directory (see the module docstring for the order)."""
  if explicit:
    return pathlib.Path(explicit)
  if os.environ.get(ENV_VAR):
    return pathlib.Path(os.environ[ENV_VAR])
  return pathlib.Path(__file__).resolve().parent.parent / "configs"


def available(config_dir: str | os.PathLike[str] | None = None
              ) -> tuple[str, ...]:
  """Names of the config files in the configs directory."""
  d = directory(config_dir)
  return tuple(sorted(p.stem for p in d.glob("*.py")
                      if not p.name.startswith("_")))


def _path(name: str, config_dir: str | os.PathLike[str] | None
          ) -> pathlib.Path:
  """A config name (`experiment`) or path (`configs/experiment.py`)."""
  if name.endswith(".py") or os.sep in name or "/" in name:
    path = pathlib.Path(name)
    if not path.is_file():
      raise ConfigError(f"no config file {name}")
    return path
  d = directory(config_dir)
  path = d / f"{name}.py"
  if not path.is_file():
    raise ConfigError(f"no config {name!r} in {d}; available:"
                      f" {', '.join(available(d)) or 'none'}")
  return path


def module(name: str, config_dir: str | os.PathLike[str] | None = None
           ) -> types.ModuleType:
  """The config file `name` (or a path) as a module, freshly executed."""
  path = _path(name, config_dir)
  spec = importlib.util.spec_from_file_location(
      f"ftgen_configs_{path.stem}", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def split_spec(spec: str) -> tuple[str, str | None]:
  """`"NAME_OR_PATH:ARG"` -> (NAME_OR_PATH, ARG or None)."""
  name, sep, arg = spec.partition(":")
  return name, (arg if sep else None)


def load(spec: str, config_dir: str | os.PathLike[str] | None = None
         ) -> ml_collections.ConfigDict:
  """`get_config(ARG)` of config `NAME` for the spec `NAME[:ARG]`.

  Args:
    spec: `experiment:reversals,tiny` or `configs/experiment.py:reversals`.
    config_dir: where named configs live (see `directory()`).

  Raises:
    ConfigError: for an unknown file; the config's own ValueError for an
      unknown ARG (it names the allowed values).
  """
  name, arg = split_spec(spec)
  if not name:
    raise ConfigError(f"empty config name in {spec!r}; use NAME[:ARG] with"
                      f" NAME in {', '.join(available(config_dir))}")
  mod = module(name, config_dir)
  return mod.get_config(arg) if arg is not None else mod.get_config()


def parent(config: Any, dotted: str) -> tuple[Any, str]:
  """(the ConfigDict holding dotted key `dotted`, its last part)."""
  *parents, leaf = dotted.split(".")
  for p in parents:
    config = config[p]
  return config, leaf


def override(config: Any, values: dict[str, Any]) -> Any:
  """Sets dotted keys (`{"data.max_len": 64}`) on `config`; returns it.

  The same overrides as `--config.data.max_len=64`, for notebooks and tests.
  """
  for dotted, value in values.items():
    node, leaf = parent(config, dotted)
    node[leaf] = value
  return config


def _keys(config: Any, prefix: str = "") -> list[str]:
  out = []
  for k, v in config.items():
    out.append(prefix + k)
    if isinstance(v, ml_collections.ConfigDict):
      out += _keys(v, f"{prefix}{k}.")
  return out


def unknown_key(config: Any, key: str) -> str | None:
  """A one-line message when dotted `key` is not in `config`, else None."""
  node = config
  for part in key.split("."):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      break
    node = node[part]
  else:
    return None
  *parents, leaf = key.split(".")
  if leaf in RENAMED:
    new = ".".join(parents + [RENAMED[leaf]])
    return f"config.{key} was renamed: use config.{new}"
  close = difflib.get_close_matches(key, _keys(config), n=1)
  hint = f"; did you mean config.{close[0]}?" if close else ""
  return f"config.{key} does not exist{hint}"


def changes(old: dict[str, Any], new: dict[str, Any], *,
            ignore: tuple[str, ...] = (), prefix: str = "") -> list[str]:
  """Dotted keys whose values differ between two configs in JSON form.

  Resuming compares the config a run was started with against the current
  one with this (docs/reliability.md#resume-only-the-same-run). Keys present
  in only one of them are not reported: a field added to configs/ since the
  run started keeps its old behaviour by default.

  Args:
    old: the recorded config (`json.loads(config.to_json_best_effort())`).
    new: the current config, in the same form.
    ignore: dotted keys (or whole sub-configs) that are not compared.
    prefix: the dotted path of `old` and `new` inside their config.

  Returns:
    The differing dotted keys, sorted.
  """
  out = []
  for k in sorted(set(old) & set(new)):
    key = prefix + k
    if key in ignore:
      continue
    a, b = old[k], new[k]
    if isinstance(a, dict) and isinstance(b, dict):
      out += changes(a, b, ignore=ignore, prefix=f"{key}.")
    elif a != b:
      out.append(key)
  return out
