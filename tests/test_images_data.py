"""Image readers: every format on small files written here, the bad-input cases, and real MNIST when present."""

import gzip
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from wgan.config import resolve
from wgan.data import load_data
from wgan.data.images import fit_images, read_idx
from wgan.errors import ConfigError, DataError

MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def _load(spec, **kw):
    return load_data(resolve({"data": spec, "arch": "conv", **kw}))


def _one_line_error(exc_info, *needles):
    msg = str(exc_info.value)
    assert "\n" not in msg, msg
    for n in needles:
        assert n.lower() in msg.lower(), (n, msg)
    return msg


# ------------------------------------------------------------------------------------------- IDX / MNIST
def write_idx(path: Path, arr: np.ndarray, gz: bool = True, magic: int | None = None) -> Path:
    """An IDX file as published: big-endian magic (0, 0, 0x08, ndim), one uint32 per dim, the bytes."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    magic = (0x08 << 8 | arr.ndim) if magic is None else magic
    blob = struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    path.write_bytes(gzip.compress(blob) if gz else blob)
    return path


def make_mnist(root: Path, n_train=12, n_test=5, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    sfx = ".gz" if gz else ""
    arrays = {"train": (rng.integers(0, 256, (n_train, 28, 28)), np.arange(n_train) % 10),
              "t10k": (rng.integers(0, 256, (n_test, 28, 28)), (np.arange(n_test) * 3) % 10)}
    for split, (x, y) in arrays.items():
        write_idx(root / f"{split}-images-idx3-ubyte{sfx}", x, gz)
        write_idx(root / f"{split}-labels-idx1-ubyte{sfx}", y, gz)
    return arrays


def test_idx_header_magic_2051_and_2049(tmp_path):
    p = write_idx(tmp_path / "a.gz", np.arange(24).reshape(2, 3, 4))
    raw = gzip.decompress(p.read_bytes())
    assert struct.unpack(">I", raw[:4])[0] == 2051  # the published images magic
    np.testing.assert_array_equal(read_idx(p, expect_ndim=3), np.arange(24).reshape(2, 3, 4))
    q = write_idx(tmp_path / "b", np.array([7, 1, 2]), gz=False)
    assert struct.unpack(">I", q.read_bytes()[:4])[0] == 2049
    np.testing.assert_array_equal(read_idx(q, expect_ndim=1), [7, 1, 2])


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_reader_scales_to_minus_one_one_and_keeps_t10k_as_test(tmp_path, gz):
    arrays = make_mnist(tmp_path / "m", gz=gz)
    d = _load(f"mnist:{tmp_path / 'm'}")
    assert d.kind == "image" and d.shape == (1, 28, 28)
    x, y = arrays["train"]
    torch.testing.assert_close(d.x, torch.from_numpy(x[:, None] / 127.5 - 1).float())
    assert d.labels.tolist() == y.tolist()
    xt, yt = arrays["t10k"]
    torch.testing.assert_close(d.x_test, torch.from_numpy(xt[:, None] / 127.5 - 1).float())
    assert d.labels_test.tolist() == yt.tolist()
    assert d.num_classes == 10
    assert d.x.min() >= -1 and d.x.max() <= 1


def test_mnist_reader_finds_torchvision_layout(tmp_path):
    arrays = make_mnist(tmp_path / "data" / "MNIST" / "raw", gz=False)
    d = _load(f"mnist:{tmp_path / 'data'}")
    assert d.labels.tolist() == arrays["train"][1].tolist()
    assert len(d.x_test) == 5


def test_classes_filter_keeps_only_those_labels_in_both_splits(tmp_path):
    arrays = make_mnist(tmp_path / "m", n_train=30, n_test=20)
    d = _load(f"mnist:{tmp_path / 'm'}", classes="1,7")
    x, y = arrays["train"]
    keep = np.isin(y, [1, 7])
    assert sorted(set(d.labels.tolist())) == [1, 7] and len(d.x) == keep.sum()
    torch.testing.assert_close(d.x, torch.from_numpy(x[keep][:, None] / 127.5 - 1).float())
    assert set(d.labels_test.tolist()) <= {1, 7} and len(d.labels_test) == np.isin(arrays["t10k"][1], [1, 7]).sum()
    with pytest.raises(ConfigError) as e:
        _load(f"mnist:{tmp_path / 'm'}", classes="3,11")
    _one_line_error(e, "11", "labels present")


def test_image_size_and_channels_convert_mnist(tmp_path):
    make_mnist(tmp_path / "m")
    d = _load(f"mnist:{tmp_path / 'm'}", image_size=32, channels=3)
    assert d.shape == (3, 32, 32) and d.x_test.shape[1:] == (3, 32, 32)
    torch.testing.assert_close(d.x[:, 0], d.x[:, 2])  # grey repeated


def test_mnist_truncated_gzip_is_a_one_line_error(tmp_path):
    make_mnist(tmp_path / "m")
    p = tmp_path / "m" / "train-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(DataError) as e:
        _load(f"mnist:{tmp_path / 'm'}")
    _one_line_error(e, "train-images-idx3-ubyte.gz", "truncated")


def test_mnist_truncated_raw_body_is_a_one_line_error(tmp_path):
    make_mnist(tmp_path / "m", gz=False)
    p = tmp_path / "m" / "t10k-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(DataError) as e:
        _load(f"mnist:{tmp_path / 'm'}")
    _one_line_error(e, "t10k-images-idx3-ubyte", "truncated", "5x28x28")


def test_mnist_wrong_magic_number_is_a_one_line_error(tmp_path):
    arrays = make_mnist(tmp_path / "m")
    # a labels file (magic 2049) where the images belong
    write_idx(tmp_path / "m" / "train-images-idx3-ubyte.gz", arrays["train"][1])
    with pytest.raises(DataError) as e:
        _load(f"mnist:{tmp_path / 'm'}")
    _one_line_error(e, "train-images-idx3-ubyte.gz", "wrong magic number 2049", "2051")
    # and a file that is not IDX at all
    (tmp_path / "m" / "train-images-idx3-ubyte.gz").write_bytes(b"<html>not found</html>")
    with pytest.raises(DataError) as e:
        _load(f"mnist:{tmp_path / 'm'}")
    _one_line_error(e, "train-images-idx3-ubyte.gz", "wrong magic number")


def test_mnist_mismatched_counts_and_missing_files(tmp_path):
    arrays = make_mnist(tmp_path / "m")
    write_idx(tmp_path / "m" / "train-labels-idx1-ubyte.gz", arrays["train"][1][:-2])
    with pytest.raises(DataError) as e:
        _load(f"mnist:{tmp_path / 'm'}")
    _one_line_error(e, "train-labels-idx1-ubyte.gz", "10 labels for 12 images", "mismatched")
    (tmp_path / "m" / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as e:
        _load(f"mnist:{tmp_path / 'm'}")
    _one_line_error(e, str(tmp_path / "m"), "train-labels-idx1-ubyte")
    with pytest.raises(DataError) as e:
        _load(f"mnist:{tmp_path / 'nowhere'}")
    _one_line_error(e, "nowhere", "no such folder")


def test_cli_reports_a_bad_data_file_in_one_line_with_status_2(tmp_path, capsys):
    from wgan.cli import main

    make_mnist(tmp_path / "m")
    p = tmp_path / "m" / "t10k-labels-idx1-ubyte.gz"
    p.write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    rc = main(["train", "--data", f"mnist:{tmp_path / 'm'}", "--steps", "1", "--quiet", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.count("\n") == 0 and "t10k-labels-idx1-ubyte.gz" in err and "gzip" in err
    assert not (tmp_path / "r").exists()  # nothing written half-way


# ------------------------------------------------------------------------------------------- folder
def _png(path: Path, arr: np.ndarray, fmt="PNG"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format=fmt)
    return path


def test_folder_reads_grey_pngs_exactly_and_labels_by_subfolder(tmp_path):
    rng = np.random.default_rng(1)
    imgs = {}
    for cls in ("cat", "dog"):
        for i in range(10):
            a = rng.integers(0, 256, (28, 28), dtype=np.uint8)
            imgs[(cls, i)] = a
            _png(tmp_path / "f" / cls / f"{i:02d}.png", a)
    d = _load(f"folder:{tmp_path / 'f'}")
    assert d.shape == (1, 28, 28) and len(d.x) + len(d.x_test) == 20
    assert len(d.x_test) == 2  # a deterministic 10%
    assert d.class_names == ["cat", "dog"]
    # each image appears exactly, with its folder's label
    every = torch.cat([d.x, d.x_test])
    labels = torch.cat([d.labels, d.labels_test])
    for (cls, _), a in imgs.items():
        ref = torch.from_numpy(a / 127.5 - 1).float()[None]
        hit = [k for k in range(len(every)) if torch.allclose(every[k], ref, rtol=0, atol=1e-6)]
        assert len(hit) == 1 and int(labels[hit[0]]) == ["cat", "dog"].index(cls)
    again = _load(f"folder:{tmp_path / 'f'}", seed=5)
    torch.testing.assert_close(again.x_test, d.x_test)  # the split does not follow --seed


def test_folder_rgb_crop_resize_and_channels(tmp_path):
    a = np.zeros((40, 60, 3), dtype=np.uint8)
    a[:, 10:50] = (255, 0, 0)  # the centre 40x40 square is pure red; the side strips are black
    for i in range(10):
        _png(tmp_path / "f" / f"{i}.png", a)
    d = _load(f"folder:{tmp_path / 'f'}", image_size=32)
    assert d.shape == (3, 32, 32) and d.labels is None
    x = torch.cat([d.x, d.x_test])
    assert len(x) == 10
    torch.testing.assert_close(x[:, 0], torch.ones(10, 32, 32))  # only the red centre survives the crop
    torch.testing.assert_close(x[:, 1:], -torch.ones(10, 2, 32, 32))
    grey = _load(f"folder:{tmp_path / 'f'}", image_size=32, channels=1)
    assert grey.shape == (1, 32, 32)
    # ITU-R 601-2 luma of pure red: 0.299 * 255 = 76.2 (Pillow rounds to 76)
    assert float(((grey.x + 1) * 127.5).median()) == pytest.approx(76.2, abs=0.5)
    _png(tmp_path / "j" / "x.jpg", a, fmt="JPEG")  # JPEG is lossy: the picture is still mostly red
    j = _load(f"folder:{tmp_path / 'j'}", image_size=28)
    assert j.shape == (3, 28, 28) and float(j.x[:, 0].mean()) > 0.8 and float(j.x[:, 1].mean()) < -0.8


def test_folder_bad_inputs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as e:
        _load(f"folder:{tmp_path / 'empty'}")
    _one_line_error(e, "empty", "no PNG/JPEG images")
    (tmp_path / "txt").mkdir()
    (tmp_path / "txt" / "notes.txt").write_text("hello")
    with pytest.raises(DataError) as e:
        _load(f"folder:{tmp_path / 'txt'}")
    _one_line_error(e, "no PNG/JPEG images", "notes.txt")
    # a non-image file with an image name
    _png(tmp_path / "bad" / "ok.png", np.zeros((28, 28), np.uint8))
    (tmp_path / "bad" / "fake.png").write_text("this is not a PNG")
    with pytest.raises(DataError) as e:
        _load(f"folder:{tmp_path / 'bad'}")
    _one_line_error(e, "fake.png", "not an image")
    # a truncated PNG
    full = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(full, "PNG")
    (tmp_path / "bad" / "fake.png").write_bytes(full.getvalue()[: len(full.getvalue()) // 2])
    with pytest.raises(DataError) as e:
        _load(f"folder:{tmp_path / 'bad'}")
    _one_line_error(e, "fake.png", "truncated")
    with pytest.raises(DataError) as e:
        _load(f"folder:{tmp_path / 'missing'}")
    _one_line_error(e, "missing", "no such folder")


# ------------------------------------------------------------------------------------------- npy / npz
def test_npy_layouts_and_ranges_give_the_same_images(tmp_path):
    rng = np.random.default_rng(2)
    u8 = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    np.save(tmp_path / "nhwc.npy", u8)
    np.save(tmp_path / "nchw_float01.npy", u8.transpose(0, 3, 1, 2).astype(np.float32) / 255)
    np.save(tmp_path / "nhwc_pm1.npy", u8.astype(np.float64) / 127.5 - 1)
    ref = _load(f"npy:{tmp_path / 'nhwc.npy'}")
    assert ref.shape == (3, 32, 32) and ref.labels is None and len(ref.x_test) == 2
    for name in ("nchw_float01.npy", "nhwc_pm1.npy"):
        d = _load(f"npy:{tmp_path / name}")
        torch.testing.assert_close(d.x, ref.x, atol=1e-5, rtol=0)
    np.save(tmp_path / "nhw.npy", u8[..., 0])
    d = _load(f"npy:{tmp_path / 'nhw.npy'}")
    assert d.shape == (1, 32, 32)
    torch.testing.assert_close(d.x, ref.x[:, :1])


def test_npy_bad_inputs(tmp_path):
    (tmp_path / "text.npy").write_text("just some text\n")
    with pytest.raises(DataError) as e:
        _load(f"npy:{tmp_path / 'text.npy'}")
    _one_line_error(e, "text.npy", "not a readable NumPy")
    np.save(tmp_path / "full.npy", np.zeros((50, 28, 28), np.uint8))
    blob = (tmp_path / "full.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError) as e:
        _load(f"npy:{tmp_path / 'cut.npy'}")
    _one_line_error(e, "cut.npy", "truncated")
    np.save(tmp_path / "vec.npy", np.zeros((50, 5), np.float32))
    with pytest.raises(DataError) as e:
        _load(f"npy:{tmp_path / 'vec.npy'}")
    _one_line_error(e, "vec.npy", "(50, 5)", "not images")
    np.save(tmp_path / "range.npy", np.full((5, 28, 28), 300.0))
    with pytest.raises(DataError) as e:
        _load(f"npy:{tmp_path / 'range.npy'}")
    _one_line_error(e, "range.npy", "300")
    np.save(tmp_path / "obj.npy", np.array([None, 1], dtype=object), allow_pickle=True)
    with pytest.raises(DataError) as e:
        _load(f"npy:{tmp_path / 'obj.npy'}")
    _one_line_error(e, "obj.npy")
    np.save(tmp_path / "empty.npy", np.zeros((0, 28, 28), np.uint8))
    with pytest.raises(DataError) as e:
        _load(f"npy:{tmp_path / 'empty.npy'}")
    _one_line_error(e, "empty.npy", "no images")


def test_npz_with_labels_and_keras_layout(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    y = np.arange(30) % 3
    np.savez(tmp_path / "xy.npz", x=x, y=y)
    d = _load(f"npz:{tmp_path / 'xy.npz'}")
    assert len(d.x) == 27 and len(d.x_test) == 3 and d.num_classes == 3
    every = torch.cat([d.x, d.x_test])
    lab = torch.cat([d.labels, d.labels_test])
    for k in range(30):  # every image keeps its own label through the split
        ref = torch.from_numpy(x[k] / 127.5 - 1).float()[None]
        hit = [i for i in range(30) if torch.allclose(every[i], ref, rtol=0, atol=1e-6)]
        assert hit and all(int(lab[i]) == y[k] for i in hit)
    np.savez_compressed(tmp_path / "keras.npz", x_train=x[:20], y_train=y[:20], x_test=x[20:], y_test=y[20:])
    k = _load(f"npz:{tmp_path / 'keras.npz'}")
    torch.testing.assert_close(k.x_test, torch.from_numpy(x[20:, None] / 127.5 - 1).float())
    assert k.labels.tolist() == y[:20].tolist()


def test_npz_bad_inputs(tmp_path):
    x = np.zeros((10, 28, 28), np.uint8)
    np.savez(tmp_path / "mis.npz", x=x, y=np.arange(7))
    with pytest.raises(DataError) as e:
        _load(f"npz:{tmp_path / 'mis.npz'}")
    _one_line_error(e, "mis.npz", "7 labels", "10 images", "mismatched")
    np.savez(tmp_path / "mis2.npz", x_train=x, y_train=np.arange(10), x_test=np.zeros((3, 32, 32), np.uint8),
             y_test=np.arange(3))
    with pytest.raises(DataError) as e:
        _load(f"npz:{tmp_path / 'mis2.npz'}")
    _one_line_error(e, "mis2.npz", "mismatched")
    (tmp_path / "zip.npz").write_bytes(b"PK\x03\x04" + b"\x00" * 30)
    with pytest.raises(DataError) as e:
        _load(f"npz:{tmp_path / 'zip.npz'}")
    _one_line_error(e, "zip.npz")
    np.savez(tmp_path / "keys.npz", a=x, b=x)
    with pytest.raises(DataError) as e:
        _load(f"npz:{tmp_path / 'keys.npz'}")
    _one_line_error(e, "keys.npz", "no image array")


# ------------------------------------------------------------------------------------------- CIFAR-10
def _cifar_batch(n, seed, labels=None):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    return {b"data": data, b"labels": list(labels if labels is not None else rng.integers(0, 10, n).tolist())}


def make_cifar(root: Path, n=4):
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    batches = {}
    for i in range(1, 6):
        batches[f"data_batch_{i}"] = _cifar_batch(n, i)
    batches["test_batch"] = _cifar_batch(n, 9)
    batches["batches.meta"] = {b"label_names": [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog",
                                                b"frog", b"horse", b"ship", b"truck"]}
    for name, b in batches.items():
        (d / name).write_bytes(pickle.dumps(b))
    return batches


def test_cifar10_batches_folder_and_archive(tmp_path):
    batches = make_cifar(tmp_path / "c")
    d = _load(f"cifar10:{tmp_path / 'c'}")
    assert d.shape == (3, 32, 32) and len(d.x) == 20 and len(d.x_test) == 4
    row = batches["data_batch_1"][b"data"][0]
    # the row is R (1024 values), G, B, each row-major 32x32
    torch.testing.assert_close(d.x[0], torch.from_numpy(row.reshape(3, 32, 32) / 127.5 - 1).float())
    assert d.labels[:4].tolist() == batches["data_batch_1"][b"labels"]
    assert d.class_names[1] == "automobile"
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "c" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    a = _load(f"cifar10:{tmp_path / 'cifar-10-python.tar.gz'}")
    torch.testing.assert_close(a.x, d.x)


def test_cifar10_bad_inputs(tmp_path):
    make_cifar(tmp_path / "c")
    base = tmp_path / "c" / "cifar-10-batches-py"
    (base / "data_batch_3").unlink()
    with pytest.raises(DataError) as e:
        _load(f"cifar10:{tmp_path / 'c'}")
    _one_line_error(e, "data_batch_3", "missing")
    (base / "data_batch_3").write_bytes(pickle.dumps(_cifar_batch(4, 3))[:50])
    with pytest.raises(DataError) as e:
        _load(f"cifar10:{tmp_path / 'c'}")
    _one_line_error(e, "data_batch_3", "corrupt or truncated")
    bad = {b"data": np.zeros((4, 100), np.uint8), b"labels": [0, 1, 2, 3]}
    (base / "data_batch_3").write_bytes(pickle.dumps(bad))
    with pytest.raises(DataError) as e:
        _load(f"cifar10:{tmp_path / 'c'}")
    _one_line_error(e, "data_batch_3", "(4, 100)")
    (base / "data_batch_3").write_bytes(pickle.dumps(_cifar_batch(4, 3, labels=[0, 1])))
    with pytest.raises(DataError) as e:
        _load(f"cifar10:{tmp_path / 'c'}")
    _one_line_error(e, "data_batch_3", "mismatched")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (base / "data_batch_3").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(DataError) as e:
        _load(f"cifar10:{tmp_path / 'c'}")
    _one_line_error(e, "data_batch_3", "not a CIFAR python batch")


# ------------------------------------------------------------------------------------------- conversions
def test_rgb_to_grey_matches_pillow_luma():
    rng = np.random.default_rng(4)
    a = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    pil = np.asarray(Image.fromarray(a).convert("L"), dtype=np.float64)
    x = torch.from_numpy(a.transpose(2, 0, 1)[None] / 127.5 - 1).float()
    ours = ((fit_images(x, None, 1)[0, 0] + 1) * 127.5).double().numpy()
    np.testing.assert_allclose(ours, pil, atol=0.51)  # Pillow rounds to integers


def test_resize_preserves_a_constant_image_and_crops_the_centre():
    x = torch.full((2, 1, 50, 70), 0.25)
    x[:, :, :, :10] = -1.0  # outside the centre 50x50 crop
    x[:, :, :, -10:] = -1.0
    y = fit_images(x, 28, None)
    assert y.shape == (2, 1, 28, 28)
    torch.testing.assert_close(y, torch.full_like(y, 0.25))


# ------------------------------------------------------------------------------------------- real MNIST
@pytest.mark.slow  # the real MNIST files
@pytest.mark.skipif(not MNIST_DIR.is_dir(), reason="../shared/data/mnist not present")
def test_real_mnist_shapes_labels_and_pixel_mean():
    x = read_idx(MNIST_DIR / "train-images-idx3-ubyte.gz", expect_ndim=3)
    assert x.shape == (60000, 28, 28) and x.dtype == np.uint8
    assert float(x.mean()) == pytest.approx(33.318, abs=5e-4)  # the published sanity figure
    d = _load(f"mnist:{MNIST_DIR}")
    assert d.x.shape == (60000, 1, 28, 28) and d.x_test.shape == (10000, 1, 28, 28)
    assert sorted(set(d.labels.tolist())) == list(range(10))
    assert torch.bincount(d.labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert float(((d.x + 1) * 127.5).double().mean()) == pytest.approx(33.318, abs=5e-4)
    assert float(((d.x_test + 1) * 127.5).double().mean()) == pytest.approx(33.791, abs=5e-4)
