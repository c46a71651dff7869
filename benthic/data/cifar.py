"""CIFAR-10 from the shipped JPEG archive (decoded once to a cached .npy) and CIFAR-10/100 in
torchvision's python format under a user folder; seeded stratified subsets for the quick scale."""

from __future__ import annotations

import hashlib
import tarfile
import warnings
from pathlib import Path, PurePosixPath

import numpy as np
from tqdm.auto import tqdm

from benthic.data.reader import READER_VERSION, UnreadableImage, read_rgb
from benthic.io import save_npy
from benthic.paths import DATA_DIR, cache_dir

CIFAR_CLASSES: dict[str, int] = {"cifar10": 10, "cifar100": 100}
# torchvision's CIFAR-10 label order (the archive's folder names).
CIFAR10_NAMES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
ARCHIVE = DATA_DIR / "cifar10" / "CIFAR-10-images.tar.gz"
SPLITS = ("train", "test")
_CHUNK = 5000  # images per batched decode
_TORCHVISION = {
    "cifar10": ("CIFAR10", "cifar-10-batches-py", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"),
    "cifar100": ("CIFAR100", "cifar-100-python", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"),
}


def load_cifar(
    name: str = "cifar10", split: str = "train", root: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, 32, 32, 3) and int64 labels of one split; cifar10 without `root` comes from the
    shipped archive, otherwise torchvision's python format under `root` (no download)."""
    if name not in CIFAR_CLASSES:
        raise ValueError(f"unknown dataset {name!r}: choose one of {', '.join(CIFAR_CLASSES)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
    if name == "cifar10" and root is None:
        return load_cifar_archive(ARCHIVE, split)
    return _load_torchvision(name, split, Path(root) if root is not None else DATA_DIR / name)


def load_cifar_archive(archive: str | Path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of `split` from a `train|test/<class>/NNNN.jpg` tar archive, decoded on first
    use into cache_dir() (keyed by the archive's content hash and the image reader's version, so a changed
    archive, or a reader that decodes differently, re-decodes)."""
    archive = Path(archive)
    if not archive.is_file():
        raise FileNotFoundError(
            f"CIFAR-10 archive {archive} is missing: it ships with the repository (data/cifar10/); "
            f"restore it with `git checkout -- data/cifar10` or pass root= a folder holding torchvision's "
            f"cifar-10-batches-py (from {_TORCHVISION['cifar10'][2]})"
        )
    folder = cache_dir() / f"cifar10-{_file_hash(archive)[:16]}-reader{READER_VERSION}"
    paths = {s: (folder / f"{s}_images.npy", folder / f"{s}_labels.npy") for s in SPLITS}
    if not all(p.is_file() for pair in paths.values() for p in pair):
        decoded = _decode_archive(archive)
        for s, (img_path, lab_path) in paths.items():
            # labels last: their presence marks a complete split
            for arr, target in ((decoded[s][0], img_path), (decoded[s][1], lab_path)):
                save_npy(target, arr)
    img_path, lab_path = paths[split]
    return np.load(img_path), np.load(lab_path)


def _file_hash(path: Path) -> str:
    """SHA-256 of a file, read in 4 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _decode_archive(archive: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Decode every image of the archive, ordered by (split, class index, file name)."""
    found: dict[str, list[tuple[int, str, bytes]]] = {s: [] for s in SPLITS}
    with tarfile.open(archive, "r|gz") as tar:
        for member in tqdm(tar, desc=f"reading {archive.name}", unit=" files", total=60_024, leave=False):
            parts = PurePosixPath(member.name).parts
            if not member.isfile() or len(parts) < 3 or not parts[-1].lower().endswith((".jpg", ".jpeg", ".png")):
                continue
            split, cls, fname = parts[-3:]
            if split not in found:
                continue
            if cls not in CIFAR10_NAMES:
                raise ValueError(f"{archive}: member {member.name!r} has unknown class folder {cls!r}")
            found[split].append((CIFAR10_NAMES.index(cls), fname, tar.extractfile(member).read()))
    out = {}
    for split, items in found.items():
        if not items:
            raise ValueError(f"{archive}: no images under {split}/<class>/")
        items.sort(key=lambda t: (t[0], t[1]))
        images = np.empty((len(items), 32, 32, 3), dtype=np.uint8)
        for start in tqdm(range(0, len(items), _CHUNK), desc=f"decoding {archive.name} ({split})", leave=False):
            chunk = items[start : start + _CHUNK]
            images[start : start + len(chunk)] = _decode_many(
                [t[2] for t in chunk], [f"{split}/{CIFAR10_NAMES[t[0]]}/{t[1]}" for t in chunk], archive
            )
        out[split] = (images, np.array([t[0] for t in items], dtype=np.int64))
    return out


def _decode_many(blobs: list[bytes], names: list[str], archive: Path) -> np.ndarray:
    """uint8 (n, 32, 32, 3) from encoded images: torchvision's batched JPEG decoder when every member is a
    32x32 JPEG (about 2x PIL's speed, the same pixels as the package's reader for these baseline 8-bit RGB
    JPEGs; deprecated since torchvision 0.29, which is pinned), else or on failure the package's reader
    (benthic.data.reader), which names a bad member."""
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from torchvision.io import ImageReadMode, decode_jpeg
    except ImportError:
        decode_jpeg = None
    if decode_jpeg is not None and all(b[:3] == b"\xff\xd8\xff" for b in blobs):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                decoded = decode_jpeg(
                    [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs], mode=ImageReadMode.RGB
                )
            if all(t.shape == (3, 32, 32) for t in decoded):
                return torch.stack(decoded).permute(0, 2, 3, 1).numpy()
        except RuntimeError:
            pass  # fall through to PIL, which names the bad member
    return np.stack([_decode_one(b, n, archive) for b, n in zip(blobs, names)])


def _decode_one(blob: bytes, name: str, archive: Path) -> np.ndarray:
    """Decode one member with the package's reader, checking it is a 32x32 image."""
    try:
        arr = read_rgb(blob, None, "none")
    except UnreadableImage as err:
        raise ValueError(f"{archive}: member {name!r} is not a readable image ({err})") from None
    if arr.shape != (32, 32, 3):
        raise ValueError(f"{archive}: member {name!r} is {arr.shape}, expected (32, 32, 3)")
    return arr


def _load_torchvision(name: str, split: str, root: Path) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10/100 via torchvision (download=False); a clear FileNotFoundError when it is absent."""
    import torchvision

    cls_name, folder, url = _TORCHVISION[name]
    if not (root / folder).is_dir():
        raise FileNotFoundError(
            f"{name} not found: expected torchvision's python-format folder {root / folder}. "
            f"Download {url} and extract it into {root} (so that {root / folder} exists), "
            f"or run torchvision.datasets.{cls_name}({str(root)!r}, download=True) where there is a network."
        )
    try:
        ds = getattr(torchvision.datasets, cls_name)(str(root), train=split == "train", download=False)
    except RuntimeError as err:  # torchvision's "Dataset not found or corrupted" (checksum mismatch)
        raise FileNotFoundError(
            f"{name} under {root / folder} is incomplete or corrupted ({err}); re-download {url} "
            f"and extract it into {root}"
        ) from err
    return np.ascontiguousarray(ds.data, dtype=np.uint8), np.asarray(ds.targets, dtype=np.int64)


def stratified_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of `n` samples drawn without replacement, keeping each class's share of `labels`
    (largest-remainder rounding), reproducible for a seed."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D class ids, got shape {labels.shape}")
    if not 0 < n <= len(labels):
        raise ValueError(f"n={n} must be between 1 and the number of samples ({len(labels)})")
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    exact = counts * n / len(labels)
    take = np.floor(exact).astype(np.int64)
    short = n - take.sum()
    # largest remainders first; ties broken by class order for determinism
    order = np.lexsort((np.arange(len(classes)), -(exact - take)))
    take[order[:short]] += 1
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(inverse == c), size=k, replace=False) for c, k in enumerate(take) if k]
    return np.sort(np.concatenate(chosen))
