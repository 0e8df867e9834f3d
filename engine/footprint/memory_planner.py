"""Activation-buffer planning modelled on STM32Cube.AI's code generator (inputs and outputs inside
the activation buffer, its default).

1. Padding folding: a PAD whose consumers are all convolutions/poolings (`Op.absorbs_padding`)
   costs no buffer; the consumers read the unpadded input and apply the zeros themselves (the
   PAD's top rows are added to the consumer's top padding).
2. Aliasing: reshape-like ops (`Role.VIEW`) reuse their input buffer.
3. In place: an element-wise op (`Role.ELEMENTWISE`) writes over its first input whose buffer dies
   at that op, when the output has the same size as that buffer.
4. Row overlap: a standard convolution (kernel > 1) or a pooling whose output is smaller than
   its input, and whose input dies there, writes its output row by row over input rows it no
   longer needs (TinyEngine/MCUNet in-place kernels, vMCU's segment overlap). While output row r
   is written, input rows from r*stride - pad_top on are still to be read, so the output may
   start `shift` bytes before the input, where
   shift = max over r of (r+1)*out_row_bytes - clamp(r*stride - pad_top)*in_row_bytes;
   the pair then takes max(shift + input, output) bytes instead of input + output. The kernel may
   as well run bottom-up (output ending `shift` bytes after the input, computed with the bottom
   padding); the planner takes whichever placement fits. Depthwise, 1x1 and widening layers get
   their own output buffer: that is what STM32Cube.AI 10's published figures show (letting them
   overlap too undershoots every one of them by 13 to 42 %).
5. Lifetimes: a buffer lives from the step that writes it (graph inputs: step 0) to the last step
   that reads it (graph outputs: the last step), inclusive.
6. Greedy packing (TFLM GreedyMemoryPlanner): buffers sorted largest first; each goes to the lowest
   `alignment`-aligned offset that does not collide with an already placed buffer alive at the
   same time, where "collide" honours the row overlap allowed in 4. The arena is the highest end.

Not modelled: kernel scratch buffers, and STM32Cube.AI's own per-layer allocation choices (its
default "balanced" optimization), which make its figure non-monotonic in a model's width: for
MobileNet v1 at 224 it is 0.93, 0.76 and 1.13 times the no-overlap figure at alpha 0.25, 0.5, 1.0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from engine.footprint.graph import Graph, Role, Tensor, Window

DEFAULT_ALIGNMENT = 4

Shifts = dict[tuple[str, str], tuple[int, int]]  # (output group, input group) -> (top-down, bottom-up)


@dataclass(frozen=True)
class Buffer:
    """One arena region shared by one or more aliased tensors."""

    tensors: tuple[str, ...]
    size: int
    first: int
    last: int
    offset: int = 0

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True)
class MemoryPlan:
    """Placed buffers, the arena size and, per op, the arena bytes up to the highest buffer alive
    while it runs (the op where that reaches the arena size sets the peak)."""

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


@dataclass
class _Folded:
    """Per-op activation reads and windows after folding PADs, and the folded PAD steps."""

    reads: list[list[str]]
    windows: list[Window | None]
    steps: set[int]


def _fold_padding(graph: Graph) -> _Folded:
    folded = _Folded([list(op.inputs) for op in graph.ops], [op.window for op in graph.ops], set())
    for index, op in enumerate(graph.ops):
        if op.role is not Role.PAD or not op.inputs or len(op.outputs) != 1:
            continue
        out, src = op.outputs[0], op.inputs[0]
        users = graph.consumers.get(out, [])
        if out in graph.outputs or not users or not all(graph.ops[u].absorbs_padding for u in users):
            continue
        folded.steps.add(index)
        folded.reads[index] = []
        top = _rows(graph, out) - _rows(graph, src)
        for user in users:
            folded.reads[user] = [src if name == out else name for name in folded.reads[user]]
            window = folded.windows[user]
            if window is not None:
                folded.windows[user] = replace(window, pad_top=window.pad_top + max(top, 0) // 2)
    return folded


def _rows(graph: Graph, name: str) -> int:
    shape = graph.tensors[name].shape
    return shape[graph.height_axis] if len(shape) == 4 else 1


def overlap_shift(in_rows: int, in_bytes: int, out_rows: int, out_bytes: int, window: Window) -> int:
    """Bytes the output must start before the input so that writing it row by row never
    overwrites an input row still to be read (rule 4 of the module docstring)."""
    in_row, out_row = in_bytes / in_rows, out_bytes / out_rows
    shift = 0.0
    for r in range(out_rows):
        needed_from = min(max(r * window.stride - window.pad_top, 0), in_rows)
        shift = max(shift, (r + 1) * out_row - needed_from * in_row)
    return int(-(-shift // 1))


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


def _group_tensors(graph: Graph, nbytes: Callable[[Tensor], int], folded: _Folded) -> tuple[_Groups, dict[str, int]]:
    """Alias views and in-place element-wise outputs; return the groups and first-write steps."""
    last = _last_reads(graph, folded.reads)
    first = _first_writes(graph, folded.steps)
    groups = _Groups()
    for name in first:
        if name in graph.tensors:
            groups.add(name, nbytes(graph.tensors[name]), last.get(name, first[name]))
    for index, op in enumerate(graph.ops):
        if index in folded.steps or len(op.outputs) != 1 or op.outputs[0] not in groups.parent:
            continue
        out = op.outputs[0]
        sources = [name for name in folded.reads[index] if name in groups.parent]
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


def _overlaps(graph: Graph, nbytes: Callable[[Tensor], int], folded: _Folded, groups: _Groups) -> Shifts:
    """Shifts of the shrinking convolutions and poolings of rule 4 whose only input dies there."""
    shifts: Shifts = {}
    for index, op in enumerate(graph.ops):
        window, reads = folded.windows[index], folded.reads[index]
        if window is None or window.depthwise or window.kernel == 1 or len(reads) != 1 or len(op.outputs) != 1:
            continue
        src, out = reads[0], op.outputs[0]
        if src in graph.outputs or src not in groups.parent or out not in groups.parent:
            continue
        src_root, out_root = groups.find(src), groups.find(out)
        in_bytes, out_bytes = nbytes(graph.tensors[src]), nbytes(graph.tensors[out])
        alone = groups.size[src_root] == in_bytes and groups.size[out_root] == out_bytes and src_root != out_root
        if not alone or groups.last[src_root] != index or out_bytes >= in_bytes:
            continue
        in_rows, out_rows = _rows(graph, src), _rows(graph, out)
        pad_bottom = (out_rows - 1) * window.stride + window.kernel - in_rows - window.pad_top
        shifts[(out_root, src_root)] = (
            overlap_shift(in_rows, in_bytes, out_rows, out_bytes, window),
            overlap_shift(in_rows, in_bytes, out_rows, out_bytes, replace(window, pad_top=pad_bottom)),
        )
    return shifts


def _forbidden(buf: Buffer, other: Buffer, shifts: Shifts) -> tuple[int, int]:
    """Open interval of offsets `buf` may not take next to the placed `other`."""
    mine, theirs = buf.tensors[0], other.tensors[0]
    if (mine, theirs) in shifts:  # buf is the output written over `other`, its input
        down, up = shifts[(mine, theirs)]
        return other.offset - down, max(other.end + up - buf.size, other.offset - down)
    if (theirs, mine) in shifts:  # buf is the input of `other`, written over it
        down, up = shifts[(theirs, mine)]
        return other.end - up - buf.size, max(other.offset + down, other.end - up - buf.size)
    return other.offset - buf.size, other.end


def _place(buffers: list[Buffer], shifts: Shifts, alignment: int) -> list[Buffer]:
    """Greedy first-fit by decreasing size among buffers whose lifetimes overlap."""
    placed: list[Buffer] = []
    for buf in sorted(buffers, key=lambda b: (-b.size, b.first, b.tensors)):
        blocked = [_forbidden(buf, p, shifts) for p in placed if p.first <= buf.last and buf.first <= p.last]
        candidates = sorted({0, *(-(-end // alignment) * alignment for _, end in blocked)})
        offset = next(c for c in candidates if c >= 0 and not any(lo < c < hi for lo, hi in blocked))
        placed.append(replace(buf, offset=offset))
    return placed


def _extent(placed: list[Buffer], step: int) -> int:
    """Arena bytes up to the highest buffer alive at `step` (the largest is the arena size)."""
    return max((b.end for b in placed if b.first <= step <= b.last), default=0)


def plan_activations(
    graph: Graph, nbytes: Callable[[Tensor], int], alignment: int = DEFAULT_ALIGNMENT
) -> MemoryPlan:
    """Plan the activation arena of `graph`, sizing every tensor with `nbytes`."""
    folded = _fold_padding(graph)
    groups, first = _group_tensors(graph, nbytes, folded)
    shifts = _overlaps(graph, nbytes, folded, groups)
    members: dict[str, list[str]] = {}
    for name in groups.parent:
        members.setdefault(groups.find(name), []).append(name)
    buffers = [
        Buffer((root, *sorted(n for n in names if n != root)), groups.size[root],
               min(first[n] for n in names), groups.last[root])
        for root, names in members.items()
        if groups.size[root] > 0
    ]
    placed = _place(buffers, shifts, alignment)
    arena = max((b.end for b in placed), default=0)
    return MemoryPlan(placed, arena, [_extent(placed, step) for step in range(len(graph.ops))])
