"""Activation-buffer planning the way STM32Cube.AI's code generator and TFLite Micro do it.

1. Padding folding: a PAD whose consumers are all convolutions/poolings (`Op.absorbs_padding`)
   costs no buffer; the consumers read the unpadded input and apply the zeros themselves.
2. Aliasing: reshape-like ops (`Role.VIEW`) reuse their input buffer.
3. In place: an element-wise op (`Role.ELEMENTWISE`) writes over its first input whose buffer dies
   at that op, when the output has the same size as that buffer.
4. Lifetimes: a buffer lives from the step that writes it (graph inputs: step 0) to the last step
   that reads it (graph outputs: the last step), inclusive, so an op's inputs and outputs never
   overlap. Inputs and outputs are inside the arena (`--allocate-inputs/--allocate-outputs`).
5. Greedy packing (TFLM GreedyMemoryPlanner): buffers sorted largest first; each goes to the lowest
   `alignment`-aligned offset that does not collide with an already placed buffer alive at the
   same time. The arena is the highest end offset.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engine.footprint.graph import Graph, Role, Tensor

DEFAULT_ALIGNMENT = 4


@dataclass(frozen=True)
class Buffer:
    """One arena region shared by one or more aliased tensors."""

    tensors: tuple[str, ...]
    size: int
    first: int
    last: int
    offset: int = 0


@dataclass(frozen=True)
class MemoryPlan:
    """Placed buffers, the arena size and the bytes live at each op step."""

    buffers: list[Buffer]
    arena_bytes: int
    live_bytes: list[int]


class _Groups:
    """Union-find over tensor names, tracking each group's size and last read step."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.size: dict[str, int] = {}
        self.last: dict[str, int] = {}

    def add(self, name: str, size: int, last: int) -> None:
        self.parent[name] = name
        self.size[name] = size
        self.last[name] = last

    def find(self, name: str) -> str:
        while self.parent[name] != name:
            self.parent[name] = self.parent[self.parent[name]]
            name = self.parent[name]
        return name

    def union(self, keep: str, other: str) -> None:
        keep, other = self.find(keep), self.find(other)
        if keep != other:
            self.parent[other] = keep
            self.size[keep] = max(self.size[keep], self.size[other])
            self.last[keep] = max(self.last[keep], self.last[other])


def _fold_padding(graph: Graph) -> tuple[list[list[str]], set[int]]:
    """Per-op activation reads after folding PADs into their consumers, and the folded PAD steps."""
    reads = [list(op.inputs) for op in graph.ops]
    folded: set[int] = set()
    for index, op in enumerate(graph.ops):
        if op.role is not Role.PAD or not op.inputs or len(op.outputs) != 1:
            continue
        out = op.outputs[0]
        users = graph.consumers.get(out, [])
        if out in graph.outputs or not users or not all(graph.ops[u].absorbs_padding for u in users):
            continue
        folded.add(index)
        reads[index] = []
        for user in users:
            reads[user] = [op.inputs[0] if name == out else name for name in reads[user]]
    return reads, folded


def _last_reads(graph: Graph, reads: list[list[str]]) -> dict[str, int]:
    last: dict[str, int] = {}
    for index, names in enumerate(reads):
        for name in names:
            last[name] = index
    for name in graph.outputs:
        last[name] = len(graph.ops) - 1
    return last


def _first_writes(graph: Graph, folded: set[int]) -> dict[str, int]:
    first = {name: 0 for name in graph.inputs}
    for index, op in enumerate(graph.ops):
        if index not in folded:
            for name in op.outputs:
                first.setdefault(name, index)
    return first


def _group_tensors(graph: Graph, nbytes: Callable[[Tensor], int]) -> tuple[_Groups, dict[str, int]]:
    """Alias views and in-place element-wise outputs; return the groups and first-write steps."""
    reads, folded = _fold_padding(graph)
    last = _last_reads(graph, reads)
    first = _first_writes(graph, folded)
    groups = _Groups()
    for name in first:
        if name in graph.tensors:
            groups.add(name, nbytes(graph.tensors[name]), last.get(name, first[name]))
    for index, op in enumerate(graph.ops):
        if index in folded or len(op.outputs) != 1 or op.outputs[0] not in groups.parent:
            continue
        out = op.outputs[0]
        sources = [name for name in reads[index] if name in groups.parent]
        if op.role is Role.VIEW and sources:
            groups.union(sources[0], out)
        elif op.role is Role.ELEMENTWISE:
            for name in sources:
                root = groups.find(name)
                dies_here = groups.last[root] == index and name not in graph.outputs
                if dies_here and groups.size[groups.find(out)] == groups.size[root]:
                    groups.union(root, out)
                    break
    return groups, first


def _place(buffers: list[Buffer], alignment: int) -> list[Buffer]:
    """Greedy first-fit by decreasing size among buffers whose lifetimes overlap."""
    placed: list[Buffer] = []
    for buf in sorted(buffers, key=lambda b: (-b.size, b.first, b.tensors)):
        clashes = sorted(
            (p for p in placed if p.first <= buf.last and buf.first <= p.last), key=lambda p: p.offset
        )
        offset = 0
        for other in clashes:
            if offset + buf.size <= other.offset:
                break
            end = other.offset + other.size
            offset = max(offset, -(-end // alignment) * alignment)
        placed.append(Buffer(buf.tensors, buf.size, buf.first, buf.last, offset))
    return placed


def plan_activations(
    graph: Graph, nbytes: Callable[[Tensor], int], alignment: int = DEFAULT_ALIGNMENT
) -> MemoryPlan:
    """Plan the activation arena of `graph`, sizing every tensor with `nbytes`."""
    groups, first = _group_tensors(graph, nbytes)
    members: dict[str, list[str]] = {}
    for name in groups.parent:
        members.setdefault(groups.find(name), []).append(name)
    buffers = [
        Buffer(tuple(names), groups.size[root], min(first[n] for n in names), groups.last[root])
        for root, names in members.items()
        if groups.size[root] > 0
    ]
    placed = _place(buffers, alignment)
    arena = max((b.offset + b.size for b in placed), default=0)
    live = [sum(b.size for b in placed if b.first <= step <= b.last) for step in range(len(graph.ops))]
    return MemoryPlan(placed, arena, live)
