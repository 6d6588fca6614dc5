"""The image-folder loader on tiny archives built here, and on the shared CIFAR-10 archive when present."""

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_cache_dir
from PIL import Image

from mlp.data import build_dataset, load_raw
from mlp.data.image_folder import CLASSES
from mlp.errors import UserError


def png_bytes(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(
        buf, format="PNG"
    )  # lossless, so pixel layout can be checked exactly
    return buf.getvalue()


def make_images(rng, per_class: int = 2) -> dict[str, dict[str, list[np.ndarray]]]:
    return {
        split: {
            c: [rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8) for _ in range(per_class)]
            for c in CLASSES
        }
        for split in ("train", "test")
    }


def write_tree(root: Path, images, top: str | None = "cifar10-tiny") -> Path:
    base = root / top if top else root
    for split, classes in images.items():
        for c, pics in classes.items():
            (base / split / c).mkdir(parents=True, exist_ok=True)
            for i, p in enumerate(pics):
                (base / split / c / f"{i:04d}.png").write_bytes(png_bytes(p))
    return root


def tar_tree(folder: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        for p in sorted(folder.iterdir()):
            tar.add(p, arcname=p.name)
    return archive


def jpeg_cfg(cfg_factory, root: Path):
    return cfg_factory(["data=cifar10_jpeg", f"data.root={root}", "data.batch_size=4"]).data


def expected_rows(images, split):
    rows, labels = [], []
    for label, c in enumerate(CLASSES):
        for p in images[split][c]:
            rows.append(p.transpose(2, 0, 1).reshape(-1))  # channel-major: all R, then G, then B
            labels.append(label)
    return np.array(rows), np.array(labels)


@pytest.mark.parametrize("top", ["cifar10-tiny", None])
def test_archive_and_folder_decode_to_official_layout(cfg_factory, tmp_path, top):
    images = make_images(np.random.default_rng(0))
    folder = write_tree(tmp_path / "src", images, top)
    archive = tar_tree(folder, tmp_path / "tiny.tar.gz")
    from_tar = load_raw(jpeg_cfg(cfg_factory, archive))
    from_dir = load_raw(jpeg_cfg(cfg_factory, folder / top if top else folder))
    for raw in (from_tar, from_dir):
        want_x, want_y = expected_rows(images, "test")
        np.testing.assert_array_equal(raw.test_x, want_x)
        np.testing.assert_array_equal(raw.test_y, want_y)
        # training rows are a seeded permutation of the class-sorted images
        want_x, want_y = expected_rows(images, "train")
        order = np.random.default_rng(0).permutation(len(want_y))
        np.testing.assert_array_equal(raw.train_x, want_x[order])
        np.testing.assert_array_equal(raw.train_y, want_y[order])


def test_unknown_class_folder_is_named(cfg_factory, tmp_path):
    images = make_images(np.random.default_rng(1), per_class=1)
    folder = write_tree(tmp_path / "src", images)
    (folder / "cifar10-tiny" / "train" / "unicorn").mkdir()
    (folder / "cifar10-tiny" / "train" / "unicorn" / "0000.png").write_bytes(
        png_bytes(images["train"]["cat"][0])
    )
    with pytest.raises(UserError, match="unknown class folder 'unicorn'"):
        load_raw(jpeg_cfg(cfg_factory, tar_tree(folder, tmp_path / "bad.tar.gz")))


def test_corrupt_image_and_truncated_archive(cfg_factory, tmp_path):
    images = make_images(np.random.default_rng(2), per_class=1)
    folder = write_tree(tmp_path / "src", images)
    (folder / "cifar10-tiny" / "test" / "dog" / "0000.png").write_bytes(b"not an image")
    with pytest.raises(UserError, match=r"test/dog/0000.png: not a readable image"):
        load_raw(jpeg_cfg(cfg_factory, folder))
    good = write_tree(tmp_path / "src2", images)
    archive = tar_tree(good, tmp_path / "t.tar.gz")
    archive.write_bytes(archive.read_bytes()[:-200])
    with pytest.raises(UserError, match="corrupted or truncated archive"):
        load_raw(jpeg_cfg(cfg_factory, archive))


def test_wrong_image_size_and_missing_path(cfg_factory, tmp_path):
    images = make_images(np.random.default_rng(3), per_class=1)
    images["train"]["ship"][0] = np.zeros((16, 32, 3), np.uint8)
    folder = write_tree(tmp_path / "src", images)
    with pytest.raises(UserError, match="expected 32x32"):
        load_raw(jpeg_cfg(cfg_factory, folder))
    with pytest.raises(UserError, match="no such image folder or archive"):
        load_raw(jpeg_cfg(cfg_factory, tmp_path / "missing.tar.gz"))


@pytest.mark.real_data
@pytest.mark.slow
def test_shared_archive_decodes_to_cifar10_shapes(cfg_factory, shared_archive):
    cfg = cfg_factory(["data=cifar10_jpeg", f"data.root={shared_archive}"])
    cfg.data.cache_dir = shared_cache_dir()
    raw = load_raw(cfg.data)
    assert raw.train_x.shape == (50000, 3072) and raw.test_x.shape == (10000, 3072)
    assert np.array_equal(np.bincount(raw.train_y, minlength=10), [5000] * 10)
    assert np.array_equal(np.bincount(raw.test_y, minlength=10), [1000] * 10)
    # "batch k" is a fixed 10,000-image block of a seeded permutation: every class is represented
    ds = build_dataset(raw, cfg.split, 10000)
    assert len(ds.train) == 10000 and len(ds.val) == 10000
    assert np.bincount(ds.train.y, minlength=10).min() > 800
    assert 100 < raw.train_x[:100].mean() < 150  # real photographs, not noise around a constant
