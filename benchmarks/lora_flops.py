"""Compile-only FLOPs and memory of LoRA against full fine-tuning.

XLA's cost analysis of the compiled value_and_grad of the training loss
(`ftgen.train.step.make_loss_fn`, the loss the train step differentiates),
once for LoRA (adapters trained, base weights frozen) and once for full
fine-tuning, at a real width with few layers:

  python benchmarks/lora_flops.py                  # llama3.2-1b, 2 layers
  python benchmarks/lora_flops.py --model=gemma3-270m --vocab_size=0

Nothing runs: both programs are only compiled (float32, so byte counts are not
inflated by CPU bfloat16 upcasts). For the FLOPs the layers are unrolled
(`Decoder(unroll_layers=True)`): XLA's CPU cost analysis counts a loop body
once, not times its trip count (other loops, such as the attention's, are
counted trip by trip with `hlo_analysis.program_cost`); the temporary memory
is the scanned program's (the one training runs). The loss projects onto the vocabulary in one chunk
when `tokens` <= `head.CHUNK_TOKENS` (a loop of one trip, counted exactly). The
vocabulary is cut to `--vocab_size` (0: the preset's) so that the output
projection does not dominate the count. No rematerialization. The last line
printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

# pylint: disable=g-import-not-at-top,wrong-import-position
from benchmarks import hlo_analysis
from ftgen.models import flops
from ftgen.models import presets
from ftgen.models.decoder import Decoder
from ftgen.train import lora as lora_lib
from ftgen.train import step as step_lib
# pylint: enable=g-import-not-at-top,wrong-import-position

ALL_TARGETS = ("q", "k", "v", "o", "gate", "up", "down")


def _compiled(loss_fn, trainable, frozen, batch):
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  return jax.jit(grad_fn).lower(trainable, frozen, batch).compile()


def _flops(compiled) -> float:
  """XLA's FLOPs with loops (the attention's block-pair scans) counted trip
  by trip; where this backend cannot cost a loop body, XLA's own count."""
  try:
    return hlo_analysis.program_cost(compiled).flops
  except hlo_analysis.LoopCostUnavailable:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"])


def _temp_bytes(compiled) -> int | None:
  memory = compiled.memory_analysis()
  return None if memory is None else int(memory.temp_size_in_bytes)


def lora_flop_ratio(model: str = "llama3.2-1b", num_layers: int = 2,
                    tokens: int = 512, vocab_size: int = 1024,
                    rank: int = 16, targets: Sequence[str] = ALL_TARGETS
                    ) -> dict[str, Any]:
  """LoRA / full fine-tuning FLOPs of one loss-and-gradient, compile-only.

  Args:
    model: a preset of `ftgen/models/presets.py`.
    num_layers: layers kept from the preset.
    tokens: one row of this many tokens.
    vocab_size: the vocabulary cut to this size (0: the preset's).
    rank: LoRA rank (alpha = 2 · rank; the scale does not change FLOPs).
    targets: the adapted modules.

  Returns:
    {'ratio', 'lora_flops', 'full_flops' (XLA's counts), 'lora_temp_bytes',
     'full_temp_bytes' (XLA's temporary memory, layers scanned),
     'analytic_lora_flops', 'analytic_full_flops' (`ftgen.models.flops`),
     and the shape}.
  """
  overrides: dict[str, Any] = {"num_layers": num_layers}
  if vocab_size:
    overrides["vocab_size"] = vocab_size
  config = presets.get_preset(model, param_dtype="float32", dtype="float32",
                              **overrides)
  tok = jax.ShapeDtypeStruct((1, tokens), jnp.int32)
  params = nn.unbox(jax.eval_shape(Decoder(config).init, jax.random.key(0),
                                   tok)["params"])
  adapters = jax.eval_shape(lambda: lora_lib.init(
      params, tuple(targets), rank, config.embed_dim, seed=0))
  batch = {"inputs": tok, "targets": tok,
           "weights": jax.ShapeDtypeStruct((1, tokens), jnp.float32),
           "mask": jax.ShapeDtypeStruct((1, tokens), jnp.bool_)}
  lora, full = {}, {}
  # FLOPs of the unrolled layers; memory of the scanned ones (what training
  # runs: unrolled, each layer's slice of the stacked weights is a copy).
  for unroll in (True, False):
    decoder = Decoder(config, unroll_layers=unroll)
    key, figure = ("flops", _flops) if unroll else ("temp_bytes", _temp_bytes)
    lora[key] = figure(_compiled(
        step_lib.make_loss_fn(decoder, rank, 2.0 * rank), adapters, params,
        batch))
    full[key] = figure(_compiled(step_lib.make_loss_fn(decoder), params, {},
                                 batch))
  return {
      "model": model, "num_layers": num_layers, "tokens": tokens,
      "vocab_size": config.vocab_size, "rank": rank,
      "targets": list(targets), "dtype": "float32",
      "ratio": lora["flops"] / full["flops"],
      "lora_flops": lora["flops"], "full_flops": full["flops"],
      "lora_temp_bytes": lora["temp_bytes"],
      "full_temp_bytes": full["temp_bytes"],
      "analytic_lora_flops": flops.train_flops(
          config, tokens, tokens, lora_rank=rank, lora_targets=targets),
      "analytic_full_flops": flops.train_flops(config, tokens, tokens),
  }


def main(argv=None) -> dict[str, Any]:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", default="llama3.2-1b")
  parser.add_argument("--num_layers", type=int, default=2)
  parser.add_argument("--tokens", type=int, default=512)
  parser.add_argument("--vocab_size", type=int, default=1024)
  parser.add_argument("--rank", type=int, default=16)
  parser.add_argument("--targets", default=",".join(ALL_TARGETS))
  args = parser.parse_args(argv)
  result = lora_flop_ratio(args.model, args.num_layers, args.tokens,
                           args.vocab_size, args.rank,
                           tuple(args.targets.split(",")))
  print(json.dumps(result))
  return result


if __name__ == "__main__":
  main()
