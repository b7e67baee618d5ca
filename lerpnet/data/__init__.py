"""Voxel data: file formats, downloadable datasets and the embedded procedural chairs (all z-up)."""

from lerpnet.data.cache import CacheWarning
from lerpnet.data.datasets import Dataset, dataset_config, load_dataset, to_z_up
from lerpnet.data.formats import BinvoxHeader, fit_to_resolution, load_binvox, load_voxels, save_binvox
from lerpnet.data.meshes import OpenSurfaceWarning, voxelize_mesh
from lerpnet.data.procedural import ChairParams, build_chair, procedural_chairs, sample_params
from lerpnet.data.reading import VoxelFormatError
from lerpnet.data.sources import DATA_ENV, file_ids, file_up_axis

__all__ = [
    "BinvoxHeader",
    "CacheWarning",
    "ChairParams",
    "DATA_ENV",
    "Dataset",
    "OpenSurfaceWarning",
    "VoxelFormatError",
    "build_chair",
    "dataset_config",
    "file_ids",
    "file_up_axis",
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
