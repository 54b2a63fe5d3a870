"""What every launch script shares: its flags, config loading and errors.

Each launcher is `--config=configs/NAME.py:ARG [--config.KEY=VALUE ...]
--workdir=DIR`; it checks that the workdir can be written, calls
`main(config, workdir)` (exactly one library call), and a bad setting or
input ends the run with one line, `error: ...` (exit code 1): ftgen's own
error types, ValueError, KeyError, ImportError (a missing model package) and
OSError (docs/reliability.md#one-line-errors). `--traceback`, or the
environment variable FTGEN_TRACEBACK=1, shows the whole traceback as well.

Configs load with `ftgen.configs.load`, so `--config=NAME:ARG` (a name in
the checkout's configs/) works as well as a path.

A launcher that runs under `jax.distributed` defines its flags with
`define_multihost_flags` (`--multihost`, `--coordinator_address`,
`--num_processes`, `--process_id`) and calls `initialize_multihost` before
anything touches the jax backend.
"""

import os
import re
import sys
import traceback
from typing import Any, Callable

from absl import app
from absl import flags
from ml_collections import config_flags

from ftgen import configs
from ftgen.data import io
from ftgen.parallel import distributed

_MULTIHOST_FLAGS = ("multihost", "coordinator_address", "num_processes",
                    "process_id")

_TRACEBACK = flags.DEFINE_bool(
    "traceback", False, "On an error, show the traceback, not one line"
    " (also: environment variable FTGEN_TRACEBACK=1).")
TRACEBACK_ENV = "FTGEN_TRACEBACK"
# Errors that mean a bad setting or input, besides every error type ftgen
# defines (see _expected): reported in one line.
_EXPECTED = (ValueError, KeyError, ImportError, OSError)


def _traceback_wanted(argv: list[str] | None = None) -> bool:
  if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
    return True
  if argv is not None:
    return "--traceback" in argv
  return _TRACEBACK.value


class Error(Exception):
  """A bad setting or input that a launcher reports in one line."""


class _ConfigParser(flags.ArgumentParser):
  """`--config=SPEC` through ftgen.configs.load (locked)."""

  def parse(self, argument: str) -> Any:
    config = configs.load(argument)
    config.lock()
    return config

  def flag_type(self) -> str:
    return "config object"


def define_flags(config_help: str, workdir_help: str
                 ) -> tuple[flags.FlagHolder, flags.FlagHolder]:
  """Defines the required --config and --workdir flags."""
  config = config_flags.DEFINE_config_file("config", None, config_help)
  # config_flags keeps its own `--config.KEY=VALUE` overrides; only the file
  # loading is replaced, so every launcher shares ftgen's one loader.
  flags.FLAGS["config"].parser = _ConfigParser()
  workdir = flags.DEFINE_string("workdir", None, workdir_help)
  flags.mark_flags_as_required(["config", "workdir"])
  return config, workdir


def define_multihost_flags() -> None:
  """Defines --multihost and the settings of jax.distributed.initialize()."""
  flags.DEFINE_bool(
      "multihost", False, "Call jax.distributed.initialize() before anything"
      " (Cloud TPU pod slices, multi-node GPU, several processes on one"
      " machine); every process runs the same command.")
  flags.DEFINE_string(
      "coordinator_address", None, "With --multihost: HOST:PORT of process"
      " 0 (absent: from the TPU or cluster environment).")
  flags.DEFINE_integer(
      "num_processes", None, "With --multihost: how many processes (absent:"
      " from the environment).")
  flags.DEFINE_integer(
      "process_id", None, "With --multihost: this process's index, 0 .."
      " num_processes - 1 (absent: from the environment).")


def initialize_multihost() -> bool:
  """`ftgen.parallel.distributed.maybe_initialize` with the flags'
  settings; whether jax.distributed was initialized."""
  values = {name: flags.FLAGS[name].value for name in _MULTIHOST_FLAGS}
  given = [f"--{name}" for name in _MULTIHOST_FLAGS[1:]
           if values[name] is not None]
  if given and not values["multihost"]:
    raise Error(f"{', '.join(given)} need --multihost")
  return distributed.maybe_initialize(
      values["multihost"], values["coordinator_address"],
      values["num_processes"], values["process_id"])


def _first_line(e: BaseException) -> str:
  # A KeyError's str() is the repr of its key; show the message itself.
  text = str(e.args[0] if isinstance(e, KeyError) and e.args else e).strip()
  return text.splitlines()[0] if text else type(e).__name__


def _override_error(argv: list[str]) -> str | None:
  """The message for the first `--config.KEY` the config lacks, if any."""
  spec = next((a.split("=", 1)[1] for a in argv
               if a.startswith("--config=")), None)
  if spec is None:
    return None
  try:
    config = configs.load(spec)
  except ValueError as e:
    return _first_line(e)
  for arg in argv:
    m = re.match(r"^--?(?:no)?config\.([^=]+)", arg)
    if m:
      message = configs.unknown_key(config, m.group(1))
      if message:
        return message
  return None


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with one-line errors (no traceback)."""
  try:
    return flags.FLAGS(argv)
  except Exception as e:  # pylint: disable=broad-except
    if _traceback_wanted(argv):
      raise
    # An unknown --config.KEY surfaces as ml_collections' multi-line
    # AttributeError; name the key (and its new name if it was renamed).
    message = None
    if isinstance(e, (AttributeError, KeyError)):
      message = _override_error(argv)
    sys.exit(f"error: {message or _first_line(e)}")


def _expected(e: BaseException,
              errors: tuple[type[BaseException], ...]) -> bool:
  """Whether `e` is a bad setting or input rather than a bug in ftgen."""
  # Every error class ftgen defines names a bad input (ConfigError,
  # DataError, GGUFError, StageUnavailable, ...), whatever its base class.
  ftgen_type = any(t.__module__.split(".")[0] == "ftgen"
                   for t in type(e).__mro__)
  return ftgen_type or isinstance(e, (Error, *_EXPECTED, *errors))


def _one_line(e: BaseException) -> str:
  # A KeyError's str() is the repr of its key; show the message itself.
  text = str(e.args[0] if isinstance(e, KeyError) and e.args else e)
  return " ".join(line.strip() for line in text.splitlines()
                  if line.strip()) or type(e).__name__


def run(main: Callable[[Any, str], Any],
        errors: tuple[type[BaseException], ...] = ()) -> None:
  """Parses flags, checks the workdir and calls `main(config, workdir)`.

  Args:
    main: the launcher's body; it calls one library function.
    errors: more exceptions that mean a bad setting or input; like ftgen's
      own and `_EXPECTED`, reported in one line (`error: ...`, exit code 1),
      after the traceback when it is asked for.
  """
  def _main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
      workdir = flags.FLAGS["workdir"].value
      io.check_writable_dir(workdir)
      main(flags.FLAGS["config"].value, workdir)
    except Exception as e:  # pylint: disable=broad-except
      if not _expected(e, errors):
        raise  # A bug: its traceback.
      if _traceback_wanted():
        traceback.print_exc()
      sys.exit(f"error: {_one_line(e)}")
  app.run(_main, flags_parser=_parse_flags)
