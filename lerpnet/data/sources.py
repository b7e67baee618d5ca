"""Where each dataset source's files are, how they are laid out and named, and decoding them.

Sources that need files take `data.path`, or, when it is empty, look in the folder named by the
LERPNET_DATA environment variable for the source's usual download name (`LAYOUTS[source].names`,
the first that exists). A missing dataset is one error saying where to get it and how to point
lerpnet at it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import re
import tarfile
import warnings
import zlib

import numpy as np
from tqdm import tqdm

from lerpnet.data.formats import SUFFIXES, decode_voxels
from lerpnet.data.meshes import OpenSurfaceWarning
from lerpnet.data.reading import (
    MAX_FILE_BYTES,
    VoxelFormatError,
    check_regular_file,
    file_digest,
    find_files,
    read_file,
)

DATA_ENV = "LERPNET_DATA"
RESOLUTION = 32
MESH_SPAN = 24  # ModelNet10 meshes as 3D ShapeNets voxelised them: the longest side over 24 voxels, centred
SHAPENET_SYNSETS = {
    "airplane": "02691156",
    "bench": "02828884",
    "car": "02958343",
    "chair": "03001627",
    "lamp": "03636649",
    "sofa": "04256520",
    "table": "04379243",
}


@dataclasses.dataclass(frozen=True)
class Layout:
    """A file source: its usual names inside LERPNET_DATA, its up axis, where to download it."""

    names: tuple[str, ...]
    up_axis: str  # "" = the files do not say: data.up_axis must be given
    get: str


LAYOUTS = {
    "modelnet": Layout(
        ("volumetric_data", "3DShapeNets/volumetric_data", "3dshapenets_chair_train_vox30.tar.gz"), "z",
        "3D ShapeNets' volumetric ModelNet (3DShapeNetsCode.zip from http://3dshapenets.cs.princeton.edu/, "
        "unzipped: 3DShapeNets/volumetric_data/)"),
    "modelnet_meshes": Layout(
        ("ModelNet10",), "z",
        "ModelNet10.zip (~450 MB, meshes) from https://modelnet.cs.princeton.edu/, unzipped: ModelNet10/"),
    "shapenet_vox32": Layout(
        ("ShapeNetVox32",), "y",
        "ShapeNetVox32.tgz (3D-R2N2's voxels) from http://cvgl.stanford.edu/data2/ShapeNetVox32.tgz, unpacked: "
        "ShapeNetVox32/"),
    "folder": Layout((), "", "a folder of your own voxel or mesh files"),
}


@dataclasses.dataclass(frozen=True)
class Item:
    """One shape file of a source: where it is (`data` holds the bytes of an archive member), its
    model id, rotation (1 = canonical) and the release's split ("train"/"val"; "" = split by id)."""

    name: str
    id: str
    rotation: int = 1
    split: str = ""
    data: bytes | None = None


def resolve_path(source: str, path: str) -> pathlib.Path:
    """The dataset's file or folder: `path` if given, else its usual name inside $LERPNET_DATA."""
    layout = LAYOUTS[source]
    where = f"get {layout.get}"
    if layout.names:
        where += f" and set {DATA_ENV} to the folder holding it, or pass --config.data.path=<its path>"
    else:
        where = "pass --config.data.path=<the folder>"
    if path:
        resolved = pathlib.Path(path).expanduser()
        if not os.path.lexists(resolved):
            raise VoxelFormatError(resolved, f"{source} dataset not found: {where}")
        return resolved
    root = os.environ.get(DATA_ENV, "")
    if not layout.names or not root:
        raise VoxelFormatError(f"data.path of source {source!r}", f"not set: {where}")
    for name in layout.names:
        if os.path.lexists(pathlib.Path(root, name)):
            return pathlib.Path(root, name).expanduser()
    raise VoxelFormatError(f"{DATA_ENV}={root}", f"holds none of {', '.join(layout.names)}: {where}")


_MODELNET_FILE = re.compile(r"(?:^|/)(?P<cat>[^/]+)/30/(?:train|test)/(?P<id>[^/]+)_(?P<rot>\d+)\.mat$")
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def file_up_axis(path) -> str:
    """A shape file's own up axis by its source's convention: "y" for ShapeNet's `model.binvox`
    (ShapeNetVox32 is y-up), "z" for everything else (ModelNet, 3D ShapeNets, lerpnet's own files)."""
    return "y" if pathlib.PurePath(str(path)).name == "model.binvox" else "z"


def file_ids(paths) -> tuple[str, ...]:
    """Short, file-name-safe, unique ids for shape files: the model folder's name for ShapeNet's
    `<model_id>/model.binvox`, else the file name; characters other than letters, digits, '.',
    '_' and '-' become '_', and ids that would clash get a short hash of their full path."""
    stems = []
    for p in map(pathlib.PurePath, map(str, paths)):
        name = p.parent.name if p.name == "model.binvox" and p.parent.name else p.name
        stems.append(_SAFE.sub("_", name)[:64] or "shape")
    clash = {s for s in stems if stems.count(s) > 1}
    return tuple(f"{s}-{hashlib.sha256(str(p).encode()).hexdigest()[:8]}" if s in clash else s
                 for s, p in zip(stems, paths))


def _is_wanted(name: str, category: str, rotations: str) -> bool:
    """Files of `category` (by folder AND file name: the released chair folder also holds a
    mislabelled `night_stand_000000112`) in the wanted rotations."""
    match = _MODELNET_FILE.search(name)
    return (
        bool(match)
        and match["cat"] == category
        and match["id"].startswith(f"{category}_")
        and (rotations == "all" or match["rot"] == "1")
    )


def list_files(source: str, path: pathlib.Path, category: str, rotations: str) -> list[Item]:
    """Every shape file of a folder-based source, in a stable order (none found is an error)."""
    items, what = _LISTERS[source](path, category, rotations)
    if not items:
        raise VoxelFormatError(path, f"no {what} found")
    return items


def _modelnet_files(path: pathlib.Path, category: str, rotations: str):
    names = [f.as_posix() for f in find_files(path, (".mat",), recursive=True)]
    items = [_modelnet_item(n) for n in names if _is_wanted(n, category, rotations)]
    return items, f"3D ShapeNets '{category}/30/{{train,test}}/*.mat' files"


def _shapenet_files(path: pathlib.Path, category: str, rotations: str):
    synset = SHAPENET_SYNSETS.get(category, category)
    candidates = (path, path / synset, path / "ShapeNetVox32" / synset)
    root = next((p for p in candidates if p.name == synset and p.is_dir()), path / synset)
    found = find_files(root, (".binvox",), recursive=True) if root.is_dir() else []
    items = [Item(str(f), f.parent.name) for f in found if f.name == "model.binvox" and f.parent.parent == root]
    return items, f"'{synset}/<model_id>/model.binvox' files"


def _modelnet10_files(path: pathlib.Path, category: str, rotations: str):
    """ModelNet10's own split: train/ trains, test/ validates; hidden files (macOS '._x.off') skipped."""
    root = path if path.name == category else path / category
    items = [Item(str(f), f.stem, split=split)
             for folder, split in (("train", "train"), ("test", "val")) if (root / folder).is_dir()
             for f in find_files(root / folder, (".off",), recursive=False) if not f.name.startswith(".")]
    return items, f"ModelNet10 '{category}/{{train,test}}/*.off' meshes"


def _folder_files(path: pathlib.Path, category: str, rotations: str):
    if not path.is_dir():
        raise VoxelFormatError(path, "folder source needs a directory")
    found = find_files(path, SUFFIXES, recursive=False)
    return [Item(str(f), i) for f, i in zip(found, file_ids(found))], f"voxel files ({', '.join(SUFFIXES)})"


_LISTERS = {"modelnet": _modelnet_files, "shapenet_vox32": _shapenet_files, "modelnet_meshes": _modelnet10_files,
            "folder": _folder_files}


def _modelnet_item(name: str, data: bytes | None = None) -> Item:
    match = _MODELNET_FILE.search(name)
    return Item(name, match["id"], int(match["rot"]), data=data)


def files_digest(items: list[Item]) -> bytes:
    """A digest of every listed file's name and content (streamed): the cache key of a folder source."""
    key = hashlib.sha256()
    for item in items:
        key.update(item.name.encode() + b"\0" + file_digest(item.name))
    return key.digest()


def archive_items(path: pathlib.Path, category: str, rotations: str) -> list[Item]:
    """The wanted `.mat` members of a 3D ShapeNets `.tar.gz`, read in one streaming pass."""
    check_regular_file(path)
    members = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for m in tar:
                if not (m.isfile() and _is_wanted(m.name, category, rotations)):
                    continue
                if m.size > MAX_FILE_BYTES:
                    raise VoxelFormatError(f"{path}:{m.name}", f"archive member of {m.size} bytes is over the limit")
                members[m.name] = tar.extractfile(m).read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise VoxelFormatError(path, f"not a readable tar archive ({type(err).__name__}: {err})") from None
    if not members:
        raise VoxelFormatError(path, f"archive has no '{category}/30/{{train,test}}/*.mat' members")
    return [_modelnet_item(f"{path}:{name}", members[name]) for name in sorted(members)]


def decode_items(items: list[Item], desc: str, span: int | None = None) -> np.ndarray:
    """Decode every item into a bool (len(items), 32, 32, 32) array in the files' own orientation.

    Meshes are voxelised with the longest side over `span` voxels (None: the whole grid); meshes
    that enclose no volume are counted and reported in one warning instead of one per file.
    """
    voxels = np.zeros((len(items),) + (RESOLUTION,) * 3, dtype=bool)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", OpenSurfaceWarning)
        for k, item in enumerate(tqdm(items, desc=desc, unit="file", leave=False)):
            data = read_file(item.name) if item.data is None else item.data
            voxels[k] = decode_voxels(data, item.name, RESOLUTION, span)
    shells = []
    for w in caught:
        if issubclass(w.category, OpenSurfaceWarning):
            shells.append(w.message.source)
        else:  # pass every other warning on as it was
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if shells:
        warnings.warn(OpenSurfaceWarning(
            shells[0], f"{len(shells)} of {len(items)} meshes are not watertight and enclose no volume: voxelised as their "
            f"surface shells (e.g. {', '.join(shells[:3])})"), stacklevel=2)
    return voxels
