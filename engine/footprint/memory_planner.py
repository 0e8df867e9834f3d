"""Activation-buffer planning after STM32Cube.AI 8.1's generated code (inputs and outputs inside the
activation buffer, its default), read off the activation offsets of 8.1-generated code in public repositories
(`<layer>_output_array.data = ... + offset` in network.c, `buffer_offsets` in the `.ai/*_c_graph.json` files
next to it): Flora233333/STM32-Infer-MobileNetV2 (MobileNet v2) and Kangzhezhe/STM32_Face_Recognition
(ST YOLO LC v1, MobileFaceNet).

1. Padding: poolings and standard convolutions of a 3-channel input (8.1's `conv2d_rgb` kernel) apply
   their zero padding themselves (`_pads_itself`); a PAD whose consumers are all poolings costs no buffer
   (its top rows are added to their top padding), before a convolution it keeps its buffer. Every other
   convolution with padding reads a padded copy (8.1's `*_pad_before` layers): an explicit PAD is that copy,
   and a convolution that pads its input itself gets one (`_with_pad_copies`), padded "same" as 8.1 does:
   TensorFlow's top (left) rows and
   kernel - 1 - those at the bottom (right), two for a stride-2 3x3 convolution of an even input where
   TensorFlow adds one. The copy may be written over its input when the input dies there: written from the
   top, it ends with the input (the pair costs the copy's size).
2. Aliasing: reshape-like ops (`Role.VIEW`) reuse their input buffer.
3. In place: an element-wise op (`Role.ELEMENTWISE`, the int8 input's QUANTIZE included) writes over
   its first input whose buffer dies at that op, when the output has the same size.
4. Row overlap: a sliding-window op (convolution, depthwise convolution over its padded copy,
   pooling) whose only input dies there writes its output row by row over input rows it no longer
   needs, widening or not. While output row r is written, input rows from r*stride - pad_top on are
   still to be read, so the output may start `shift` bytes before the input, where
   shift = max over r of (r+1)*out_row_bytes - clamp(r*stride - pad_top)*in_row_bytes;
   the pair then takes max(shift + input, output) bytes instead of input + output (or bottom-up,
   with the bottom padding, whichever the placement needs). Exception: a stride-1 pointwise
   convolution whose output is more than `WIDENING_OVERLAP_MAX` times its input keeps its own
   buffer (8.1's code gives an 8 -> 48 channel expansion its own bytes, while 8.1's published
   MobileNet v1 figures, 8 -> 16 and 16 -> 32, are only reached with the overlap: where between 2
   and 6 the line lies is not known).
4b. A self-padding convolution (rule 1) always writes over its input, from the top only, its output's start
   and end each at least one output row plus one output pixel before the input's start and end
   (`_rgb_shift`; 8.1's MobileNet v2 and ST YOLO LC code place their first convolution's input exactly that
   far above its output): the two are tied at that distance.
5. Fused pooling: a pooling that is the last reader of a standard convolution's output (through
   in-place element-wise ops at most) runs fused with it (`conv2d_nl_pool` layers): the
   convolution's output only ever holds the pooling window's rows (kernel height x row bytes),
   and the convolution's input lives until the pooling step.
6. Scratch: each int8 convolution's work buffer (`Op.scratch_bytes`: `graph.conv_scratch_bytes`,
   `graph.depthwise_scratch_bytes`) lives during its op only and is placed after all tensors, in
   the first gap that holds it.
7. Lifetimes and packing: a buffer lives from the step that writes it (graph inputs: step 0) to
   the last step that reads it (graph outputs: the last step), inclusive. Buffers tied by rule 4b move
   together; sorted largest first, each goes to the lowest `alignment`-aligned offset that does not
   collide with an already placed buffer alive at the same time, where "collide" honours the overlaps of 1
   and 4 (TFLM's greedy planner). Then, while it lowers the arena, the buffers alive where the arena is
   reached are re-placed, one of them first and the others in execution order (`_improve`): 8.1's solver
   keeps a layer's input below its output where a largest-first packer would put a bigger later buffer.

Concatenations get their own output buffer. `overlap=False` drops the overlaps of 1, 4 and 4b, 3 and 5:
every tensor has its own bytes, whole, what ST Edge AI Core 4.0.1's generated code was read to do (no output
written over its input); that is the upper bound.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from engine.footprint.graph import Graph, Op, Role, Tensor, Window

DEFAULT_ALIGNMENT = 4
ALLOCATOR = "STM32Cube.AI 8.1"  # whose rules `plan_activations` reproduces
WIDENING_OVERLAP_MAX = 2  # a stride-1 pointwise output up to this many times its input is written over it
RGB_CHANNELS = 3  # input channels of the convolutions 8.1 runs with its self-padding kernel (conv2d_rgb)
IMPROVE_ROUNDS = 30  # at most this many re-placements of the buffers alive at the peak

# (output group, input group) -> (top-down shift, bottom-up shift or None when only top-down is allowed)
Shifts = dict[tuple[str, str], tuple[int, int | None]]
Links = dict[tuple[str, str], int]  # (output group, input group) -> input offset - output offset, fixed
Group = list[tuple[int, int]]  # (buffer index, offset relative to the group)


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
    tensors: dict[str, Tensor]  # the planned graph's tensors, padded copies included
    steps: list[int]  # per planned step (padded copies included), the op of the graph it belongs to


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
        if out in graph.outputs or not users or not all(_absorbs(graph.ops[u]) for u in users):
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


def _absorbs(op: Op) -> bool:
    """Whether `op` applies a PAD's zeros itself: poolings only (before a convolution, even a self-padding one,
    8.1 keeps an explicit PAD as a layer of its own: `pad_0` of its MobileFaceNet code)."""
    return op.absorbs_padding and not op.weight_bytes


def _pads_itself(graph: Graph, op: Op) -> bool:
    """Whether 8.1 applies this sliding-window op's zero padding in its kernel: poolings and standard convolutions
    of a 3-channel input (`forward_conv2d_rgb_sssa8_ch`); depthwise and other standard convolutions read a padded
    copy of their input (`*_pad_before` layers)."""
    window = op.window
    if window is None or window.depthwise:
        return False
    return not op.weight_bytes or (bool(op.inputs) and _channels(graph, op.inputs[0]) == RGB_CHANNELS)


def _channels(graph: Graph, name: str) -> int:
    shape = graph.tensors[name].shape
    return shape[3 if graph.height_axis == 1 else 1] if len(shape) == 4 else 0


def _with_pad_copies(graph: Graph) -> tuple[Graph, list[int]]:
    """The graph with a padded copy (a PAD op) before each convolution with padding that does not pad its input
    itself (`_pads_itself`), as STM32Cube.AI 8.1 generates (`*_pad_before` layers), and, per op, the index of
    the op it comes from."""
    ops: list[Op] = []
    origin: list[int] = []
    tensors = dict(graph.tensors)
    for index, op in enumerate(graph.ops):
        padded = _padded_shape(graph, op)
        if padded is not None:
            copy = f"{op.inputs[0]} (padded copy for {op.name})"
            tensors[copy] = replace(graph.tensors[op.inputs[0]], name=copy, shape=padded)
            ops.append(Op("PAD", f"{op.name} (padded copy)", [op.inputs[0]], [copy], role=Role.PAD))
            origin.append(index)
            op = replace(op, inputs=[copy], window=replace(op.window, pad_top=0) if op.window else None)
        ops.append(op)
        origin.append(index)
    return Graph(ops, tensors, graph.inputs, graph.outputs, graph.height_axis), origin


def _padded_shape(graph: Graph, op: Op) -> tuple[int, ...] | None:
    """Shape of the padded copy a convolution reads, None without padding. 8.1 pads "same" as TensorFlow at the
    top (left) and kernel - 1 - that at the bottom (right): a stride-2 3x3 convolution of an even input reads
    a copy two rows and columns larger (its `filter_pad` and `*_pad_before` shapes), where TensorFlow adds one."""
    window = op.window
    if window is None or _pads_itself(graph, op) or len(op.inputs) != 1 or len(op.outputs) != 1:
        return None
    shape, out = graph.tensors[op.inputs[0]].shape, graph.tensors[op.outputs[0]].shape
    if len(shape) != 4 or len(out) != 4:
        return None
    sizes = {
        graph.height_axis: (window.kernel, window.stride),
        graph.height_axis + 1: (window.kernel_w or window.kernel, window.stride_w or window.stride),
    }
    axes = tuple(sizes)
    extra = [max((out[a] - 1) * sizes[a][1] + sizes[a][0] - shape[a], 0) for a in axes]
    extra = [max(more, sizes[a][0] - 1) if more else 0 for more, a in zip(extra, axes, strict=True)]
    if not any(extra):
        return None
    padded = list(shape)
    for axis, more in zip(axes, extra, strict=True):
        padded[axis] += more
    return tuple(padded)


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
    first = dict.fromkeys(graph.inputs, 0)
    for index, op in enumerate(graph.ops):
        if index not in folded:
            for name in op.outputs:
                first.setdefault(name, index)
    return first


def _group_tensors(
    graph: Graph, nbytes: Callable[[Tensor], int], folded: _Folded, in_place: bool
) -> tuple[_Groups, dict[str, int]]:
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
        elif op.role is Role.ELEMENTWISE and in_place:
            for name in sources:
                root = groups.find(name)
                dies_here = groups.last[root] == index and name not in graph.outputs
                if dies_here and groups.size[groups.find(out)] == groups.size[root]:
                    groups.union(root, out)
                    break
    return groups, first


def _fuse_pooling(graph: Graph, folded: _Folded, groups: _Groups, first: dict[str, int]) -> None:
    """Rule 5 of the module docstring: shrink a fused convolution's output group to the pooling
    window's rows and keep the convolution's input alive until the pooling step."""
    members: dict[str, list[str]] = {}
    for name in groups.parent:
        members.setdefault(groups.find(name), []).append(name)
    for index, op in enumerate(graph.ops):
        reads = folded.reads[index]
        if op.window is None or op.weight_bytes or len(reads) != 1 or reads[0] not in groups.parent:
            continue
        root = groups.find(reads[0])
        names = members[root]
        start = min(first[name] for name in names)
        conv = graph.ops[start]
        if conv.window is None or conv.window.depthwise or not conv.weight_bytes or groups.last[root] != index:
            continue
        if any(name in graph.outputs for name in names) or not _only_in_place_readers(graph, folded, groups, index):
            continue
        rows = _rows(graph, reads[0])
        groups.size[root] = -(-groups.size[root] * min(op.window.kernel, rows) // rows)
        for name in folded.reads[start]:
            if name in groups.parent:
                source = groups.find(name)
                groups.last[source] = max(groups.last[source], index)


def _only_in_place_readers(graph: Graph, folded: _Folded, groups: _Groups, pooling: int) -> bool:
    """Whether every op but `pooling` that reads the pooling's input group writes back into it."""
    root = groups.find(folded.reads[pooling][0])
    for index, reads in enumerate(folded.reads):
        if index != pooling and any(groups.find(name) == root for name in reads if name in groups.parent):
            outputs = [name for name in graph.ops[index].outputs if name in groups.parent]
            if not outputs or any(groups.find(name) != root for name in outputs):
                return False
    return True


def _overlaps(graph: Graph, nbytes: Callable[[Tensor], int], folded: _Folded, groups: _Groups) -> tuple[Shifts, Links]:
    """Shifts of the ops of rule 4 (and of the padded copies) whose only input dies there, and the fixed
    offsets of the self-padding convolutions' outputs below their inputs (rule 4b)."""
    shifts: Shifts = {}
    links: Links = {}
    for index, op in enumerate(graph.ops):
        window, reads = folded.windows[index], folded.reads[index]
        if index in folded.steps or len(reads) != 1 or len(op.outputs) != 1:
            continue
        src, out = reads[0], op.outputs[0]
        if src in graph.outputs or src not in groups.parent or out not in groups.parent:
            continue
        src_root, out_root = groups.find(src), groups.find(out)
        in_bytes, out_bytes = nbytes(graph.tensors[src]), nbytes(graph.tensors[out])
        alone = groups.size[src_root] == in_bytes and groups.size[out_root] == out_bytes and src_root != out_root
        if not alone or groups.last[src_root] != index:
            continue
        if op.role is Role.PAD and out_bytes >= in_bytes:  # the copy ends with the input (written top-down)
            shifts[(out_root, src_root)] = (out_bytes - in_bytes, None)
        elif window is not None and _overlaps_input(op, window, in_bytes, out_bytes):
            in_rows, out_rows = _rows(graph, src), _rows(graph, out)
            down = overlap_shift(in_rows, in_bytes, out_rows, out_bytes, window)
            if op.weight_bytes and window.kernel > 1 and _pads_itself(graph, op):
                down = links[(out_root, src_root)] = _rgb_shift(graph, out, in_bytes, out_bytes, down)
                shifts[(out_root, src_root)] = (down, None)
            else:
                pad_bottom = max((out_rows - 1) * window.stride + window.kernel - in_rows - window.pad_top, 0)
                up = overlap_shift(in_rows, in_bytes, out_rows, out_bytes, replace(window, pad_top=pad_bottom))
                shifts[(out_root, src_root)] = (down, up)
    return shifts, links


def _rgb_shift(graph: Graph, out: str, in_bytes: int, out_bytes: int, rows_shift: int) -> int:
    """How far 8.1 places a self-padding convolution's output before its input (rule 4b): its start and its
    end each one output row and one output pixel before the input's (at least the row shift)."""
    rows = _rows(graph, out)
    shape = graph.tensors[out].shape
    width = shape[graph.height_axis + 1] if len(shape) == 4 else 1
    margin = out_bytes // rows + out_bytes // (rows * width)
    return max(rows_shift, margin, out_bytes - in_bytes + margin)


def _overlaps_input(op: Op, window: Window, in_bytes: int, out_bytes: int) -> bool:
    """Whether STM32Cube.AI 8.1 writes this sliding-window op's output over its input (rule 4): every one
    but a stride-1 pointwise convolution that more than doubles its input."""
    widening_pointwise = window.kernel == 1 and window.stride == 1 and op.weight_bytes > 0
    return not (widening_pointwise and out_bytes > WIDENING_OVERLAP_MAX * in_bytes)


def _forbidden(buf: Buffer, other: Buffer, shifts: Shifts) -> tuple[int, int]:
    """Open interval of offsets `buf` may not take next to the placed `other`, alive at the same time."""
    mine, theirs = buf.tensors[0], other.tensors[0]
    if (mine, theirs) in shifts:  # buf is the output written over `other`, its input
        down, up = shifts[(mine, theirs)]
        lo = other.offset - down
        return lo, max(lo, other.end if up is None else min(other.end, other.end + up - buf.size))
    if (theirs, mine) in shifts:  # buf is the input of `other`, written over it
        down, up = shifts[(theirs, mine)]
        lo = other.offset - buf.size if up is None else max(other.offset, other.end - up) - buf.size
        return lo, max(lo, min(other.end, other.offset + down))
    return other.offset - buf.size, other.end


def _tied_groups(buffers: list[Buffer], links: list[tuple[int, int, int]]) -> list[Group]:
    """Buffers tied by links (output index, input index, input offset - output offset) at fixed relative
    offsets, one group per set of tied buffers; a link that would make two buffers alive together collide, or
    contradict the others, is left out."""
    kept: list[tuple[int, int, int]] = []
    for link in links:
        if _tie(buffers, [*kept, link]) is not None:
            kept.append(link)
    groups = _tie(buffers, kept)
    assert groups is not None
    return groups


def _tie(buffers: list[Buffer], links: list[tuple[int, int, int]]) -> list[Group] | None:
    parent, delta = list(range(len(buffers))), [0] * len(buffers)

    def root(index: int) -> tuple[int, int]:
        offset = 0
        while parent[index] != index:
            offset, index = offset + delta[index], parent[index]
        return index, offset

    for out, inp, rel in links:
        (out_root, out_offset), (in_root, in_offset) = root(out), root(inp)
        if out_root == in_root:
            if in_offset - out_offset != rel:
                return None
            continue
        parent[in_root], delta[in_root] = out_root, out_offset + rel - in_offset
    members: dict[int, Group] = {}
    for index in range(len(buffers)):
        top, offset = root(index)
        members.setdefault(top, []).append((index, offset))
    tied = {(out, inp) for out, inp, _ in links} | {(inp, out) for out, inp, _ in links}
    groups = []
    for group in members.values():
        low = min(offset for _, offset in group)
        group = [(index, offset - low) for index, offset in group]
        for a, (i, at) in enumerate(group):
            for j, bt in group[a + 1 :]:
                one, two = buffers[i], buffers[j]
                together = one.first <= two.last and two.first <= one.last
                if together and at < bt + two.size and bt < at + one.size and (i, j) not in tied:
                    return None
        groups.append(group)
    return groups


def _pack(
    buffers: list[Buffer], order: list[Group], shifts: Shifts, alignment: int, fixed: tuple[Buffer, ...] = ()
) -> list[Buffer]:
    """First fit: each group in turn at the lowest aligned offset where none of its buffers collides with a
    placed buffer alive at the same time, where "collide" honours the overlaps of `shifts`."""
    placed = list(fixed)
    for group in order:
        blocked = []
        for index, rel in group:
            buf = buffers[index]
            for other in placed:
                if other.first <= buf.last and buf.first <= other.last:
                    lo, hi = _forbidden(buf, other, shifts)
                    blocked.append((lo - rel, hi - rel))
        candidates = sorted({0, *(-(-hi // alignment) * alignment for _, hi in blocked)})
        base = next(c for c in candidates if c >= 0 and not any(lo < c < hi for lo, hi in blocked))
        placed.extend(replace(buffers[index], offset=base + rel) for index, rel in group)
    return placed


def _place(buffers: list[Buffer], links: Links, shifts: Shifts, alignment: int) -> list[Buffer]:
    """Rule 7: tied groups largest first, then the groups alive at the peak re-placed (`_improve`)."""
    index = {buf.tensors[0]: i for i, buf in enumerate(buffers)}
    ties = [(index[out], index[inp], rel) for (out, inp), rel in links.items() if out in index and inp in index]
    groups = _tied_groups(buffers, sorted(ties, key=lambda tie: (buffers[tie[0]].first, tie)))

    def extent(group: Group) -> int:
        return max(rel + buffers[i].size for i, rel in group)

    order = sorted(groups, key=lambda g: (-extent(g), min(buffers[i].first for i, _ in g)))
    return _improve(buffers, order, shifts, alignment, _pack(buffers, order, shifts, alignment))


def _improve(
    buffers: list[Buffer], groups: list[Group], shifts: Shifts, alignment: int, placed: list[Buffer]
) -> list[Buffer]:
    """While it lowers the arena: take the groups with a buffer alive where the arena is reached, and place
    one of them first, the others after it in execution order, around the rest left where it is (a largest-first
    packer puts a big late buffer at the bottom, where 8.1's solver keeps its input)."""
    owner = {buffers[i].tensors: g for g, group in enumerate(groups) for i, _ in group}
    for _ in range(IMPROVE_ROUNDS):
        arena = max((b.end for b in placed), default=0)
        peaks = [s for s in range(max((b.last for b in placed), default=-1) + 1) if _extent(placed, s) == arena]
        hot = sorted({owner[b.tensors] for b in placed if any(b.first <= s <= b.last for s in peaks)})
        rest = tuple(b for b in placed if owner[b.tensors] not in hot)
        for first in hot:
            others = sorted((g for g in hot if g != first), key=lambda g: min(buffers[i].first for i, _ in groups[g]))
            trial = _pack(buffers, [groups[first]] + [groups[g] for g in others], shifts, alignment, rest)
            if max(b.end for b in trial) < arena:
                placed = trial
                break
        else:
            return placed
    return placed


def _extent(placed: list[Buffer], step: int) -> int:
    """Arena bytes up to the highest buffer alive at `step` (the largest is the arena size)."""
    return max((b.end for b in placed if b.first <= step <= b.last), default=0)


def plan_activations(
    graph: Graph,
    nbytes: Callable[[Tensor], int],
    alignment: int = DEFAULT_ALIGNMENT,
    scratch: bool = True,
    overlap: bool = True,
) -> MemoryPlan:
    """Plan the activation arena of `graph`, sizing every tensor with `nbytes`; `scratch` adds the
    int8 kernels' scratch buffers; `overlap=False` gives every tensor whole its own bytes (no row overlap,
    no padded copy over its input, nothing in place, no fused pooling: the upper bound)."""
    original = len(graph.ops)
    graph, origin = _with_pad_copies(graph)
    folded = _fold_padding(graph)
    groups, first = _group_tensors(graph, nbytes, folded, in_place=overlap)
    shifts: Shifts = {}
    links: Links = {}
    if overlap:
        _fuse_pooling(graph, folded, groups, first)
        shifts, links = _overlaps(graph, nbytes, folded, groups)
    members: dict[str, list[str]] = {}
    for name in groups.parent:
        members.setdefault(groups.find(name), []).append(name)
    buffers = [
        Buffer(
            (root, *sorted(n for n in names if n != root)),
            groups.size[root],
            min(first[n] for n in names),
            groups.last[root],
        )
        for root, names in members.items()
        if groups.size[root] > 0
    ]
    placed = _place(buffers, links, shifts, alignment)
    if scratch:
        kernels = [
            Buffer((f"<scratch of op {index}>",), op.scratch_bytes, index, index)
            for index, op in enumerate(graph.ops)
            if op.scratch_bytes > 0
        ]
        largest_first = sorted(range(len(kernels)), key=lambda i: (-kernels[i].size, kernels[i].first))
        placed = _pack(kernels, [[(i, 0)] for i in largest_first], shifts, alignment, tuple(placed))
    arena = max((b.end for b in placed), default=0)
    live = [0] * original
    for step, source in enumerate(origin):
        live[source] = max(live[source], _extent(placed, step))
    return MemoryPlan(placed, arena, live, graph.tensors, origin)
