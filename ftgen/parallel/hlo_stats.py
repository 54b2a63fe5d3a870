"""Reading compiled XLA programs: the HLO text parser, and their collectives.

The one reader of HLO text in ftgen (benchmarks/hlo_analysis.py costs loops
and finds cache copies with it):

* `parse(text)`: an HLO module's text (`Compiled.as_text()`, or an XLA dump
  such as `compile_partitioned`'s) as computations of instructions (name,
  opcode, result shapes, operands, called computations, while-loop trip
  count, JAX op name); `reachable` and `loop_computations` follow the calls.
* `collectives(text)` lists every cross-device collective (all-gather,
  all-reduce, reduce-scatter, all-to-all, collective-permute, and their
  async `-start` forms) with its result shape and dtype, whether it runs
  inside the body (or condition) of a `while` loop, directly or through
  called computations (a collective in a loop runs once per trip: per layer
  of an `nn.scan`, per chunk of the loss in ftgen/models/head.py), and, for
  an all-reduce, whether its result is only dynamic-sliced: that is how
  XLA's SPMD partitioner writes a reduce-scatter (reduce a partial sum into
  a sharded result); GPU and TPU compilers turn the pair into one
  reduce-scatter (their `ReduceScatterCreator` pass), the CPU compiler has
  no such pass and runs the all-reduce.
* `summarize` groups them by (kind, dtype, in loop, sliced) with counts,
  elements and bytes; `format_table` prints those rows.
* `compile_partitioned` gives the text right after SPMD partitioning, before
  the backend's own rewrites (on CPU, bfloat16 collectives become float32
  ones).

The FSDP benchmark (benchmarks/fsdp_collectives.py) and
tests/parallel/test_fsdp_collectives.py read the collectives. Shapes are per
device (the text is after partitioning).
"""

from __future__ import annotations

import collections
import dataclasses
import glob
import math
import os
import re
import tempfile
from typing import Any, Iterable

KINDS = ("all-gather", "all-reduce", "reduce-scatter", "all-to-all",
         "collective-permute")

_DTYPE_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2,
                "bf16": 2, "s32": 4, "u32": 4, "f32": 4, "s64": 8, "u64": 8,
                "f64": 8, "c64": 8, "c128": 16}

_SHAPE = re.compile(r"\b([a-z]+[0-9]*)\[([0-9,]*)\]")
# `%name (args) -> type {` or `ENTRY %name ...{` opens a computation.
_COMP_START = re.compile(r"^(ENTRY\s+)?%([\w.\-]+)\s*\(.*\{\s*$")
# Attributes naming other computations, e.g. body=%b, to_apply=%f.
_CALLS = re.compile(
    r"\b(calls|to_apply|body|condition|true_computation|false_computation)"
    r"=%([\w.\-]+)")
_BRANCHES = re.compile(r"branch_computations=\{([^}]*)\}")
_TRIP = re.compile(r'"known_trip_count":\{"n":"(\d+)"\}')
_OPERAND = re.compile(r"%([\w.\-]+)")
_OP_NAME = re.compile(r'op_name="([^"]*)"')


# --- the parser --------------------------------------------------------------


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
  calls: dict[str, list[str]]  # Attribute (body, to_apply, ...) -> callees.
  trip_count: int | None  # Of a while loop, when XLA knows it.
  op_name: str  # JAX's name of the op it came from (HLO metadata).
  line: str


@dataclasses.dataclass
class Computation:
  name: str
  is_entry: bool
  lines: list[str]
  instructions: list[Instruction]


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
  op_name = _OP_NAME.search(attrs)
  return Instruction(
      name=name[1:], opcode=opcode.strip(),
      shapes=[Shape(d, tuple(int(x) for x in dims.split(",") if x))
              for d, dims in _SHAPE.findall(type_text)],
      operands=_OPERAND.findall(args[:end]), calls=calls,
      trip_count=int(trip.group(1)) if trip else None,
      op_name=op_name.group(1) if op_name else "", line=line)


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


def reachable(module: Module, roots: Iterable[str]) -> set[str]:
  """Computations called, directly or not, from `roots` (included)."""
  seen: set[str] = set()
  todo = list(roots)
  while todo:
    name = todo.pop()
    if name in seen or name not in module.computations:
      continue
    seen.add(name)
    for inst in module.computations[name].instructions:
      for names in inst.calls.values():
        todo.extend(names)
  return seen


def loop_computations(module: Module) -> set[str]:
  """Computations that run inside some while loop (bodies and callees)."""
  roots = []
  for comp in module.computations.values():
    for inst in comp.instructions:
      if inst.opcode == "while":
        roots += inst.calls.get("body", []) + inst.calls.get("condition", [])
  return reachable(module, roots)


# --- collectives -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Collective:
  """One collective instruction (one dtype of it) of a partitioned program."""

  kind: str  # One of KINDS (an async `-start` is counted as its kind).
  name: str
  computation: str
  dtype: str
  elements: int  # Of the result on one device (a tuple's arrays summed).
  in_loop: bool  # Inside a while body/condition, directly or by a call.
  sliced: bool = False  # An all-reduce whose every user is a dynamic-slice.
  op_name: str = ""  # JAX's name of the op it came from (HLO metadata).

  @property
  def bytes(self) -> int:
    return self.elements * _DTYPE_BYTES.get(self.dtype, 4)


def _result_arrays(inst: Instruction) -> dict[str, int]:
  """Elements per dtype of the result arrays of one collective."""
  shapes = inst.shapes
  if (inst.opcode.endswith("-start") and inst.opcode != "all-reduce-start"
      and shapes):
    # all-gather-start / collective-permute-start return (operand, result,
    # ...): the result is the second array.
    shapes = shapes[1:2]
  out: dict[str, int] = {}
  for s in shapes:
    out[s.dtype] = out.get(s.dtype, 0) + s.elems
  return out


def collectives(hlo_text: str) -> list[Collective]:
  """Every collective of a compiled program's HLO text, in text order."""
  module = parse(hlo_text)
  in_loop = loop_computations(module)
  out = []
  for comp in module.computations.values():
    users = collections.defaultdict(list)
    for inst in comp.instructions:
      for operand in inst.operands:
        users[operand].append(inst.opcode)
    for inst in comp.instructions:
      kind = inst.opcode.removesuffix("-start")
      if kind not in KINDS:
        continue
      sliced = (kind == "all-reduce" and bool(users[inst.name]) and
                all(u == "dynamic-slice" for u in users[inst.name]))
      for dtype, elements in _result_arrays(inst).items():
        out.append(Collective(kind, inst.name, comp.name, dtype, elements,
                              comp.name in in_loop, sliced, inst.op_name))
  return out


def summarize(items: list[Collective]) -> list[dict]:
  """Rows per (kind, dtype, in_loop, sliced): count, elements, bytes, max."""
  groups = collections.defaultdict(list)
  for c in items:
    groups[(c.kind, c.dtype, c.in_loop, c.sliced)].append(c)
  rows = []
  for (kind, dtype, loop, sliced), cs in sorted(groups.items()):
    rows.append(dict(kind=kind, dtype=dtype, in_loop=loop, sliced=sliced,
                     count=len(cs), elements=sum(c.elements for c in cs),
                     bytes=sum(c.bytes for c in cs),
                     max_elements=max(c.elements for c in cs)))
  return rows


def format_table(rows: list[dict]) -> str:
  """A plain-text table of `summarize` rows (per device, one loop trip)."""
  lines = [f"{'kind':<22}{'dtype':<6}{'loop':<6}{'count':>6}"
           f"{'elements':>14}{'MB':>10}{'max elems':>13}"]
  for r in rows:
    kind = r["kind"] + ("+slice" if r["sliced"] else "")
    lines.append(f"{kind:<22}{r['dtype']:<6}{str(r['in_loop']):<6}"
                 f"{r['count']:>6}{r['elements']:>14,}"
                 f"{r['bytes'] / 1e6:>10.1f}{r['max_elements']:>13,}")
  return "\n".join(lines)


def compile_partitioned(lowered: Any) -> tuple[Any, str]:
  """(compiled, HLO text right after SPMD partitioning) of a lowered jit.

  The CPU backend has no bfloat16 collectives or dots: its
  `float-normalization-bf16` pass rewrites every bfloat16 all-gather and
  all-reduce into convert -> float32 collective -> convert, so the final
  text (`compiled.as_text()`) shows float32 collectives whatever the program
  asked for. The partitioner's output is what a GPU or TPU compiles its
  collectives from; XLA writes it out when asked to dump that pass, which
  this does into a temporary directory.
  """
  with tempfile.TemporaryDirectory() as tmp:
    compiled = lowered.compile(compiler_options={
        "xla_dump_to": tmp,
        "xla_dump_hlo_pass_re": "spmd-partitioning"})
    paths = sorted(glob.glob(
        os.path.join(tmp, "*after_spmd-partitioning*.txt")))
    if not paths:
      raise RuntimeError("XLA wrote no after_spmd-partitioning dump (a mesh"
                         " of one device is not partitioned)")
    with open(paths[-1]) as f:
      text = f.read()
  return compiled, text
