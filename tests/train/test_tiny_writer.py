"""`tiny-writer`: built once into the cache, and what it writes."""

import json
import pathlib

import numpy as np

from ftgen import configs
from ftgen.augment import run as augment
from ftgen.checkpoints import hf
from ftgen.checkpoints import registry
from ftgen.checkpoints import sources
from ftgen.data import pipeline
from ftgen.data import workdir as workdir_lib
from ftgen.models import tiny
from ftgen.train import tiny_writer


def test_writer_is_built_once_and_loads_as_the_tiny_architecture():
  registry.validate_name(sources.TINY_WRITER)
  path = tiny_writer.ensure()
  assert path == sources.tiny_writer_dir()
  before = (path / "model.safetensors").stat().st_mtime_ns
  logs = []
  assert tiny_writer.ensure(logs.append) == path and not logs  # Not rebuilt.
  assert (path / "model.safetensors").stat().st_mtime_ns == before
  loaded = registry.load_model(sources.TINY_WRITER)
  random = registry.load_model("tiny")
  assert loaded.config.num_params() == random.config.num_params()
  assert loaded.tokenizer.vocab_size == random.tokenizer.vocab_size
  assert workdir_lib.made_by_ftgen(path)


def test_writer_samples_survive_post_processing(tmp_path):
  """What a random tiny model cannot do: the tiny experiments' augmented
  conditions need statements that pass the same filters as a real
  model's (whole sentences, not copies of the prompt)."""
  data = pipeline.ensure_dataset(configs.load("data:reversals,tiny"),
                                 tmp_path / "data")
  exp = configs.load("experiment:reversals,tiny")
  assert exp.augment_model == sources.TINY_WRITER
  for strategy in ("local", "global"):
    cfg = configs.load(f"augment:reversals,{strategy},tiny")
    cfg.data = str(data)
    cfg.model = sources.TINY_WRITER
    for key in ("max_items", "num_samples", "max_new_tokens"):
      cfg[key] = exp[f"augment_{strategy}"][key]
    report = augment.run(cfg, data, tmp_path / strategy, log=lambda _: None)
    assert report["postprocess"]["kept"] >= 1, report["postprocess"]
    kept = [json.loads(l)["text"] for l in
            (tmp_path / strategy / "train.jsonl").read_text().splitlines()]
    assert kept and all(t[-1] in ".!?" and len(t.split()) >= 3 for t in kept)


def test_build_trains_the_tiny_model_and_ships_its_export(tmp_path):
  out = tmp_path / "writer"
  summary = tiny_writer.build(configs.load("tiny_writer:tiny"),
                              tmp_path / "run", out)
  assert summary["steps"] == 4 and np.isfinite(summary["final_loss"])
  assert workdir_lib.made_by_ftgen(out)
  config = hf.load_hf_config(out)
  params = hf.load_hf_params(out, config, "float32")
  start = tiny.tiny_params(registry.model_config("tiny"), seed=0)
  emb = np.asarray(params["embedder"]["embedding"])
  assert emb.shape == np.asarray(start["embedder"]["embedding"]).shape
  assert not np.allclose(emb, np.asarray(start["embedder"]["embedding"]))
  docs = tiny_writer.corpus_documents()
  assert len(docs) == tiny_writer.NUM_DOCUMENTS
  assert all(len(d["text"].splitlines()) == 3 for d in docs)
  # A rebuild replaces its own export (and nothing else).
  tiny_writer.build(configs.load("tiny_writer:tiny"), tmp_path / "run2", out)
  assert sorted(p.name for p in pathlib.Path(out).iterdir()) == sorted(
      p.name for p in tiny_writer.ensure().iterdir())
