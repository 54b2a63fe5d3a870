"""Tests for ftgen.parallel.distributed (the real initialize is not run)."""

import jax
import pytest

from ftgen.parallel import distributed


def test_disabled_is_a_noop(monkeypatch):
  calls = []
  monkeypatch.setattr(jax.distributed, "initialize",
                      lambda **kw: calls.append(kw))
  assert distributed.maybe_initialize(False) is False
  assert not calls


def test_disabled_with_settings_is_an_error():
  with pytest.raises(ValueError, match="enabled=False"):
    distributed.maybe_initialize(False, coordinator="host:1234")


def test_enabled_calls_initialize_once(monkeypatch):
  calls = []
  monkeypatch.setattr(jax.distributed, "initialize",
                      lambda **kw: calls.append(kw))
  monkeypatch.setattr(distributed, "_initialized", False)
  assert distributed.maybe_initialize(
      True, coordinator="10.0.0.1:1234", num_processes=2, process_id=1
  )
  assert distributed.maybe_initialize(True)
  assert calls == [{
      "coordinator_address": "10.0.0.1:1234",
      "num_processes": 2,
      "process_id": 1,
  }]
