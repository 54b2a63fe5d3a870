"""Reading compiled XLA programs: costs with loops counted, copies, collectives.

Used by `benchmarks/compiled.py` (compile-only analyses at real shapes) and
importable by tests:

* `parse(text)`: the compiled HLO text (`jax.jit(f).lower(...).compile()
  .as_text()`) as computations of instructions (name, opcode, result shapes,
  operands, called computations, while-loop trip counts).
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
* `collectives(text)`: all-reduces, all-gathers, reduce-scatters with their
  element counts, dtypes and whether they sit inside a while loop.

The cost of a loop body comes from XLA's own per-instruction rules (in-place
dynamic-update-slices, fusions), through two jaxlib functions that are not
public API (`hlo_module_from_text`, `hlo_module_cost_analysis`); if a jax
version lacks them, or the backend's client cannot cost a module (the GPU
PJRT plugin of jax 0.11.2 cannot), `program_cost` raises
`LoopCostUnavailable` rather than return loop-blind numbers.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Iterable, Sequence

# Opcodes that move data without computing: a whole-cache result from one of
# these is a copy of the cache (bitcasts are free and not counted).
MOVE_OPCODES = frozenset({
    "copy", "transpose", "broadcast", "dynamic-slice", "slice",
    "concatenate", "convert", "copy-start",
})
COLLECTIVE_OPCODES = {
    "all-reduce": "all-reduce", "all-reduce-start": "all-reduce",
    "all-gather": "all-gather", "all-gather-start": "all-gather",
    "reduce-scatter": "reduce-scatter",
    "collective-permute": "collective-permute",
    "collective-permute-start": "collective-permute",
    "all-to-all": "all-to-all",
}

_SHAPE = re.compile(r"\b([a-z]+[0-9]*)\[([0-9,]*)\]")
_COMP_START = re.compile(r"^(ENTRY\s+)?%([\w.\-]+)\s*\(.*\{\s*$")
_CALLS = re.compile(
    r"\b(calls|to_apply|body|condition|true_computation|false_computation)"
    r"=%([\w.\-]+)")
_BRANCHES = re.compile(r"branch_computations=\{([^}]*)\}")
_TRIP = re.compile(r'"known_trip_count":\{"n":"(\d+)"\}')
_OPERAND = re.compile(r"%([\w.\-]+)")


@dataclasses.dataclass(frozen=True)
class Shape:
  dtype: str
  dims: tuple[int, ...]

  @property
  def elems(self) -> int:
    return math.prod(self.dims)

  def __str__(self) -> str:
    return f"{self.dtype}[{','.join(map(str, self.dims))}]"


@dataclasses.dataclass
class Instruction:
  """One HLO instruction; `shapes` has one entry per tuple element."""

  name: str
  opcode: str
  shapes: list[Shape]
  operands: list[str]
  calls: dict[str, list[str]]
  trip_count: int | None
  line: str


@dataclasses.dataclass
class Computation:
  name: str
  is_entry: bool
  lines: list[str]
  instructions: list[Instruction]

  def by_name(self) -> dict[str, Instruction]:
    return {i.name: i for i in self.instructions}


@dataclasses.dataclass
class Module:
  header: list[str]  # Lines before the first computation (stack frames).
  computations: dict[str, Computation]
  entry: str


def _split_type(rest: str) -> tuple[str, str]:
  """'TYPE opcode(...)...' -> (TYPE, 'opcode(...)...'); TYPE may be a tuple."""
  rest = rest.lstrip()
  if rest.startswith("("):
    depth = 0
    for i, ch in enumerate(rest):
      depth += ch == "("
      depth -= ch == ")"
      if depth == 0:
        return rest[:i + 1], rest[i + 1:].lstrip()
  head, _, tail = rest.partition(" ")
  return head, tail


def _parse_instruction(line: str) -> Instruction | None:
  body = line.strip()
  if body.startswith("ROOT "):
    body = body[5:]
  name, eq, rest = body.partition(" = ")
  if not eq or not name.startswith("%"):
    return None
  type_text, rest = _split_type(rest)
  opcode, paren, args = rest.partition("(")
  if not paren:
    return None
  # Operands: up to the parenthesis closing the opcode's.
  depth, end = 1, len(args)
  for i, ch in enumerate(args):
    depth += ch == "("
    depth -= ch == ")"
    if depth == 0:
      end = i
      break
  attrs = args[end:]
  calls: dict[str, list[str]] = {}
  for kind, callee in _CALLS.findall(attrs):
    calls.setdefault(kind, []).append(callee)
  for group in _BRANCHES.findall(attrs):
    calls.setdefault("branch", []).extend(_OPERAND.findall(group))
  trip = _TRIP.search(attrs)
  return Instruction(
      name=name[1:], opcode=opcode.strip(),
      shapes=[Shape(d, tuple(int(x) for x in dims.split(",") if x))
              for d, dims in _SHAPE.findall(type_text)],
      operands=_OPERAND.findall(args[:end]), calls=calls,
      trip_count=int(trip.group(1)) if trip else None, line=line)


def parse(text: str) -> Module:
  """The computations of an HLO module's text (as `Compiled.as_text()`)."""
  header: list[str] = []
  comps: dict[str, Computation] = {}
  entry = ""
  current: Computation | None = None
  for line in text.splitlines():
    if current is None:
      m = _COMP_START.match(line)
      if m:
        current = Computation(m.group(2), bool(m.group(1)), [line], [])
        if current.is_entry:
          entry = current.name
      elif not comps:
        header.append(line)
      continue
    current.lines.append(line)
    if line.strip() == "}":
      comps[current.name] = current
      current = None
      continue
    inst = _parse_instruction(line)
    if inst is not None:
      current.instructions.append(inst)
  if not entry:
    raise ValueError("no ENTRY computation in the HLO text")
  return Module(header, comps, entry)


def _callees(module: Module, name: str, kinds: Iterable[str] | None = None
             ) -> list[str]:
  out = []
  for inst in module.computations[name].instructions:
    for kind, names in inst.calls.items():
      if kinds is None or kind in kinds:
        out.extend(names)
  return out


def reachable(module: Module, roots: Iterable[str]) -> set[str]:
  """Computations called, directly or not, from `roots` (included)."""
  seen: set[str] = set()
  todo = list(roots)
  while todo:
    name = todo.pop()
    if name in seen or name not in module.computations:
      continue
    seen.add(name)
    todo.extend(_callees(module, name))
  return seen


def loop_computations(module: Module) -> set[str]:
  """Computations that run inside some while loop (bodies and callees)."""
  roots = []
  for comp in module.computations.values():
    for inst in comp.instructions:
      if inst.opcode == "while":
        roots += inst.calls.get("body", []) + inst.calls.get("condition", [])
  return reachable(module, roots)


# --- costs with loops counted ------------------------------------------------


def _cost_dict(cost: Any) -> dict[str, float]:
  if isinstance(cost, (list, tuple)):  # Older jax: one dict per program.
    cost = cost[0] if cost else {}
  return dict(cost or {})


def _sub_module_text(module: Module, root: str) -> str:
  """An HLO module whose ENTRY is computation `root` (and what it calls)."""
  names = reachable(module, [root])
  header = [l for l in module.header[1:]]  # Stack-frame tables, if any.
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
  module = parse(compiled.as_text())
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
  module = parse(text)
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


@dataclasses.dataclass(frozen=True)
class Collective:
  kind: str  # all-reduce, all-gather, reduce-scatter, ...
  dtype: str
  elements: int
  in_loop: bool
  computation: str


def collectives(text: str) -> list[Collective]:
  """Every collective of a compiled (SPMD-partitioned) program."""
  module = parse(text)
  in_loop = loop_computations(module)
  out = []
  for comp in module.computations.values():
    for inst in comp.instructions:
      kind = COLLECTIVE_OPCODES.get(inst.opcode)
      if kind is None or not inst.shapes:
        continue
      # An async start's tuple holds its operands and results: the largest
      # element is the result of a gather, the buffer of a reduce.
      shape = max(inst.shapes, key=lambda s: s.elems)
      out.append(Collective(kind, shape.dtype, shape.elems,
                            comp.name in in_loop, comp.name))
  return out


def count_ops(text: str, opcodes: Sequence[str]) -> int:
  """Instructions with one of `opcodes`, anywhere in the module."""
  wanted = set(opcodes)
  return sum(inst.opcode in wanted
             for comp in parse(text).computations.values()
             for inst in comp.instructions)
