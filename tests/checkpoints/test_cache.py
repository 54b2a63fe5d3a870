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



def _entry(tmp_path, name, nbytes=1000):
  src = tmp_path / f"{name}.gguf"
  src.write_bytes(name.encode() * 10)
  target = cache.entry_dir("models", src, "float32")

  def build(out):
    (out / "weights.bin").write_bytes(b"w" * nbytes)
  return target, _expected(src), build


def test_size_cap_evicts_least_recently_used(tmp_path, monkeypatch):
  a, b, c, d = (_entry(tmp_path, n) for n in "abcd")
  for i, (target, expected, build) in enumerate((a, b, c)):
    assert cache.cached_build(target, expected, build)[1]
    os.utime(target / cache.MANIFEST, (1000 + i, 1000 + i))  # a oldest
  # No cap by default: nothing was evicted.
  assert cache.entries() == sorted([a[0], b[0], c[0]])
  # Using `a` makes it the most recent; a cap of 3 entries then evicts the
  # least recently used one, `b`, when `d` comes.
  assert not cache.cached_build(*a)[1]
  size = sum(f.stat().st_size for f in a[0].iterdir())
  monkeypatch.setenv(cache.MAX_GB_ENV, str((3 * size + 10) / 1e9))
  assert cache.cached_build(*d)[1]
  assert cache.entries() == sorted([a[0], c[0], d[0]])
  # Nothing but complete entries is left beside them.
  assert sorted(p.name for p in a[0].parent.iterdir()) == sorted(
      e[0].name for e in (a, c, d))
  # The entry just built is kept even when it alone exceeds the cap.
  monkeypatch.setenv(cache.MAX_GB_ENV, "1e-9")
  big = _entry(tmp_path, "big", nbytes=5000)
  assert cache.cached_build(*big)[1]
  assert cache.entries() == [big[0]]


@pytest.mark.parametrize("value", ["0", "-1", "lots", "inf"])
def test_bad_size_cap_is_one_line_error_before_building(tmp_path, monkeypatch,
                                                        value):
  monkeypatch.setenv(cache.MAX_GB_ENV, value)
  target, expected, _ = _entry(tmp_path, "a")
  calls = []
  with pytest.raises(ValueError, match=f"{cache.MAX_GB_ENV}='{value}' must"):
    cache.cached_build(target, expected, _builder(calls))
  assert not calls


def test_killed_builds_are_swept(tmp_path):
  target, expected, build = _entry(tmp_path, "a")
  target.parent.mkdir(parents=True)
  # What a kill -9 during an import leaves: a temporary sibling directory.
  old = target.parent / f".{target.name}.k1ll3d"
  (old / "model.safetensors").parent.mkdir()
  (old / "model.safetensors").write_bytes(b"x" * 100)
  os.utime(old, (0, 0))
  fresh = target.parent / ".other.inprogress"  # Another import, running now.
  fresh.mkdir()
  assert cache.cached_build(target, expected, build)[1]
  assert not old.exists() and fresh.is_dir()
  assert sorted(p.name for p in target.parent.iterdir()) == sorted(
      [target.name, fresh.name])
