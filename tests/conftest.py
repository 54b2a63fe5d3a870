"""Test setup: 8 fake CPU devices, set before anything imports jax."""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Keep test runs offline and quiet: no hub lookups, no telemetry.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import importlib  # pylint: disable=g-import-not-at-top
import pathlib  # pylint: disable=g-import-not-at-top
import sys  # pylint: disable=g-import-not-at-top

import hypothesis  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top

# CI runs property tests with a fixed seed so a red run reproduces from its
# commit; local runs keep exploring new examples.
hypothesis.settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
  hypothesis.settings.load_profile("ci")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def repo_root() -> pathlib.Path:
  return REPO_ROOT


@pytest.fixture(scope="session")
def reversal_curse_dir() -> pathlib.Path:
  """The Berglund et al. data beside the checkout (development only)."""
  path = SHARED_DIR / "data" / "reversal_curse" / "data"
  if not path.is_dir():
    pytest.skip(f"reversal-curse data not found at {path}")
  return path


@pytest.fixture(scope="session")
def load_benchmark():
  """Imports benchmarks/NAME.py as a module.

  benchmarks/ has no __init__.py; from the checkout's root it imports as a
  namespace package, as tests/ does.
  """
  if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
  def load(name: str):
    return importlib.import_module(f"benchmarks.{name}")
  return load


@pytest.fixture(scope="session")
def _gcs_emulator_port():
  """The session's local GCS emulator (tests/gcs_emulator.py)."""
  import gcs_emulator  # pylint: disable=g-import-not-at-top
  try:
    port = gcs_emulator.start()
  except ImportError as e:
    pytest.skip(f"gs:// tests need gcp-storage-emulator and gcsfs ({e});"
                " pip install -e '.[test]'")
  yield port
  gcs_emulator.stop()


@pytest.fixture
def gcs_bucket(_gcs_emulator_port, monkeypatch) -> str:
  """`gs://NAME` of a fresh, empty bucket on the local GCS emulator.

  The environment points gcsfs, etils.epath, orbax/tensorstore and
  subprocesses started with `os.environ` at the emulator for the test.
  """
  import gcs_emulator  # pylint: disable=g-import-not-at-top
  for key, value in gcs_emulator.environ(_gcs_emulator_port).items():
    monkeypatch.setenv(key, value)
  return f"gs://{gcs_emulator.new_bucket()}"
