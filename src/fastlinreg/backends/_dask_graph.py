"""The dask backend's one-pass graphs: one task per block that both produces
the block (its own lineage, fused in) and reduces it, the partials combined up
a tree, the whole pass one round trip to the scheduler. Blocks already in the
workers' memory can be grouped, one task per worker thread (``group_by``).

Left to dask, a pass over arrays built by ``from_delayed``, ``concatenate``,
``reshape`` or a rechunk that changes nothing runs four or five tasks per
block before the one that reads it (aliases and identity slices, each a
scheduler message); on a one-machine cluster they cost more than the pass
itself. Here each block's exclusive lineage (the tasks that nothing outside
the block needs) runs inside its reducing task; a task shared by several
blocks stays a task of its own and runs once. Lost blocks are rerun from this
graph by the scheduler as any other.

Imported only by backends/_dask_rows.py, once dask is known to be installed.
"""

from __future__ import annotations

import itertools

try:  # dask's task specification (2025.1 on); older dask takes the delayed path
    from dask._task_spec import Alias, Task, TaskRef, convert_legacy_graph

    FUSES = hasattr(Task, "fuse")
except ImportError:
    FUSES = False

try:  # only used once backends/dask.py has found dask installed
    import dask
    from dask.base import tokenize
    from dask.core import flatten
    from dask.delayed import Delayed
    from dask.highlevelgraph import HighLevelGraph
    from dask.utils import ensure_dict
except ImportError:
    pass

# Partials are combined this many at a time; the last few reach the client.
FAN_IN = 8


def _graph(arrays) -> dict:
    """The arrays' graph, optimised (culled, linearly fused) as one: a task that
    y's graph shares with X's stays one task, not a copy in each."""
    keys = [k for a in arrays for k in flatten(a.__dask_keys__())]
    graph = HighLevelGraph.merge(*(a.__dask_graph__() for a in arrays))
    return convert_legacy_graph(ensure_dict(arrays[0].__dask_optimize__(graph, keys)))


def _dependents(dsk: dict) -> dict:
    out = {k: set() for k in dsk}
    for k, node in dsk.items():
        for dep in node.dependencies:
            if dep in out:
                out[dep].add(k)
    return out


def _exclusive(dsk: dict, dependents: dict, roots) -> set:
    """The keys that ``roots`` need and that nothing outside them needs, and the
    aliases among their dependencies (a rename, copied into each block that
    reads it; its target stays a task of its own when shared)."""
    own, aliases = set(), set()
    work = [k for k in roots if k is not None]
    while work:
        key = work.pop()
        node = dsk.get(key)
        if key in own or node is None or getattr(node, "block_fusion", False):
            continue
        if dependents[key] <= own:
            own.add(key)
            aliases.discard(key)
            work.extend(node.dependencies)
        elif isinstance(node, Alias):
            aliases.add(key)
    return own | aliases


def _sources(dsk: dict, keys) -> list:
    """For each key, the keys outside ``dsk`` it is made from (data the
    cluster holds: persisted or scattered)."""
    out = []
    for key in keys:
        seen, work, sources = set(), [key], set()
        while work:
            k = work.pop()
            if k in seen:
                continue
            seen.add(k)
            if k in dsk:
                work.extend(dsk[k].dependencies)
            else:
                sources.add(k)
        out.append(sources)
    return out


def _needed(dsk: dict, keys) -> dict:
    """The part of ``dsk`` that ``keys`` need (tasks fused into others drop out)."""
    out, work = {}, list(keys)
    while work:
        key = work.pop()
        if key in out or key not in dsk:
            continue
        out[key] = dsk[key]
        work.extend(dsk[key].dependencies)
    return out


def map_reduce(arrays, starts, task, combine, args, group_by=None):
    """``combine`` of ``task(index, first_row, X_i, Y_i, w_i, *args)`` over the row
    blocks of ``arrays`` (X, Y or None, w or None), computed in one round trip.

    Each block task runs its block's own lineage first; the partials are
    combined ``FAN_IN`` at a time on the workers until at most ``FAN_IN`` are
    left, and those are combined on the client. ``group_by(sources)``, given
    the keys outside the graph that each of X's blocks is made from, may
    return groups (lists of block indices, every block in one): each group's
    blocks then run in one task, which returns their partials as a list
    (in-memory blocks of one worker thread: one task instead of several, each
    a scheduler message); the partials are combined exactly as without
    groups, in block order, so the bits do not depend on the grouping.
    """
    present = [a for a in arrays if a is not None]
    dsk = _graph(present)
    dependents = _dependents(dsk)
    block_keys = [list(flatten(a.__dask_keys__())) for a in present]
    groups = None if group_by is None else group_by(_sources(dsk, block_keys[0]))
    name = f"{task.__name__}-{tokenize(*present, task, combine, args, groups)}"
    slots = [i for i, a in enumerate(arrays) if a is not None]
    tasks, keys = {}, []
    for index, start in enumerate(starts):
        inputs = [None] * len(arrays)
        for slot, ks in zip(slots, block_keys):
            inputs[slot] = ks[index]
        refs = [None if k is None else TaskRef(k) for k in inputs]
        key = (name, index)
        reduce_block = Task(key, task, index, int(start), *refs, *args)
        lineage = _exclusive(dsk, dependents, inputs)
        tasks[key] = Task.fuse(*(dsk[k] for k in lineage), reduce_block, key=key)
        keys.append(key)
    leaves = [(k, None) for k in keys]  # where each block's partial is read
    if groups is not None:
        fused = {}
        for g, members in enumerate(groups):
            key = (f"group_{name}", g)
            out = Task(key, _listed, *(TaskRef(keys[i]) for i in members))
            fused[key] = Task.fuse(*(tasks.pop(keys[i]) for i in members), out, key=key)
            for j, i in enumerate(members):
                leaves[i] = (key, j)
        tasks.update(fused)
    if len(keys) <= FAN_IN:
        return _combine_leaves(dsk, tasks, name, leaves, combine)
    level_keys = []
    for j, i in enumerate(range(0, len(keys), FAN_IN)):
        key = (f"{combine.__name__}-0-{name}", j)
        tasks[key] = _picking(key, combine, leaves[i : i + FAN_IN])
        level_keys.append(key)
    keys = level_keys
    for level in itertools.count(1):
        if len(keys) <= FAN_IN:
            break
        groups_ = [keys[i : i + FAN_IN] for i in range(0, len(keys), FAN_IN)]
        keys = [(f"{combine.__name__}-{level}-{name}", j) for j in range(len(groups_))]
        for key, group in zip(keys, groups_):
            tasks[key] = Task(key, combine, *(TaskRef(k) for k in group))
    return _combine_leaves(dsk, tasks, name, [(k, None) for k in keys], combine)


def _listed(*parts):
    return list(parts)


def _picking(key, combine, leaves):
    """A task combining ``leaves``, each (key, None) for a key's value or
    (group key, position) for an item of a group's list."""
    if all(j is None for _, j in leaves):
        return Task(key, combine, *(TaskRef(k) for k, _ in leaves))
    sources = list(dict.fromkeys(k for k, _ in leaves))
    where = [(sources.index(k), j) for k, j in leaves]
    return Task(key, _picked, combine, where, *(TaskRef(k) for k in sources))


def _picked(combine, where, *sources):
    return combine(*(sources[g] if j is None else sources[g][j] for g, j in where))


def _combine_leaves(dsk, tasks, name, leaves, combine):
    """Compute what ``leaves`` read (one round trip) and combine them here, in order."""
    dsk.update(tasks)
    wanted = list(dict.fromkeys(k for k, _ in leaves))
    graph = HighLevelGraph.from_collections(name, _needed(dsk, wanted), dependencies=())
    parts = dask.compute(*(Delayed(k, graph, layer=name) for k in wanted), optimize_graph=False)
    values = dict(zip(wanted, parts))
    return combine(*(values[k] if j is None else values[k][j] for k, j in leaves))
