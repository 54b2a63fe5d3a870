"""Collectives of a compiled program, read from its HLO text.

`collectives(hlo_text)` lists every cross-device collective (all-gather,
all-reduce, reduce-scatter, all-to-all, collective-permute, and their async
`-start` forms) with its result shape and dtype, whether it runs inside the
body (or condition) of a `while` loop, directly or through called
computations (a collective in a loop runs once per trip: per layer of an
`nn.scan`, per chunk of the loss in ftgen/models/head.py; the text does not
give the trip count), and, for an all-reduce, whether its result is only
dynamic-sliced: that is how XLA's SPMD partitioner writes a reduce-scatter
(reduce a partial sum into a sharded result); GPU and TPU compilers turn the
pair into one reduce-scatter (their `ReduceScatterCreator` pass), the CPU
compiler has no such pass and runs the all-reduce.

`summarize` groups them by (kind, dtype, in loop, sliced) with counts,
elements and bytes; `compile_partitioned` gives the text right after SPMD
partitioning, before the backend's own rewrites (on CPU, bfloat16
collectives become float32 ones). The FSDP benchmark
(benchmarks/fsdp_collectives.py) and tests/parallel/test_fsdp_collectives.py
read them.

Shapes are per device (the text is after partitioning).
"""

from __future__ import annotations

import collections
import dataclasses
import glob
import math
import os
import re
import tempfile
from typing import Any

KINDS = ("all-gather", "all-reduce", "reduce-scatter", "all-to-all",
         "collective-permute")

_DTYPE_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2,
                "bf16": 2, "s32": 4, "u32": 4, "f32": 4, "s64": 8, "u64": 8,
                "f64": 8, "c64": 8, "c128": 16}

# `%name (args) -> type {` or `ENTRY %name ...{` opens a computation.
_COMPUTATION = re.compile(r"^(ENTRY\s+)?%?([\w.\-]+)\s*[({].*\{\s*$")
# `[ROOT] %name = TYPE op(`: TYPE may be a tuple with spaces.
_INSTRUCTION = re.compile(
    r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(.+?)\s+([a-z][\w\-]*)\(")
_ARRAY = re.compile(r"\b([a-z]+\d*)\[([\d,]*)\]")
_NAME = re.compile(r"%([\w.\-]+)")
_OP_NAME = re.compile(r'op_name="([^"]*)"')
# Attributes naming other computations, e.g. body=%b, to_apply=%f,
# calls=%c, branch_computations={%x, %y}.
_CALLED = re.compile(
    r"\b(body|condition|to_apply|calls|true_computation|false_computation"
    r"|branch_computations)=(\{[%\w.\-, ]*\}|%?[\w.\-]+)")


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


@dataclasses.dataclass
class _Instruction:
  name: str
  type_text: str
  op: str
  operands: list[str]
  op_name: str


def _result_arrays(op: str, type_text: str) -> dict[str, int]:
  """Elements per dtype of the result arrays of one collective."""
  arrays = [(m.group(1),
             math.prod(int(d) for d in m.group(2).split(",") if d))
            for m in _ARRAY.finditer(type_text)]
  if op.endswith("-start") and op != "all-reduce-start" and arrays:
    # all-gather-start / collective-permute-start return (operand, result,
    # ...): the result is the second array.
    arrays = arrays[1:2]
  out: dict[str, int] = {}
  for dtype, n in arrays:
    out[dtype] = out.get(dtype, 0) + n
  return out


def _parse(hlo_text: str):
  """(instructions per computation, callees per computation, while bodies)."""
  instructions = collections.defaultdict(list)
  callees = collections.defaultdict(set)
  loop_roots: set[str] = set()
  current = None
  for line in hlo_text.splitlines():
    if not line.startswith(" "):
      m = _COMPUTATION.match(line)
      if m:
        current = m.group(2)
      continue
    if current is None:
      continue
    m = _INSTRUCTION.match(line)
    if not m:
      continue
    name, type_text, op = m.groups()
    operands = _NAME.findall(line[m.end():])
    op_name = _OP_NAME.search(line)
    instructions[current].append(_Instruction(
        name, type_text, op, operands, op_name.group(1) if op_name else ""))
    for attr, names in _CALLED.findall(line):
      targets = [n.strip(" {}%") for n in names.split(",")]
      callees[current].update(targets)
      if op == "while" and attr in ("body", "condition"):
        loop_roots.update(targets)
  return instructions, callees, loop_roots


def _reachable(roots: set[str], callees) -> set[str]:
  seen, todo = set(), list(roots)
  while todo:
    c = todo.pop()
    if c not in seen:
      seen.add(c)
      todo.extend(callees.get(c, ()))
  return seen


def collectives(hlo_text: str) -> list[Collective]:
  """Every collective of a compiled program's HLO text, in text order."""
  instructions, callees, loop_roots = _parse(hlo_text)
  in_loop = _reachable(loop_roots, callees)
  out = []
  for comp, instrs in instructions.items():
    users = collections.defaultdict(list)
    for ins in instrs:
      for operand in ins.operands:
        users[operand].append(ins.op)
    for ins in instrs:
      kind = ins.op[:-len("-start")] if ins.op.endswith("-start") else ins.op
      if kind not in KINDS:
        continue
      sliced = (kind == "all-reduce" and bool(users[ins.name]) and
                all(u == "dynamic-slice" for u in users[ins.name]))
      for dtype, elements in _result_arrays(ins.op, ins.type_text).items():
        out.append(Collective(kind, ins.name, comp, dtype, elements,
                              comp in in_loop, sliced, ins.op_name))
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
