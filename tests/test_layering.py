"""The package layering of ftgen, checked on the source with `ast`.

Layers, lowest first; a module imports only its own layer or lower ones:

  data (pure numpy/python: no jax)
  models (the architecture; never checkpoints)
  parallel (meshes and shardings of model params)
  checkpoints (model name -> params + tokenizer)
  eval, sample
  train (evaluates during training through ftgen.eval)
  augment
  experiments

Besides the direction, every ftgen import sits at the top of its module,
no `except ImportError` guards an ftgen import, and only ftgen/testing
imports ftgen.testing.
"""

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "ftgen"

RANK = {
    "data": 0,
    "configs": 0,
    "models": 1,
    "parallel": 2,
    "checkpoints": 3,
    "eval": 4,
    "sample": 4,
    "train": 5,
    "augment": 6,
    "experiments": 7,
    # Test helpers may use anything; nothing else may use them (below).
    "testing": 8,
}

# Imports that go against the layers, each with its reason.
ALLOWED_UPWARD = {
    # The nonsense-word filter needs the target model's vocabulary: the GGUF
    # file located as for loading the model (sources) and its header reader.
    # Neither imports jax (test_data_imports_no_jax).
    ("ftgen.data.vocab", "ftgen.checkpoints.sources"),
    ("ftgen.data.vocab", "ftgen.checkpoints.gguf"),
}

# Function-level ftgen imports, each with its reason.
ALLOWED_LOCAL = {}


def _modules():
  for path in sorted(ROOT.rglob("*.py")):
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    if parts[-1] == "__init__":
      parts = parts[:-1]
    yield ".".join(parts), path


def _ftgen_imports(tree: ast.AST, module: str):
  """(imported ftgen module, node) for each import of ftgen in `tree`."""
  package = module.rsplit(".", 1)[0]
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        if alias.name.split(".")[0] == "ftgen":
          yield alias.name, node
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:  # relative import
        base = ".".join(package.split(".")[:len(package.split(".")) -
                                            node.level + 1] + [base])
        base = base.rstrip(".")
      if base.split(".")[0] != "ftgen":
        continue
      for alias in node.names:
        # `from ftgen.x import y`: y may be a module or a name in ftgen.x.
        candidate = f"{base}.{alias.name}"
        yield (candidate if _is_module(candidate) else base), node


def _is_module(name: str) -> bool:
  rel = pathlib.Path(*name.split(".")[1:])
  return ((ROOT / rel).with_suffix(".py").is_file() or
          (ROOT / rel / "__init__.py").is_file())


def _subpackage(module: str) -> str | None:
  parts = module.split(".")
  if len(parts) < 2:
    return None
  return parts[1]


def _all_imports():
  out = []
  for module, path in _modules():
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out += [(module, path, tree, name, node)
            for name, node in _ftgen_imports(tree, module)]
  return out


IMPORTS = _all_imports()


def test_every_subpackage_has_a_layer():
  packages = {_subpackage(m) for m, _ in _modules()} - {None}
  missing = sorted(p for p in packages if p not in RANK)
  assert not missing, (
      f"add {missing} to RANK in tests/test_layering.py (and to the layer"
      " list of its docstring)")


def test_imports_follow_the_layers():
  bad = []
  for module, _, _, name, node in IMPORTS:
    src, dst = _subpackage(module), _subpackage(name)
    if src is None or dst is None or src == dst:
      continue
    if RANK[dst] > RANK[src] and (module, name) not in ALLOWED_UPWARD:
      bad.append(f"{module}:{node.lineno} imports {name} ({src} is below"
                 f" {dst})")
  assert not bad, "\n".join(bad)


def test_allow_lists_are_current():
  found = {(m, n) for m, _, _, n, _ in IMPORTS}
  assert ALLOWED_UPWARD <= found, ALLOWED_UPWARD - found
  local = {(m, n) for m, _, tree, n, node in IMPORTS
           if node.col_offset > 0}
  assert set(ALLOWED_LOCAL) <= local, set(ALLOWED_LOCAL) - local


def test_models_never_import_checkpoints():
  bad = [f"{m}:{node.lineno} {n}" for m, _, _, n, node in IMPORTS
         if _subpackage(m) == "models" and _subpackage(n) == "checkpoints"]
  assert not bad, bad


def test_only_testing_imports_testing():
  bad = [f"{m}:{node.lineno}" for m, _, _, n, node in IMPORTS
         if _subpackage(n) == "testing" and _subpackage(m) != "testing"]
  assert not bad, "library code imports ftgen.testing: " + ", ".join(bad)


def test_ftgen_imports_are_at_module_top():
  bad = []
  for module, path, tree, name, node in IMPORTS:
    top_level = any(node is n for n in tree.body)
    if not top_level and (module, name) not in ALLOWED_LOCAL:
      bad.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} {name}")
  assert not bad, (
      "function-level ftgen imports (move them to the top, or add them to"
      " ALLOWED_LOCAL with the reason):\n" + "\n".join(bad))


def test_no_import_error_guard_around_ftgen():
  bad = []
  for module, path in _modules():
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
      if not isinstance(node, ast.Try):
        continue
      catches = set()
      for handler in node.handlers:
        types = handler.type
        elts = types.elts if isinstance(types, ast.Tuple) else [types]
        catches |= {ast.unparse(t) for t in elts if t is not None}
        if handler.type is None:
          catches.add("<bare>")
      if not catches & {"ImportError", "ModuleNotFoundError", "<bare>",
                        "Exception", "BaseException"}:
        continue
      guarded = [n for body in node.body for n, _ in
                 _ftgen_imports(ast.Module(body=[body], type_ignores=[]),
                                module)]
      if guarded:
        bad.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}"
                   f" guards {guarded}")
  assert not bad, bad


@pytest.mark.parametrize("module", sorted(
    m for m, _ in _modules() if _subpackage(m) == "data"))
def test_data_imports_no_jax(module):
  code = (f"import sys; import {module}; "
          "bad = [m for m in ('jax', 'flax', 'optax', 'torch') "
          "if m in sys.modules]; print(bad); assert not bad, bad")
  result = subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True, timeout=120, check=False)
  assert result.returncode == 0, result.stdout + result.stderr[-2000:]


def test_checker_sees_a_violation(tmp_path):
  """The checks above would fail on a bad module (they are not vacuous)."""
  source = (
      "def f():\n"
      "  try:\n"
      "    from ftgen.testing import gguf_writer\n"
      "  except ImportError:\n"
      "    pass\n")
  tree = ast.parse(source)
  found = list(_ftgen_imports(tree, "ftgen.models.x"))
  assert [n for n, _ in found] == ["ftgen.testing.gguf_writer"]
  assert not any(found[0][1] is n for n in tree.body)
