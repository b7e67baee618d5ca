"""Streaming blocks through the resumable block store: resume, and nothing torn, foreign or changed mixed in."""

import numpy as np
import pytest

from lerpnet import files
from lerpnet.allpairs import stream as stream_module
from lerpnet.allpairs.plan import device_mesh, num_blocks, plan_blocks, put_pairs
from lerpnet.allpairs.shapes import pair_list
from lerpnet.allpairs.store import BlockStore, content_hash
from lerpnet.allpairs.stream import Segment, StreamStats, stream_blocks
from tests.allpairs.standin import OPERANDS, POSITIONS, STEP, operand_specs

PAIRS = pair_list(len(POSITIONS), "all")  # 25 pairs
FINGERPRINT = {"params_sha256": "a" * 64, "steps": 11, "ids": ["s0", "s1"]}


def plan(block: int):
    return plan_blocks(STEP, operand_specs(), len(PAIRS), block_pairs=block, memory_budget_bytes=2**30,
                       mesh=device_mesh(1))


def stream(plan_, workdir, fingerprint=FINGERPRINT):
    with BlockStore(workdir, fingerprint, plan_.block_pairs) as store:
        store.start(plan_.block_pairs)
        [(scores, stats)] = stream_blocks([Segment(plan_, PAIRS)], plan_.operands(*OPERANDS), store=store)
        return scores, stats


def test_blocks_persist_resume_and_do_not_depend_on_the_block_size(tmp_path):
    results = {}
    for block in (8, 16):
        results[block], stats = stream(plan(block), tmp_path / str(block))
        assert stats.pairs_computed == 25
        assert stats.blocks_computed == stats.blocks == num_blocks(25, block)
    for key, value in results[8].items():
        assert len(value) == 25
        np.testing.assert_array_equal(value, results[16][key], err_msg=key)
    # Resume: only the missing block is computed again, and it comes out the same; a temporary file
    # left by an interrupted write is removed.
    blocks = tmp_path / "8" / "blocks"
    (blocks / "block_000002.npz").unlink()
    (blocks / ".block_000003.npz.x1y2.tmp").write_bytes(b"half a write")
    again, stats = stream(plan(8), tmp_path / "8")
    assert (stats.blocks_computed, stats.pairs_computed) == (1, 8) and not list(blocks.glob("*.tmp"))
    for key, value in results[16].items():
        np.testing.assert_array_equal(again[key], value, err_msg=key)
    # Without a store every block is computed, the same.
    [(memory, stats)] = stream_blocks([Segment(plan(8), PAIRS)], plan(8).operands(*OPERANDS))
    assert stats.blocks_computed == 4
    for key, value in results[8].items():
        np.testing.assert_array_equal(memory[key], value, err_msg=key)


class _Recorder:
    """A stand-in plan that logs when each block is dispatched and fetched."""

    def __init__(self, name, log, block_pairs):
        self.name, self.log, self.block_pairs, self.mesh = name, log, block_pairs, device_mesh(1)

    def step(self, *operands_and_rows):
        rows = np.asarray(operands_and_rows[-1])
        self.log.append(("dispatch", self.name, int(rows[0, 0])))
        return _Rows(rows, lambda: self.log.append(("copy", self.name, int(rows[0, 0]))))

    def host_scores(self, rows, count):
        self.log.append(("fetch", self.name, int(rows.rows[0, 0])))
        return {"first": rows.rows[:count, 0]}


class _Rows:
    """A stand-in step output that logs when its copy to the host is queued."""

    def __init__(self, rows, on_copy):
        self.rows, self.copy_to_host_async = rows, on_copy


def test_segments_are_one_queue_the_next_block_dispatched_before_the_last_is_fetched(tmp_path, monkeypatch):
    log, pairs = [], np.arange(12, dtype=np.int32).reshape(6, 2)
    segments = [Segment(_Recorder("unique", log, 4), pairs), Segment(_Recorder("constant", log, 4), pairs[:2], 2)]
    sunk, puts = [], []
    monkeypatch.setattr(stream_module, "put_pairs", lambda blocks: puts.append(len(blocks)) or put_pairs(blocks))
    results = stream_blocks(segments, (), sink=lambda rows, part: sunk.append(part["first"].tolist()))
    assert puts == [3]  # every block's pairs in one transfer
    # the constant paths' block is queued before the last block of the pairs is fetched: no idle device between
    # them; each block's copy back is queued as it is dispatched, not when it is fetched
    assert log == [("dispatch", "unique", 0), ("copy", "unique", 0), ("dispatch", "unique", 8), ("copy", "unique", 8),
                   ("fetch", "unique", 0), ("dispatch", "constant", 0), ("copy", "constant", 0),
                   ("fetch", "unique", 8), ("fetch", "constant", 0)]
    assert sunk == [[0, 2, 4, 6], [8, 10], [0, 2]]
    assert [stats for _, stats in results] == [StreamStats(2, 2, 6), StreamStats(1, 1, 2)]
    with BlockStore(tmp_path, FINGERPRINT, 4) as store:
        store.start(4)
        first = stream_blocks(segments, (), store=store)
        log.clear()
        again = stream_blocks(segments, (), store=store)
    assert log == [] and [stats for _, stats in again] == [StreamStats(2, 0, 0), StreamStats(1, 0, 0)]
    for (a, _), (b, _) in zip(first, again):
        np.testing.assert_array_equal(a["first"], b["first"])
    np.testing.assert_array_equal(first[0][0]["first"], [0, 2, 4, 6, 8, 10])


def test_pairs_go_to_the_devices_a_window_of_blocks_a_transfer(monkeypatch):
    """Blocks' pairs are put `_PUT_AHEAD` blocks a transfer, each block's before its dispatch, in order."""
    log, pairs = [], np.arange(22, dtype=np.int32).reshape(11, 2)
    puts = []
    monkeypatch.setattr(stream_module, "put_pairs", lambda blocks: puts.append(len(blocks)) or put_pairs(blocks))
    [(scores, _)] = stream_blocks([Segment(_Recorder("unique", log, 1), pairs)], ())
    assert puts == [stream_module._PUT_AHEAD, 11 - stream_module._PUT_AHEAD]
    np.testing.assert_array_equal(scores["first"], pairs[:, 0])


def test_torn_truncated_and_copied_over_blocks_are_computed_again(tmp_path):
    first, _ = stream(plan(8), tmp_path)
    blocks = tmp_path / "blocks"
    whole = (blocks / "block_000001.npz").read_bytes()
    (blocks / "block_000001.npz").write_bytes(whole[: len(whole) // 2])  # truncated
    (blocks / "block_000002.npz").write_bytes(b"")  # torn
    (blocks / "block_000003.npz").write_bytes((blocks / "block_000000.npz").read_bytes())  # copied over
    again, stats = stream(plan(8), tmp_path)
    assert stats.blocks_computed == 3
    for key, value in first.items():
        np.testing.assert_array_equal(again[key], value, err_msg=key)
    _, stats = stream(plan(8), tmp_path)
    assert stats.blocks_computed == 0  # all whole again


def test_blocks_of_another_run_are_never_reused(tmp_path):
    stream(plan(8), tmp_path)
    (tmp_path / "plan.json").unlink()  # even with the plan gone, the blocks carry their run's key
    other = FINGERPRINT | {"params_sha256": "b" * 64}
    _, stats = stream(plan(8), tmp_path, other)
    assert stats.blocks_computed == 4


def test_a_rerun_with_other_settings_is_refused_naming_the_fields(tmp_path):
    stream(plan(8), tmp_path)
    changed = FINGERPRINT | {"params_sha256": "b" * 64, "steps": 7}
    with pytest.raises(ValueError, match=r"holds a run with other settings \(params_sha256: 'aaa.*' there, 'bbb.*' "
                                         r"now; steps: 11 there, 7 now\)"):
        BlockStore(tmp_path, changed)
    with pytest.raises(ValueError, match=r"block_pairs: 8 there, 16 now"):
        BlockStore(tmp_path, FINGERPRINT, 16)
    with BlockStore(tmp_path, FINGERPRINT) as store:
        assert store.block_pairs == 8  # 0 = whatever the workdir has


def test_a_zero_byte_plan_is_absent_without_blocks_and_a_clear_error_with_them(tmp_path):
    tmp_path.joinpath("plan.json").write_bytes(b"")
    with BlockStore(tmp_path, FINGERPRINT, 8) as store:
        assert store.block_pairs == 8  # nothing computed under it: start afresh
    stream(plan(8), tmp_path)
    tmp_path.joinpath("plan.json").write_bytes(b"")
    with pytest.raises(ValueError, match=r"plan.json is damaged or not a block plan: delete it to resume") as e:
        BlockStore(tmp_path, FINGERPRINT, 8)
    assert "\n" not in str(e.value)
    tmp_path.joinpath("plan.json").unlink()
    _, stats = stream(plan(8), tmp_path)
    assert stats.blocks_computed == 0  # the blocks were checked and kept


def test_content_hash_sees_every_byte_and_every_name():
    tree = {"a": np.arange(4, dtype=np.float32), "b": np.zeros((2, 2), np.uint32)}
    assert content_hash(tree) == content_hash({k: v.copy() for k, v in tree.items()})
    nudged = {"a": tree["a"].copy(), "b": tree["b"]}
    nudged["a"][3] = np.nextafter(np.float32(3), np.float32(4))
    assert content_hash(nudged) != content_hash(tree)
    assert content_hash({"c": tree["a"], "b": tree["b"]}) != content_hash(tree)


def test_one_run_writes_a_workdir_at_a_time(tmp_path):
    with BlockStore(tmp_path, FINGERPRINT, 8) as first:  # an existing workdir: locked at once
        with pytest.raises(files.InUseError, match=f"^{tmp_path} is in use by another interpolation "):
            BlockStore(tmp_path, FINGERPRINT, 8)
        first.start(8)
    fresh = tmp_path / "new"
    with BlockStore(fresh, FINGERPRINT, 8) as first:  # a new one: locked when the plan is written
        assert not fresh.exists()
        first.start(8)
        with pytest.raises(files.InUseError, match=f"^{fresh} is in use by another interpolation "):
            BlockStore(fresh, FINGERPRINT, 8)
    late = tmp_path / "late"
    with BlockStore(late, FINGERPRINT, 8) as first:  # opened before another run wrote its plan there
        stream(plan(8), late, FINGERPRINT | {"steps": 7})
        with pytest.raises(ValueError, match=r"holds a run with other settings \(steps: 7 there, 11 now\)"):
            first.start(8)
    for folder in (tmp_path, fresh):  # closed: the lock is free again
        _, stats = stream(plan(8), folder)
        assert stats.blocks_computed == 4
