"""Run a compiled block plan over a list of pairs, keeping the device busy and the host out of its way.

Block b + 1 is dispatched before block b is fetched, so the device always has the next block
queued while the host waits for the previous one; each fetched block is handed to a background
thread that writes it (`BlockStore.save`), so writing never delays the next dispatch. At most two
blocks are in flight, so device memory stays within the plan's budget. Several processes sharing
one store each compute a share of the blocks (`stream_share`).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import Protocol

import jax
import numpy as np
from tqdm import tqdm

from lerpnet import distributed
from lerpnet.allpairs.plan import Plan, num_blocks


class Store(Protocol):
    """Where finished blocks are kept (lerpnet.allpairs.store.BlockStore): `start` once the plan is known,
    then `load` (None: compute it) and `save` per block; `done`: whether block b was saved (by any process)."""

    def start(self, block_pairs: int) -> None: ...

    def done(self, b: int) -> bool: ...

    def load(self, b: int, rows: np.ndarray) -> dict[str, np.ndarray] | None: ...

    def save(self, b: int, rows: np.ndarray, scores: dict[str, np.ndarray]) -> None: ...


@dataclasses.dataclass(frozen=True)
class StreamStats:
    """What one stream did: its blocks, how many it computed (not found in the store), and the time."""

    blocks: int
    blocks_computed: int
    pairs_computed: int
    seconds: float


def stream_blocks(plan: Plan, operands: tuple, rows: np.ndarray, *, store: Store | None = None, first_block: int = 0,
                  progress: bool = False, desc: str = "decode+score",
                  sink: Callable[[np.ndarray, dict[str, np.ndarray]], None] | None = None,
                  ) -> tuple[dict[str, np.ndarray], StreamStats]:
    """The scores of every pair in `rows` (K, 2), block by block in order, as host arrays (K, ...).

    Blocks the store already holds are read, not computed; the others are computed and saved.
    Block k of this stream is block `first_block + k` of the store. With a `sink`, each block's
    pairs and scores go to it as they arrive (a computed block while the device works on the next)
    and the scores returned are empty.
    """
    chunks = _chunks(rows, plan.block_pairs)
    parts = [store.load(first_block + k, chunk) if store is not None else None for k, chunk in enumerate(chunks)]
    todo = [k for k, part in enumerate(parts) if part is None]
    if sink is not None:
        for k in (k for k, part in enumerate(parts) if part is not None):
            sink(chunks[k], parts[k])
            parts[k] = None
    bar = tqdm(total=len(chunks), initial=len(chunks) - len(todo), unit="block", desc=desc, disable=not progress)
    start = time.perf_counter()
    for k, part in _computed(plan, operands, chunks, todo, store, first_block):
        if sink is None:
            parts[k] = part
        else:
            sink(chunks[k], part)
        bar.update(1)
    seconds = time.perf_counter() - start
    bar.close()
    scores = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]} if sink is None else {}
    return scores, StreamStats(len(chunks), len(todo), sum(len(chunks[k]) for k in todo), seconds)


def stream_share(plan: Plan, operands: tuple, rows: np.ndarray, *, store: Store, first_block: int = 0,
                 progress: bool = False, desc: str = "decode+score") -> StreamStats:
    """This process's share of the blocks of `rows` that the store lacks, computed and saved to it.

    For several processes sharing one store (every process calls it with the same arguments): once
    all have listed the missing blocks, the k-th missing block is computed by process k mod P, so a
    resumed run deals out only what is left. Nothing is returned but what this process did; the
    scores are read back from the store (`stream_blocks`) once every process is done.
    """
    chunks = _chunks(rows, plan.block_pairs)
    missing = [k for k in range(len(chunks)) if not store.done(first_block + k)]
    distributed.barrier(f"listed the blocks from {first_block}")  # before anyone adds one
    mine = missing[jax.process_index()::jax.process_count()]
    bar = tqdm(total=len(mine), unit="block", desc=desc, disable=not progress)
    start = time.perf_counter()
    for _ in _computed(plan, operands, chunks, mine, store, first_block):
        bar.update(1)
    seconds = time.perf_counter() - start
    bar.close()
    return StreamStats(len(chunks), len(mine), sum(len(chunks[k]) for k in mine), seconds)


def _chunks(rows: np.ndarray, size: int) -> list[np.ndarray]:
    return [rows[k * size : (k + 1) * size] for k in range(num_blocks(len(rows), size))]


def _computed(plan: Plan, operands: tuple, chunks: list[np.ndarray], todo: list[int], store: Store | None,
              first_block: int) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """(k, the host scores of chunk k) for each k of `todo` in order, each saved to the store by a
    background thread; block k + 1 is dispatched before block k is fetched."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as writer:
        writes, pending = [], None
        for k in [*todo, None]:
            scores = None if k is None else plan.step(*operands, plan.pairs(chunks[k]))
            if pending is not None:
                done = pending[0]
                part = plan.host_scores(pending[1], len(chunks[done]))
                if store is not None:
                    writes.append(writer.submit(store.save, first_block + done, chunks[done], part))
                yield done, part
            pending = None if k is None else (k, scores)
        for write in writes:
            write.result()  # a failed write is an error here, not a block silently missing
