"""Render a montage PNG of shapes from a dataset config or from voxel/mesh files.

  python -m experiments.show_shapes --source=procedural --num=16 --out=results/show_shapes/procedural_chairs.png
  python -m experiments.show_shapes --source=modelnet --num=16 --out=results/show_shapes/modelnet_chairs.png
  python -m experiments.show_shapes --files=a.binvox,b.off --style=publication --turntable --out=/tmp/two.png

The ModelNet tarball is found by --path or inside the folder $LERPNET_DATA names. Shapes from
datasets are z-up; files are turned z-up by their source's convention (ShapeNet's model.binvox is
y-up) unless `--up_axis` says. The two commands above made results/show_shapes/ (they say so);
without --out the picture goes to runs/show_shapes/shapes.png. `--style=publication` draws larger, smoothed cells with the shapes filling them.
"""

from __future__ import annotations

import pathlib

from absl import app, flags

from lerpnet import command_line, console, render
from lerpnet.data import dataset_config, file_ids, file_up_axis, load_dataset, load_voxels, to_z_up
from lerpnet.data.datasets import SOURCES

_SOURCE = flags.DEFINE_enum("source", "procedural", list(SOURCES), "Dataset source.")
_PATH = flags.DEFINE_string("path", "", "Dataset file or folder (not needed for procedural).")
_FILES = flags.DEFINE_list("files", [], "Voxel or mesh files to show instead of a dataset.")
_UP_AXIS = flags.DEFINE_enum("up_axis", "", ["", "y", "z"], "Up axis of the input; '' = the source's convention.")
_NUM = flags.DEFINE_integer("num", 16, "How many shapes to show (the first ones of the training split).")
_SEED = flags.DEFINE_integer("seed", 0, "Dataset seed (procedural generation and split order).")
_NCOLS = flags.DEFINE_integer("ncols", 8, "Shapes per row.")
_SIZE = flags.DEFINE_integer("size", 0, "Pixels per shape (0 = the style's: 160 draft, 320 publication).")
_STYLE = flags.DEFINE_enum("style", "draft", list(render.STYLES),
                           "draft: the whole grid framed; publication: each set filling larger cells, smoothed.")
_LABELS = flags.DEFINE_bool("labels", False, "Write each shape's id under it.")
_OUT = flags.DEFINE_string("out", "runs/show_shapes/shapes.png", "Output PNG.")
_TURNTABLE = flags.DEFINE_bool("turntable", False, "Also write <out>_turntable.gif: the camera once around the first shape.")


def main(argv) -> None:
    console.start(argv, "files go in --files=a.binvox,b.off")
    with console.one_line_errors((ValueError, OSError)):  # bad input (VoxelFormatError is a ValueError)
        show()


def show() -> None:
    if _FILES.value:
        files = _FILES.value[: _NUM.value]
        grids = [to_z_up(load_voxels(f), _UP_AXIS.value or file_up_axis(f)) for f in files]
        ids = file_ids(files)
    else:
        # A procedural set only needs as many chairs as are shown.
        cfg = dataset_config(
            source=_SOURCE.value,
            path=_PATH.value,
            seed=_SEED.value,
            up_axis=_UP_AXIS.value,
            val_fraction=0.0,
            num_shapes=_NUM.value if _SOURCE.value == "procedural" else 0,
        )
        data = load_dataset(cfg)
        grids, ids = data.train_voxels[: _NUM.value], data.train_ids[: _NUM.value]
    image = render.montage(grids, _NCOLS.value, labels=list(ids) if _LABELS.value else None, size=_SIZE.value or None,
                           style=_STYLE.value)
    outputs = {f"{len(grids)} shapes": render.save_png(_OUT.value, image)}
    if _TURNTABLE.value:
        frames = render.turntable(grids[0], 36, _SIZE.value or None, _STYLE.value)
        outputs["turntable"] = render.save_gif(pathlib.Path(_OUT.value).with_name(
            f"{pathlib.Path(_OUT.value).stem}_turntable.gif"), frames, fps=12.0)
    console.print_outputs(outputs)


def run():
    """Console-script entry point."""
    app.run(main, flags_parser=command_line.parse_flags)


if __name__ == "__main__":
    run()
