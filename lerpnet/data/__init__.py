"""Voxel data: file formats, downloadable datasets and the embedded procedural chairs (all z-up)."""

from lerpnet.data.datasets import Dataset, dataset_config, load_dataset, to_z_up
from lerpnet.data.formats import (
    BinvoxHeader,
    VoxelFormatError,
    fit_to_resolution,
    load_binvox,
    load_voxels,
    save_binvox,
    voxelize_mesh,
)
from lerpnet.data.procedural import ChairParams, build_chair, procedural_chairs, sample_params

__all__ = [
    "BinvoxHeader",
    "ChairParams",
    "Dataset",
    "VoxelFormatError",
    "build_chair",
    "dataset_config",
    "fit_to_resolution",
    "load_binvox",
    "load_dataset",
    "load_voxels",
    "procedural_chairs",
    "sample_params",
    "save_binvox",
    "to_z_up",
    "voxelize_mesh",
]
