"""Reading compiled XLA programs: costs with loops counted, cache copies.

Used by `benchmarks/compiled.py` (compile-only analyses at real shapes) and
importable by tests. The HLO text is read by `ftgen.parallel.hlo_stats`
(`parse`, the one HLO reader; its `collectives` lists the collectives):

* `program_cost(compiled)`: XLA's own cost analysis (FLOPs, bytes accessed)
  with every while loop counted as many times as it runs. XLA's
  `cost_analysis()` counts the body of a while loop (`nn.scan` over layers,
  `lax.scan`, `fori_loop`) once, not times its trip count; here each loop
  body is cut out of the module as a program of its own, costed by the same
  XLA cost analysis, and added (trip count - 1) more times, recursively for
  nested loops. A loop whose trip count XLA does not know (a data-dependent
  `while_loop`) is counted once and reported in `unknown_trip_loops`.
* `cache_copies(text, layer_elems, stacked_elems)`: instructions that move a
  whole layer's K or V cache (or the stacked one of all layers) in a decode
  step: copies, transposes, broadcasts, (dynamic-)slices, concatenations,
  converts, and dynamic-update-slices whose update is a whole layer.

The cost of a loop body comes from XLA's own per-instruction rules (in-place
dynamic-update-slices, fusions), through two jaxlib functions that are not
public API (`hlo_module_from_text`, `hlo_module_cost_analysis`); if a jax
version lacks them, or the backend's client cannot cost a module (the GPU
PJRT plugin of jax 0.11.2 cannot), `program_cost` raises
`LoopCostUnavailable` rather than return loop-blind numbers. Both stay here,
not in ftgen: they serve the benchmarks' measurements only, and the first
leans on private jaxlib API.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from ftgen.parallel import hlo_stats

# Opcodes that move data without computing: a whole-cache result from one of
# these is a copy of the cache (bitcasts are free and not counted).
MOVE_OPCODES = frozenset({
    "copy", "transpose", "broadcast", "dynamic-slice", "slice",
    "concatenate", "convert", "copy-start",
})


# --- costs with loops counted ------------------------------------------------


def _cost_dict(cost: Any) -> dict[str, float]:
  if isinstance(cost, (list, tuple)):  # Older jax: one dict per program.
    cost = cost[0] if cost else {}
  return dict(cost or {})


def _sub_module_text(module: hlo_stats.Module, root: str) -> str:
  """An HLO module whose ENTRY is computation `root` (and what it calls)."""
  names = hlo_stats.reachable(module, [root])
  header = module.header[1:]  # Stack-frame tables, if any.
  lines = [f"HloModule body_{root}", *header]
  for name, comp in module.computations.items():
    if name in names and name != root:
      lines += comp.lines + [""]
  root_lines = list(module.computations[root].lines)
  root_lines[0] = "ENTRY " + re.sub(r"^ENTRY\s+", "", root_lines[0])
  return "\n".join(lines + root_lines) + "\n"


class LoopCostUnavailable(RuntimeError):
  """This jax cannot cost a loop body on its own (see the module doc)."""


def _jaxlib_function(name: str) -> Any:
  """jaxlib's `name`, wherever this jax version keeps it."""
  # pylint: disable=g-import-not-at-top
  from jax._src import lib
  for holder in ("_jax", "hlo", "xla_client", "xla_extension"):
    obj = getattr(lib, holder, None)
    obj = getattr(obj, "_xla", obj)  # xla_client._xla in older versions.
    if obj is not None and hasattr(obj, name):
      return getattr(obj, name)
  raise LoopCostUnavailable(
      f"jaxlib has no {name} here: loop bodies cannot be costed on their own,"
      " and XLA's cost analysis would count each loop body once")


def _xla_cost(text: str, client: Any) -> dict[str, float]:
  module = _jaxlib_function("hlo_module_from_text")(text)
  try:
    return _cost_dict(
        _jaxlib_function("hlo_module_cost_analysis")(client, module))
  except Exception as e:  # pylint: disable=broad-except
    # E.g. the GPU PJRT plugin of jax 0.11: "PJRT C API does not support
    # GetHloCostAnalysis".
    raise LoopCostUnavailable(
        f"the {getattr(client, 'platform', '?')} client cannot cost a loop "
        f"body ({type(e).__name__}: {str(e)[:200]}); loop-counted FLOPs and "
        "bytes need the CPU backend (JAX_PLATFORMS=cpu)") from e


@dataclasses.dataclass
class ProgramCost:
  flops: float
  bytes_accessed: float
  transcendentals: float
  xla_flops: float  # XLA's own figures, each loop body counted once.
  xla_bytes_accessed: float
  loops: list[tuple[str, int | None]]  # (body, trip count) of every loop.

  @property
  def unknown_trip_loops(self) -> int:
    return sum(n is None for _, n in self.loops)


_KEYS = ("flops", "bytes accessed", "transcendentals")


def program_cost(compiled: Any) -> ProgramCost:
  """XLA's cost analysis of a compiled program, loops times their trips."""
  base = _cost_dict(compiled.cost_analysis())
  module = hlo_stats.parse(compiled.as_text())
  client = compiled.runtime_executable().client
  body_cost: dict[str, dict[str, float]] = {}
  loops: list[tuple[str, int | None]] = []

  def correction(comp: str) -> dict[str, float]:
    """What XLA's count of `comp` misses: loop bodies' repeated trips."""
    total = dict.fromkeys(_KEYS, 0.0)
    # Loops in `comp` and in what it calls other than through a loop body.
    todo, seen = [comp], set()
    while todo:
      name = todo.pop()
      if name in seen:
        continue
      seen.add(name)
      for inst in module.computations[name].instructions:
        if inst.opcode != "while":
          todo.extend(n for k, ns in inst.calls.items() for n in ns)
          continue
        body = inst.calls["body"][0]
        loops.append((body, inst.trip_count))
        if inst.trip_count is None:
          continue
        if body not in body_cost:
          body_cost[body] = _xla_cost(_sub_module_text(module, body), client)
        inner = correction(body)
        for key in _KEYS:
          total[key] += ((inst.trip_count - 1) * body_cost[body].get(key, 0.0)
                         + inst.trip_count * inner[key])
    return total

  extra = correction(module.entry)
  return ProgramCost(
      flops=base.get("flops", 0.0) + extra["flops"],
      bytes_accessed=base.get("bytes accessed", 0.0) + extra["bytes accessed"],
      transcendentals=(base.get("transcendentals", 0.0)
                       + extra["transcendentals"]),
      xla_flops=base.get("flops", 0.0),
      xla_bytes_accessed=base.get("bytes accessed", 0.0),
      loops=loops)


# --- scans of the instructions -----------------------------------------------


def cache_copies(text: str, layer_elems: int,
                 stacked_elems: int | None = None) -> list[str]:
  """Instructions that move a whole layer's K or V cache, or all layers'.

  Args:
    text: compiled HLO text of a decode step.
    layer_elems: elements of one layer's K (or V) cache, B·K·S·H.
    stacked_elems: elements of the K (or V) cache of all layers, L·B·K·S·H
      (when the cache is stacked; None: only layer-sized arrays count).

  Returns:
    One line per offending instruction, 'computation: opcode shape'
    (inside fusions too: a fused transpose still writes a whole cache). A
    dynamic-update-slice counts when its update is a whole layer (a scan
    stacking its per-layer outputs); an in-place write of the new tokens
    does not.
  """
  sizes = {layer_elems} | ({stacked_elems} if stacked_elems else set())
  module = hlo_stats.parse(text)
  found = []
  for comp in module.computations.values():
    shapes = {i.name: i.shapes for i in comp.instructions}
    for inst in comp.instructions:
      if inst.opcode in MOVE_OPCODES:
        hit = [s for s in inst.shapes if s.elems in sizes]
      elif inst.opcode == "dynamic-update-slice" and len(inst.operands) > 1:
        hit = [s for s in shapes.get(inst.operands[1], [])
               if s.elems in sizes]
      else:
        hit = []
      if hit:
        found.append(f"{comp.name}: {inst.opcode} {hit[0]}")
  return found
