"""Run a compiled block plan over a list of pairs, keeping the device busy and the host out of its way.

Block b + 1 is dispatched before block b is fetched, so the device always has the next block
queued while the host waits for the previous one; each fetched block is handed to a background
thread that writes it (`BlockStore.save`), so writing never delays the next dispatch. At most two
blocks are in flight, so device memory stays within the plan's budget.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import time
from typing import Protocol

import jax
import numpy as np
from tqdm import tqdm

from lerpnet.allpairs.plan import Plan, num_blocks


class Store(Protocol):
    """Where finished blocks are kept (lerpnet.allpairs.store.BlockStore): `start` once the plan is known,
    then `load` (None: compute it) and `save` per block."""

    def start(self, block_pairs: int) -> None: ...

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
                  progress: bool = False, desc: str = "decode+score") -> tuple[dict[str, np.ndarray], StreamStats]:
    """The scores of every pair in `rows` (K, 2), block by block in order, as host arrays (K, ...).

    Blocks the store already holds are read, not computed; the others are computed and saved.
    Block k of this stream is block `first_block + k` of the store.
    """
    size = plan.block_pairs
    chunks = [rows[k * size : (k + 1) * size] for k in range(num_blocks(len(rows), size))]
    parts = [store.load(first_block + k, chunk) if store is not None else None for k, chunk in enumerate(chunks)]
    todo = [k for k, part in enumerate(parts) if part is None]
    bar = tqdm(total=len(chunks), initial=len(chunks) - len(todo), unit="block", desc=desc, disable=not progress)
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as writer:
        writes = []

        def finish(k: int, scores: dict[str, jax.Array]) -> None:
            parts[k] = {name: value[: len(chunks[k])] for name, value in jax.device_get(scores).items()}
            if store is not None:
                writes.append(writer.submit(store.save, first_block + k, chunks[k], parts[k]))
            bar.update(1)

        pending = None
        for k in todo:
            scores = plan.step(*operands, *plan.pairs(chunks[k]))
            if pending is not None:
                finish(*pending)
            pending = (k, scores)
        if pending is not None:
            finish(*pending)
        for write in writes:
            write.result()  # a failed write is an error here, not a block silently missing
    seconds = time.perf_counter() - start
    bar.close()
    scores = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]} if parts else {}
    return scores, StreamStats(len(chunks), len(todo), sum(len(chunks[k]) for k in todo), seconds)
