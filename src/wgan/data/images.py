"""Image data readers selected by ``--data PREFIX:PATH``: MNIST IDX files, image folders, NumPy arrays, CIFAR-10.

Every reader returns a :class:`~wgan.data.DataSource` of kind ``"image"`` holding the whole set in
memory as one float tensor ``x`` of shape (N, C, H, W) in [-1, 1] (converted once from uint8), the
labels when the format has them, and a held-out split ``x_test`` / ``labels_test``: MNIST's t10k
files and CIFAR-10's ``test_batch`` as published, otherwise a deterministic 10% of the images
(a fixed permutation, independent of ``--seed``, so the metrics classifier and its cache do not
change with the seed).

=================  =====================================================================
``mnist:DIR``      ``train-images-idx3-ubyte[.gz]`` and friends in DIR, ``DIR/raw`` or
                   ``DIR/MNIST/raw`` (torchvision's layout; also FashionMNIST, KMNIST)
``folder:DIR``     PNG/JPEG/BMP/GIF/WebP files found recursively; labelled by class
                   sub-folder when every image sits in a first-level sub-folder (>= 2)
``npz:FILE``       arrays ``x``/``images``/``arr_0`` (+ ``y``/``labels``/``arr_1``), or
                   ``x_train``/``y_train``/``x_test``/``y_test`` (Keras ``mnist.npz``)
``npy:FILE``       one array of images, no labels
``cifar10:DIR``    the CIFAR-10 python batches in DIR or ``DIR/cifar-10-batches-py``,
                   or the ``cifar-10-python.tar.gz`` archive itself
=================  =====================================================================

Arrays may be (N, H, W), (N, H, W, C) or (N, C, H, W), uint8 (0..255) or float ([0, 1],
[-1, 1] or [0, 255]). ``--image-size`` (28, 32, 64) centre-crops to a square and resizes
(bilinear, antialiased); ``--channels`` converts grey <-> RGB (ITU-R 601-2 luma, as Pillow).
``--classes 0,1,7`` keeps only those labels, in both splits.

Bad input raises :class:`DataError` with one line naming the file and the problem.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from wgan.data.base import DataSource, register_check, register_prefix
from wgan.errors import ConfigError, DataError

SIZES = (28, 32, 64)
TEST_FRACTION = 0.1  # held-out share of sets without a published test split
SPLIT_SEED = 20170331  # fixed: the split must not depend on --seed
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
CHANNELS = (1, 3)


@register_check
def check_config(config) -> None:
    """The image fields: ``--image-size`` one of :data:`SIZES`, ``--channels`` 1 or 3, ``--classes`` a
    comma-separated list of label numbers (each when set)."""
    if config.image_size not in (None, *SIZES):
        raise ConfigError(f"--image-size must be {', '.join(map(str, SIZES[:-1]))} or {SIZES[-1]}, "
                          f"got {config.image_size}")
    if config.channels not in (None, *CHANNELS):
        raise ConfigError(f"--channels must be {' or '.join(map(str, CHANNELS))}, got {config.channels}")
    if config.classes is not None and not all(p.strip().isdigit() for p in config.classes.split(",")):
        raise ConfigError(f"--classes must be comma-separated label numbers like 0,1,7, got {config.classes!r}")


def _err(path, problem: str) -> DataError:
    return DataError(f"{path}: {problem}")


# ---------------------------------------------------------------------------------------- IDX
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it is gzip (by magic, not by name)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise _err(path, f"cannot read ({e.strerror or e})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise _err(path, f"corrupt or truncated gzip data ({e})") from None
    return raw


def read_idx(path: str | Path, expect_ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (gzip or raw) into a NumPy array.

    The header is big-endian: two zero bytes, a dtype byte (0x08 = uint8), the number of
    dimensions, then one uint32 per dimension; the values follow in row-major order.
    MNIST images have magic 2051 (uint8, 3 dimensions), labels 2049 (uint8, 1 dimension).

    Args:
        path: the file.
        expect_ndim: refuse a file with another number of dimensions (3 for images, 1 for labels).

    Returns:
        The array, in native byte order.

    Raises:
        DataError: corrupt gzip, a wrong magic number, a wrong dimension count, a truncated body.

    Example:
        >>> x = read_idx("mnist/train-images-idx3-ubyte.gz", expect_ndim=3)  # doctest: +SKIP
        >>> x.shape, x.dtype  # doctest: +SKIP
        ((60000, 28, 28), dtype('uint8'))
    """
    path = Path(path)
    buf = _read_bytes(path)
    if len(buf) < 4:
        raise _err(path, f"too short for an IDX header ({len(buf)} bytes)")
    magic = struct.unpack(">I", buf[:4])[0]
    zero, code, ndim = struct.unpack(">HBB", buf[:4])
    expected = f" (expected {0x800 + expect_ndim} for uint8 with {expect_ndim} dimension" \
               f"{'s' if expect_ndim != 1 else ''})" if expect_ndim else ""
    if zero != 0 or code not in IDX_DTYPES or ndim == 0:
        raise _err(path, f"wrong magic number {magic} (0x{magic:08x}); not an IDX file{expected}")
    if expect_ndim is not None and ndim != expect_ndim:
        raise _err(path, f"wrong magic number {magic}: an IDX file with {ndim} dimensions{expected}")
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise _err(path, f"truncated IDX header ({len(buf)} bytes, need {header})")
    dims = struct.unpack(f">{ndim}I", buf[4:header])
    dtype = np.dtype(IDX_DTYPES[code])
    need = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    have = len(buf) - header
    if have < need:
        raise _err(path, f"truncated: the header promises {'x'.join(map(str, dims))} values "
                         f"({need} bytes) but the file holds {have}")
    if have > need:
        raise _err(path, f"{have - need} bytes after the {'x'.join(map(str, dims))} values; not a valid IDX file")
    arr = np.frombuffer(buf, dtype=dtype, count=need // dtype.itemsize, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def _find_idx(root: Path, stem: str) -> Path | None:
    for d in (root, root / "raw", root / "MNIST" / "raw", root / "FashionMNIST" / "raw", root / "KMNIST" / "raw"):
        for name in (stem, stem + ".gz"):
            # torchvision names the raw files with a dash or a dot before idx (t10k-images-idx3-ubyte)
            for cand in (d / name, d / name.replace("-idx", ".idx")):
                if cand.is_file():
                    return cand
    return None


def load_mnist_arrays(root: str | Path) -> dict[str, np.ndarray]:
    """The four MNIST arrays: ``x_train`` (60000, 28, 28) uint8, ``y_train``, ``x_test``, ``y_test``.

    ``root`` is the folder with the IDX files (gz or raw), or one above torchvision's ``MNIST/raw``.
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: no such folder (mnist:DIR wants the folder with train-images-idx3-ubyte.gz)")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder (mnist:DIR wants the folder with train-images-idx3-ubyte.gz)")
    out = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        paths = {}
        for kind, stem in (("x", f"{prefix}-images-idx3-ubyte"), ("y", f"{prefix}-labels-idx1-ubyte")):
            p = _find_idx(root, stem)
            if p is None:
                raise DataError(f"{root}: no {stem}[.gz] here, in raw/ or in MNIST/raw/")
            paths[kind] = p
        x = read_idx(paths["x"], expect_ndim=3)
        y = read_idx(paths["y"], expect_ndim=1)
        if x.dtype != np.uint8 or y.dtype != np.uint8:
            raise _err(paths["x"] if x.dtype != np.uint8 else paths["y"], "values are not uint8 (IDX type 0x08)")
        if len(x) != len(y):
            raise _err(paths["y"], f"{len(y)} labels for {len(x)} images in {paths['x'].name} (mismatched shapes)")
        out[f"x_{split}"], out[f"y_{split}"] = x, y.astype(np.int64)
    return out


# ---------------------------------------------------------------------------------------- conversion
def _to_nchw_uint8_or_float(arr: np.ndarray, path) -> np.ndarray:
    """(N, H, W) / (N, H, W, C) / (N, C, H, W) -> (N, C, H, W), dtype kept."""
    if arr.ndim == 3:
        return arr[:, None]
    if arr.ndim != 4:
        raise _err(path, f"array of shape {tuple(arr.shape)} is not images: expected (N, H, W), "
                         "(N, H, W, C) or (N, C, H, W)")
    n, a, b, c = arr.shape
    last_ok, first_ok = c in (1, 3, 4), a in (1, 3, 4)
    if last_ok and (not first_ok or a == b):
        arr = arr.transpose(0, 3, 1, 2)  # NHWC
    elif not first_ok:
        raise _err(path, f"array of shape {tuple(arr.shape)} has no channel axis of size 1, 3 or 4: "
                         "expected (N, H, W), (N, H, W, C) or (N, C, H, W)")
    if arr.shape[1] == 4:
        arr = arr[:, :3]  # drop alpha
    return arr


def _to_unit(arr: np.ndarray, path) -> torch.Tensor:
    """uint8 / int / float / bool array -> float32 tensor in [-1, 1]; the range decides the scale.

    The one conversion of image values to [-1, 1] (every reader uses it): uint8 ``v`` -> ``v / 127.5 - 1``.
    """
    if arr.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(arr)).float().div_(127.5).sub_(1.0)
    if arr.dtype == np.bool_:
        return torch.from_numpy(arr.astype(np.float32)).mul_(2).sub_(1)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise _err(path, f"values of type {arr.dtype} are not numbers")
    x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    if x.numel() and not torch.isfinite(x).all():
        raise _err(path, "values contain NaN or Inf")
    lo, hi = (float(x.min()), float(x.max())) if x.numel() else (0.0, 0.0)
    tol = 1e-3
    if lo >= -1 - tol and hi <= 1 + tol and lo < 0:
        return x.clamp_(-1, 1)  # already [-1, 1]
    if lo >= -tol and hi <= 1 + tol and np.issubdtype(arr.dtype, np.floating):
        return x.clamp_(0, 1).mul_(2).sub_(1)  # [0, 1]
    if lo >= -tol and hi <= 255 + tol:
        return x.clamp_(0, 255).div_(127.5).sub_(1)  # [0, 255]
    raise _err(path, f"values span [{lo:g}, {hi:g}]; expected uint8, or floats in [0, 1], [-1, 1] or [0, 255]")


def fit_images(x: torch.Tensor, size: int | None, channels: int | None) -> torch.Tensor:
    """Convert (N, C, H, W) in [-1, 1] to ``channels`` and to ``size`` x ``size``.

    Grey -> RGB repeats the channel; RGB -> grey is the ITU-R 601-2 luma (as Pillow's ``L``).
    A non-square image is centre-cropped to its shorter side; then bilinear (antialiased) resizing.
    ``None`` keeps the native value.
    """
    if channels is not None and channels != x.shape[1]:
        if channels == 3:
            x = x.expand(-1, 3, -1, -1).contiguous()
        else:
            w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(1, 3, 1, 1)
            x = (x * w).sum(1, keepdim=True)
    h, w_ = x.shape[-2:]
    if size is not None and (h, w_) != (size, size):
        s = min(h, w_)
        top, left = (h - s) // 2, (w_ - s) // 2
        x = x[:, :, top:top + s, left:left + s]
        if s != size:
            out = []
            for chunk in x.split(4096):  # bounded memory for large sets
                out.append(F.interpolate(chunk, size=(size, size), mode="bilinear", align_corners=False,
                                         antialias=s > size).clamp_(-1, 1))
            x = torch.cat(out)
    return x.contiguous()


def _default_size(h: int, w: int) -> int:
    return h if h == w and h in SIZES else 64 if min(h, w) >= 64 else 32 if min(h, w) >= 30 else 28


def _split(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic (train, test) indices: a fixed permutation, the last 10% held out."""
    perm = np.random.default_rng(SPLIT_SEED).permutation(n)
    n_test = int(n * TEST_FRACTION)
    return np.sort(perm[: n - n_test]), np.sort(perm[n - n_test:])


def _parse_classes(spec: str | None) -> list[int] | None:
    if spec is None:
        return None
    return sorted({int(p) for p in spec.split(",")})


def make_source(name: str, x: torch.Tensor, labels: torch.Tensor | None, config,
                x_test: torch.Tensor | None = None, labels_test: torch.Tensor | None = None,
                path=None, class_names: list[str] | None = None) -> DataSource:
    """Assemble an image :class:`DataSource`: split off a test set if none is given, apply
    ``--classes``, ``--channels`` and ``--image-size``.

    Args:
        name: the data spec, for messages.
        x: (N, C, H, W) float in [-1, 1].
        labels: (N,) int64 or ``None``.
        config: reads ``classes``, ``channels``, ``image_size``.
        x_test, labels_test: a published test split; ``None`` = hold out 10% of ``x``.
        path: named in errors.
        class_names: optional names of the label values (folder sub-folders, CIFAR-10).
    """
    where = path if path is not None else name
    if len(x) == 0:
        raise _err(where, "no images")
    if labels is not None and len(labels) != len(x):
        raise _err(where, f"{len(labels)} labels for {len(x)} images (mismatched shapes)")
    if x_test is None:
        tr, te = _split(len(x))
        tr_t, te_t = torch.from_numpy(tr), torch.from_numpy(te)
        x, x_test = x[tr_t], x[te_t]
        if labels is not None:
            labels, labels_test = labels[tr_t], labels[te_t]
    num_classes = None
    if labels is not None:
        num_classes = int(max(int(labels.max()), int(labels_test.max()) if labels_test is not None
                              and len(labels_test) else 0)) + 1
    wanted = _parse_classes(getattr(config, "classes", None))
    if wanted is not None:
        if labels is None:
            raise ConfigError(f"--classes {config.classes} needs labels, but {name!r} has none")
        present = sorted(set(labels.unique().tolist()))
        missing = [c for c in wanted if c not in present]
        if missing:
            raise ConfigError(f"--classes: no images with label {', '.join(map(str, missing))} in {name!r}; "
                              f"labels present: {', '.join(map(str, present))}")
        keep = torch.isin(labels, torch.tensor(wanted))
        x, labels = x[keep], labels[keep]
        if labels_test is not None:
            keep_t = torch.isin(labels_test, torch.tensor(wanted))
            x_test, labels_test = x_test[keep_t], labels_test[keep_t]
    size = getattr(config, "image_size", None) or _default_size(*x.shape[-2:])
    channels = getattr(config, "channels", None)
    x = fit_images(x, size, channels)
    if x_test is not None and len(x_test):
        x_test = fit_images(x_test, size, channels)
    else:
        x_test, labels_test = None, None
    src = DataSource(name=name, kind="image", shape=tuple(x.shape[1:]), x=x, labels=labels, x_test=x_test,
                     labels_test=labels_test, num_classes=num_classes)
    src.class_names = class_names  # type: ignore[attr-defined]
    return src


# ---------------------------------------------------------------------------------------- readers
@register_prefix("mnist")
def mnist(path: str, config) -> DataSource:
    """MNIST (or a set in the same IDX layout) from ``path``; test split = the t10k files."""
    a = load_mnist_arrays(path)
    x = _to_unit(a["x_train"][:, None], path)  # (60000, 1, 28, 28)
    xt = _to_unit(a["x_test"][:, None], path)
    return make_source(f"mnist:{path}", x, torch.from_numpy(a["y_train"]), config, xt,
                       torch.from_numpy(a["y_test"]), path=path)


def _open_image(p: Path, load: bool = True):
    """The image at ``p`` (decoded when ``load``; otherwise only the header is read)."""
    from PIL import Image, UnidentifiedImageError

    im = None
    try:
        im = Image.open(p)
        if load:
            im.load()
        return im
    except UnidentifiedImageError:
        raise _err(p, "not an image Pillow can read (corrupt, or not a PNG/JPEG despite its name)") from None
    except (OSError, SyntaxError, ValueError, zlib.error) as e:
        if im is not None:
            im.close()
        raise _err(p, f"corrupt or truncated image ({e})") from None


@register_prefix("folder")
def folder(path: str, config) -> DataSource:
    """Every PNG/JPEG/BMP/GIF/WebP file under ``path`` (recursively), sorted by path.

    Labels come from first-level sub-folders (sorted names -> 0, 1, ...) when every image sits in
    one and there are at least two; otherwise the set has no labels. Channels default to 3 when
    any image has colour, else 1; the size to the native one when all images share a square
    size of 28, 32 or 64, else 64 (centre-crop, resize).
    """
    from PIL import Image

    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root}: {'not a folder' if root.exists() else 'no such folder'} (folder:DIR)")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        others = [p for p in root.rglob("*") if p.is_file()]
        hint = f" (found {len(others)} other files, e.g. {others[0].name})" if others else " (it is empty)"
        raise DataError(f"{root}: no PNG/JPEG images found{hint}")
    sizes, colour = set(), False
    for p in files:  # headers only: sizes and colour decide the target shape
        with _open_image(p, load=False) as im:
            sizes.add(im.size)
            colour = colour or (im.mode not in ("1", "L", "LA", "I", "I;16", "F")
                                and not (im.mode == "P" and _palette_is_grey(im)))
    channels = getattr(config, "channels", None) or (3 if colour else 1)
    if getattr(config, "image_size", None):
        size = config.image_size
    elif len(sizes) == 1:
        size = _default_size(*next(iter(sizes))[::-1])
    else:
        size = 64
    mode = "RGB" if channels == 3 else "L"
    arr = np.empty((len(files), size, size, channels), dtype=np.uint8)
    for i, p in enumerate(files):  # one decoded image in memory at a time
        with _open_image(p) as raw:
            try:
                im = raw.convert(mode)
            except (OSError, ValueError) as e:
                raise _err(p, f"cannot convert to {mode} ({e})") from None
        w, h = im.size
        s = min(w, h)
        if (w, h) != (s, s):
            im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        if s != size:
            im = im.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
        arr[i] = np.asarray(im, dtype=np.uint8).reshape(size, size, channels)
    x = _to_unit(arr.transpose(0, 3, 1, 2), root)  # NHWC -> NCHW
    labels, names = None, None
    rel = [p.relative_to(root).parts for p in files]
    if all(len(r) == 2 for r in rel):
        names = sorted({r[0] for r in rel})
        if len(names) >= 2:
            index = {n: i for i, n in enumerate(names)}
            labels = torch.tensor([index[r[0]] for r in rel], dtype=torch.int64)
        else:
            names = None
    return make_source(f"folder:{path}", x, labels, config, path=root, class_names=names)


def _palette_is_grey(im) -> bool:
    pal = im.getpalette() or []
    rgb = np.asarray(pal[: 3 * 256], dtype=np.int64).reshape(-1, 3)
    return bool((rgb[:, 0] == rgb[:, 1]).all() and (rgb[:, 1] == rgb[:, 2]).all())


def _np_load(p: Path):
    if not p.is_file():
        raise DataError(f"{p}: {'not a file' if p.exists() else 'no such file'}")
    try:
        return np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as e:
        kind = "NumPy .npz archive" if p.suffix == ".npz" else "NumPy array file"
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise _err(p, f"not a readable {kind} (corrupt, truncated or another format: {msg})") from None


def _labels_array(y: np.ndarray, n: int, p: Path, key: str) -> torch.Tensor:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise _err(p, f"labels {key!r} have shape {tuple(y.shape)}; expected ({n},) (mismatched shapes)")
    if len(y) != n:
        raise _err(p, f"{len(y)} labels in {key!r} for {n} images (mismatched shapes)")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise _err(p, f"labels {key!r} are {y.dtype}, not whole numbers")
    if n and y.min() < 0:
        raise _err(p, f"labels {key!r} contain negative values ({int(y.min())})")
    return torch.from_numpy(y.astype(np.int64))


def _images_array(a: np.ndarray, p: Path, key: str | None = None) -> torch.Tensor:
    what = f" {key!r}" if key else ""
    if a.dtype == object:
        raise _err(p, f"array{what} holds Python objects, not numbers")
    if a.ndim == 0 or len(a) == 0:
        raise _err(p, f"array{what} of shape {tuple(a.shape)} holds no images")
    return _to_unit(_to_nchw_uint8_or_float(a, p), p)


@register_prefix("npy")
def npy(path: str, config) -> DataSource:
    """One ``.npy`` array of images, (N, H, W), (N, H, W, C) or (N, C, H, W); no labels."""
    p = Path(path)
    a = _np_load(p)
    if isinstance(a, np.lib.npyio.NpzFile):
        a.close()
        raise _err(p, "is an .npz archive; use npz:FILE")
    return make_source(f"npy:{path}", _images_array(a, p), None, config, path=p)


@register_prefix("npz")
def npz(path: str, config) -> DataSource:
    """An ``.npz`` archive: ``x_train``/``y_train``/``x_test``/``y_test`` (Keras layout), or one image
    array (``x``, ``images``, ``X``, ``arr_0`` or the only array) with optional labels (``y``,
    ``labels``, ``Y``, ``arr_1``)."""
    p = Path(path)
    z = _np_load(p)
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise _err(p, "is a single .npy array, not an .npz archive; use npy:FILE")
    try:
        keys = list(z.files)
        try:
            arrays = {k: z[k] for k in keys}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
            raise _err(p, f"corrupt or truncated array inside the archive ({e})") from None
    finally:
        z.close()
    if not arrays:
        raise _err(p, "the archive holds no arrays")
    if "x_train" in arrays:
        x = _images_array(arrays["x_train"], p, "x_train")
        y = _labels_array(arrays["y_train"], len(x), p, "y_train") if "y_train" in arrays else None
        xt = yt = None
        if "x_test" in arrays:
            xt = _images_array(arrays["x_test"], p, "x_test")
            if xt.shape[1:] != x.shape[1:]:
                raise _err(p, f"x_test images {tuple(xt.shape[1:])} differ from x_train {tuple(x.shape[1:])} "
                              "(mismatched shapes)")
            if y is not None:
                if "y_test" not in arrays:
                    raise _err(p, "has y_train and x_test but no y_test")
                yt = _labels_array(arrays["y_test"], len(xt), p, "y_test")
        return make_source(f"npz:{path}", x, y, config, xt, yt, path=p)
    xkey = next((k for k in ("x", "images", "X", "arr_0") if k in arrays), None)
    if xkey is None:
        if len(arrays) != 1:
            raise _err(p, f"no image array: expected a key x, images, X, arr_0 or x_train; found {', '.join(keys)}")
        xkey = keys[0]
    x = _images_array(arrays[xkey], p, xkey)
    ykey = next((k for k in ("y", "labels", "Y", "arr_1") if k in arrays), None)
    y = _labels_array(arrays[ykey], len(x), p, ykey) if ykey else None
    return make_source(f"npz:{path}", x, y, config, path=p)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles the CIFAR batches (dicts of bytes, lists and NumPy arrays) and nothing else."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _unpickle(blob: bytes, where) -> dict:
    try:
        d = _ArrayUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except Exception as e:  # pickle raises many types on garbage
        raise _err(where, f"not a CIFAR python batch (corrupt or truncated pickle: {type(e).__name__})") from None
    if not isinstance(d, dict):
        raise _err(where, "not a CIFAR python batch (not a dict)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}


def _cifar_batch(blob: bytes, where) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(blob, where)
    if "data" not in d or "labels" not in d:
        raise _err(where, f"not a CIFAR-10 batch: keys {sorted(map(str, d))}, expected data and labels")
    data = np.asarray(d["data"])
    labels = np.asarray(d["labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise _err(where, f"data of shape {tuple(data.shape)} and type {data.dtype}; expected (n, 3072) uint8")
    if labels.shape != (len(data),):
        raise _err(where, f"{labels.size} labels for {len(data)} images (mismatched shapes)")
    return data.reshape(-1, 3, 32, 32), labels


CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]


@register_prefix("cifar10")
def cifar10(path: str, config) -> DataSource:
    """CIFAR-10 from the python batches (``data_batch_1..5``, ``test_batch``, ``batches.meta``) in
    ``path`` or ``path/cifar-10-batches-py``, or from ``cifar-10-python.tar.gz`` (read in place)."""
    root = Path(path)
    blobs: dict[str, tuple[bytes, object]] = {}
    archive = root if root.is_file() else root / "cifar-10-python.tar.gz"
    folder_ = next((d for d in (root, root / "cifar-10-batches-py") if (d / "data_batch_1").is_file()), None)
    if folder_ is not None:
        for name in CIFAR_TRAIN + ["test_batch", "batches.meta"]:
            f = folder_ / name
            if f.is_file():
                blobs[name] = (f.read_bytes(), f)
    elif archive.is_file():
        try:
            with tarfile.open(archive, "r:*") as tar:
                for m in tar.getmembers():
                    base = m.name.rsplit("/", 1)[-1]
                    if m.isfile() and base in CIFAR_TRAIN + ["test_batch", "batches.meta"]:
                        blobs[base] = (tar.extractfile(m).read(), f"{archive}:{m.name}")
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            raise _err(archive, f"corrupt or truncated archive ({e})") from None
    elif not root.exists():
        raise DataError(f"{root}: no such folder or file (cifar10:DIR)")
    missing = [n for n in CIFAR_TRAIN + ["test_batch"] if n not in blobs]
    if missing:
        raise DataError(f"{root}: missing CIFAR-10 batch{'es' if len(missing) > 1 else ''} {', '.join(missing)} "
                        "(expected the python version: data_batch_1..5 and test_batch)")
    xs, ys = zip(*(_cifar_batch(*blobs[n]) for n in CIFAR_TRAIN))
    xt, yt = _cifar_batch(*blobs["test_batch"])
    names = None
    if "batches.meta" in blobs:
        meta = _unpickle(*blobs["batches.meta"])
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta.get("label_names", [])] or None
    return make_source(f"cifar10:{path}", _to_unit(np.concatenate(xs), root), torch.from_numpy(np.concatenate(ys)),
                       config, _to_unit(xt, root), torch.from_numpy(yt), path=root, class_names=names)
