"""The training workdir on its own (no training): one writer at a time, rewinding to a checkpoint,
whole files only, and what TensorBoard gets."""

import json
import pathlib
import struct

import numpy as np
import pytest
from tensorboardX.proto import event_pb2

from lerpnet.configs import default as default_config
from lerpnet.workdir import Workdir, WorkdirError


def tensorboard_events(folder: pathlib.Path) -> list:
    """Every event in the TFRecord files under `folder` (length, crc, event, crc)."""
    events = []
    for path in sorted(folder.rglob("events.out.tfevents.*")):
        data, at = path.read_bytes(), 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at:at + 8])
            event = event_pb2.Event()
            event.ParseFromString(data[at + 12: at + 12 + length])
            events.append(event)
            at += 12 + length + 4
    return events


def tags(events, kind: str) -> list[tuple[str, int]]:
    return [(v.tag, e.step) for e in events for v in e.summary.value if v.HasField(kind)]


def val_record(step: int, iou: float) -> dict:
    return {"step": step, "split": "val", "iou@0.3": iou - 0.1, "iou@0.5": iou, "loss": 1.0,
            "pred_occupancy": 0.1, "target_occupancy": 0.1}


def write_metrics(path: pathlib.Path, records: list[dict], tail: str = "") -> None:
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + tail)


def test_one_writer_at_a_time(tmp_path):
    first = Workdir(tmp_path)
    with pytest.raises(WorkdirError, match=f"{tmp_path} is in use by another trainer"):
        Workdir(tmp_path)
    first.close()
    with Workdir(tmp_path) as again:
        assert again.latest_step() is None


def test_opening_writes_nothing_but_the_lock(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("")
    (tmp_path / ".config.json.123.tmp").write_text("{")  # what a kill inside files.atomic_open leaves
    with Workdir(tmp_path) as wd:
        assert wd.stored_config() is None and wd.finished(6) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "metrics.jsonl"]


def test_begin_rewinds_to_the_checkpoint_and_keeps_each_start(tmp_path):
    train = [{"step": s, "split": "train", "loss": 1.0} for s in (0, 2, 4)]
    records = [val_record(0, 0.1), train[0], val_record(2, 0.4), train[1], val_record(4, 0.3), train[2]]
    write_metrics(tmp_path, records, tail='{"step": 6, "spl')  # a torn last line
    for step in (0, 2, 4):
        (tmp_path / "reconstructions").mkdir(exist_ok=True)
        (tmp_path / "reconstructions" / f"step_{step:07d}.png").write_bytes(b"png")
    config = default_config.get_config("smoke")

    with Workdir(tmp_path) as wd:
        assert wd.read_metrics() == records  # the torn line is dropped, not an error
        kept = wd.begin(2, config)
        wd.log(2, "train", {"loss": 0.5})
    # Train records from step 2 on are redone after checkpoint 2; the evaluation of step 2 is kept.
    assert kept == records[:3]
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == records[:3] + [{"step": 2, "split": "train", "loss": 0.5}]
    assert sorted(p.name for p in (tmp_path / "reconstructions").iterdir()) == ["step_0000000.png",
                                                                               "step_0000002.png"]
    threshold = json.loads((tmp_path / "threshold.json").read_text())
    assert threshold == {"threshold": 0.5, "val_iou": 0.4, "step": 2,
                         "best": {"step": 2, "threshold": 0.5, "val_iou": 0.4}}
    assert json.loads((tmp_path / "config.json").read_text())["train"]["num_steps"] == 6

    config.train.num_steps = 8
    with Workdir(tmp_path) as wd:
        assert wd.changes(config) == {"train.num_steps": (6, 8)}
        assert wd.begin(0, config, fresh=True) == []  # no checkpoint and a new config: nothing kept
    assert (tmp_path / "metrics.jsonl").read_text() == ""
    assert not (tmp_path / "threshold.json").exists()
    assert not list((tmp_path / "reconstructions").iterdir())
    starts = [json.loads((tmp_path / "configs" / f"start_{k}.json").read_text())["train"]["num_steps"]
              for k in range(2)]
    assert starts == [6, 8]
    assert not list(tmp_path.rglob("*.tmp")), "a temporary file was left behind"


def test_tensorboard_gets_scalars_images_and_hparams(tmp_path):
    config = default_config.get_config("smoke")
    image = np.zeros((20, 30, 3), np.uint8)
    with Workdir(tmp_path) as wd:
        wd.begin(0, config)
        wd.log(0, "val", {"iou@0.5": 0.25, "loss": float("nan")})
        wd.save_reconstructions(0, image)
        wd.log_image(0, "val/interpolations", image)
        wd.log_hparams(config, {"hparams/val_iou": 0.25})
    events = tensorboard_events(tmp_path / "tensorboard")
    assert ("val/iou_0.5", 0) in tags(events, "simple_value")
    assert tags(events, "image") == [("val/reconstructions", 0), ("val/interpolations", 0)]
    plugins = {v.metadata.plugin_data.plugin_name for e in events for v in e.summary.value}
    assert "hparams" in plugins
    hparams = b"".join(v.metadata.plugin_data.content for e in events for v in e.summary.value)
    assert b"train.learning_rate" in hparams and b"model.encoder_features" in hparams
    record = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert record == {"step": 0, "split": "val", "iou@0.5": 0.25, "loss": "nan"}
    assert (tmp_path / "reconstructions" / "step_0000000.png").read_bytes().startswith(b"\x89PNG")
