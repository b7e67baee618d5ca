"""Run compiled block plans over lists of pairs, keeping the device busy and the host out of its way.

A stream is one or more segments (a plan and its pairs: the pairs i < j, then the constant paths),
run as one queue of blocks: block b + 1 is dispatched before block b is fetched, across segments too,
so the device always has the next block queued while the host waits for the previous one; each
fetched block is handed to a background thread that writes it (`BlockStore.save`), so writing never
delays the next dispatch. At most two blocks are in flight, so device memory stays within the plans'
budget. Several processes sharing one store each compute a share of the blocks (`stream_share`).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

import jax
import numpy as np
from tqdm import tqdm

from lerpnet import distributed
from lerpnet.allpairs.plan import Plan, num_blocks, put_pairs

_PUT_AHEAD = 8  # blocks whose pairs go to the devices in one transfer


class Store(Protocol):
    """Where finished blocks are kept (lerpnet.allpairs.store.BlockStore): `start` once the plan is known,
    then `load` (None: compute it) and `save` per block; `done`: whether block b was saved (by any process)."""

    def start(self, block_pairs: int) -> None: ...

    def done(self, b: int) -> bool: ...

    def load(self, b: int, rows: np.ndarray) -> dict[str, np.ndarray] | None: ...

    def save(self, b: int, rows: np.ndarray, scores: dict[str, np.ndarray]) -> None: ...


@dataclasses.dataclass(frozen=True)
class Segment:
    """The pairs `rows` (K, 2) that one compiled plan scores, kept in the store from block `first_block` on."""

    plan: Plan
    rows: np.ndarray
    first_block: int = 0

    def chunks(self) -> list[np.ndarray]:
        size = self.plan.block_pairs
        return [self.rows[k * size : (k + 1) * size] for k in range(num_blocks(len(self.rows), size))]


@dataclasses.dataclass(frozen=True)
class StreamStats:
    """What one segment of a stream did: its blocks, how many it computed (not found in the store), and the
    pairs in those."""

    blocks: int
    blocks_computed: int
    pairs_computed: int


def stream_blocks(segments: Sequence[Segment], operands: tuple, *, store: Store | None = None, progress: bool = False,
                  desc: str = "decode+score", sink: Callable[[np.ndarray, dict[str, np.ndarray]], None] | None = None,
                  ) -> list[tuple[dict[str, np.ndarray], StreamStats]]:
    """Each segment's scores, block by block in order, as host arrays (K, ...), with what it did.

    Blocks the store already holds are read, not computed; the others are computed and saved. With a
    `sink`, each block's pairs and scores go to it as they arrive (a computed block while the device
    works on the next) and the scores returned are empty.
    """
    chunks = [segment.chunks() for segment in segments]
    parts = [[store.load(segment.first_block + k, chunk) if store is not None else None for k, chunk in enumerate(cs)]
             for segment, cs in zip(segments, chunks)]
    jobs = [(s, k) for s, ps in enumerate(parts) for k in range(len(ps))]
    todo = [(s, k) for s, k in jobs if parts[s][k] is None]
    if sink is not None:  # the stored blocks first; parts keeps only what is returned
        for s, k in jobs:
            if parts[s][k] is not None:
                sink(chunks[s][k], parts[s][k])
                parts[s][k] = None
    total = sum(map(len, chunks))
    bar = tqdm(total=total, initial=total - len(todo), unit="block", desc=desc, disable=not progress)
    for (s, k), part in _computed(segments, operands, chunks, todo, store):
        if sink is None:
            parts[s][k] = part
        else:
            sink(chunks[s][k], part)
        bar.update(1)
    bar.close()
    scores = [{name: np.concatenate([part[name] for part in ps]) for name in ps[0]} if sink is None else {}
              for ps in parts]
    return list(zip(scores, _stats(chunks, todo)))


def stream_share(segments: Sequence[Segment], operands: tuple, *, store: Store, progress: bool = False,
                 desc: str = "decode+score") -> list[StreamStats]:
    """This process's share of the segments' blocks that the store lacks, computed and saved to it.

    For several processes sharing one store (every process calls it with the same arguments): once
    all have listed the missing blocks, the k-th missing block is computed by process k mod P, so a
    resumed run deals out only what is left. Nothing is returned but what this process did; the
    scores are read back from the store (`stream_blocks`) once every process is done.
    """
    chunks = [segment.chunks() for segment in segments]
    missing = [(s, k) for s, segment in enumerate(segments) for k in range(len(chunks[s]))
               if not store.done(segment.first_block + k)]
    distributed.barrier(f"listed the blocks from {segments[0].first_block}")  # before anyone adds one
    mine = missing[jax.process_index()::jax.process_count()]
    bar = tqdm(total=len(mine), unit="block", desc=desc, disable=not progress)
    for _ in _computed(segments, operands, chunks, mine, store):
        bar.update(1)
    bar.close()
    return _stats(chunks, mine)


def _stats(chunks: list[list[np.ndarray]], computed: list[tuple[int, int]]) -> list[StreamStats]:
    """Per segment: its blocks, and the blocks and pairs of `computed` ((segment, block) jobs) in it."""
    return [StreamStats(len(cs), sum(s_ == s for s_, _ in computed), sum(len(cs[k]) for s_, k in computed if s_ == s))
            for s, cs in enumerate(chunks)]


def _computed(segments: Sequence[Segment], operands: tuple, chunks: list[list[np.ndarray]],
              todo: list[tuple[int, int]], store: Store | None) -> Iterator[tuple[tuple[int, int], dict[str, np.ndarray]]]:
    """((s, k), the host scores of segment s's chunk k) for each of `todo` in order, each saved to the
    store by a background thread; the next block, of whichever segment, is dispatched before this one
    is fetched, and each block's copy to the host is queued as it is dispatched. Each transfer is a wait
    the host sits through (results/profile/score_pairs/), so pairs go to the devices `_PUT_AHEAD` blocks
    at a time."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as writer:
        writes, pending, placed = [], None, {}
        for n, job in enumerate([*todo, None]):
            scores = None
            if job is not None:
                if job not in placed:  # this block's pairs and the next ones', in one transfer
                    ahead = todo[n : n + _PUT_AHEAD]
                    placed.update(zip(ahead, put_pairs([(segments[s].plan, chunks[s][k]) for s, k in ahead])))
                scores = segments[job[0]].plan.step(*operands, placed.pop(job))
                scores.copy_to_host_async()  # queued behind the step, so the fetch below need not start it
            if pending is not None:
                (s, k), queued = pending
                rows = chunks[s][k]
                part = segments[s].plan.host_scores(queued, len(rows))
                if store is not None:
                    writes.append(writer.submit(store.save, segments[s].first_block + k, rows, part))
                yield (s, k), part
            pending = None if job is None else (job, scores)
        for write in writes:
            write.result()  # a failed write is an error here, not a block silently missing
