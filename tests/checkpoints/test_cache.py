"""The import cache: built once, rebuilt when the source changes, atomic."""

import os

import pytest

from ftgen.checkpoints import cache


@pytest.fixture(autouse=True)
def _cache_root(tmp_path, monkeypatch):
  monkeypatch.setenv("FTGEN_CACHE", str(tmp_path / "cache"))


def _expected(src):
  return {"source": cache.fingerprint(src), "importer_version": "1"}


def _builder(calls):
  def build(out):
    calls.append(out)
    (out / "weights.bin").write_text(f"built {len(calls)}")
  return build


def test_root_follows_env(tmp_path):
  assert cache.cache_root() == tmp_path / "cache"


def test_built_once_then_reused(tmp_path):
  src = tmp_path / "model.gguf"
  src.write_bytes(b"x" * 1000)
  target = cache.entry_dir("models", src, "float32")
  calls = []
  d1, built1 = cache.cached_build(target, _expected(src), _builder(calls))
  d2, built2 = cache.cached_build(target, _expected(src), _builder(calls))
  assert (built1, built2) == (True, False) and d1 == d2 == target
  assert len(calls) == 1 and (target / "weights.bin").read_text() == "built 1"
  # No temporary directories are left beside the entry.
  assert sorted(p.name for p in target.parent.iterdir()) == [target.name]


def test_changed_source_rebuilds(tmp_path):
  src = tmp_path / "model.gguf"
  src.write_bytes(b"a" * 1000)
  target = cache.entry_dir("models", src, "float32")
  calls = []
  cache.cached_build(target, _expected(src), _builder(calls))
  # Same size and mtime, different bytes: the hash prefix catches it.
  stat = src.stat()
  src.write_bytes(b"b" * 1000)
  os.utime(src, ns=(stat.st_atime_ns, stat.st_mtime_ns))
  _, built = cache.cached_build(target, _expected(src), _builder(calls))
  assert built and (target / "weights.bin").read_text() == "built 2"
  # A touched file (new mtime) also rebuilds; an unchanged one does not.
  os.utime(src, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
  assert cache.cached_build(target, _expected(src), _builder(calls))[1]
  assert not cache.cached_build(target, _expected(src), _builder(calls))[1]
  # So does a new importer version.
  assert cache.cached_build(target, {**_expected(src), "importer_version": "2"},
                            _builder(calls))[1]
  assert len(calls) == 4


def test_failed_build_leaves_nothing(tmp_path):
  src = tmp_path / "model.gguf"
  src.write_bytes(b"x")
  target = cache.entry_dir("models", src, "float32")

  def explode(out):
    (out / "half.bin").write_text("partial")
    raise RuntimeError("interrupted")

  with pytest.raises(RuntimeError):
    cache.cached_build(target, _expected(src), explode)
  assert not target.exists()
  assert list(target.parent.iterdir()) == []


def test_half_written_entry_is_never_used(tmp_path):
  src = tmp_path / "model.gguf"
  src.write_bytes(b"x")
  target = cache.entry_dir("models", src, "float32")
  target.mkdir(parents=True)
  (target / "weights.bin").write_text("partial, no manifest")
  calls = []
  _, built = cache.cached_build(target, _expected(src), _builder(calls))
  assert built and (target / "weights.bin").read_text() == "built 1"
  # A corrupt manifest counts as missing.
  (target / cache.MANIFEST).write_text("{not json")
  assert cache.cached_build(target, _expected(src), _builder(calls))[1]


def test_entry_dir_depends_on_path_and_variant(tmp_path):
  a, b = tmp_path / "a" / "m.gguf", tmp_path / "b" / "m.gguf"
  assert (cache.entry_dir("models", a, "float32") !=
          cache.entry_dir("models", b, "float32"))
  assert (cache.entry_dir("models", a, "float32") !=
          cache.entry_dir("models", a, "bfloat16"))

