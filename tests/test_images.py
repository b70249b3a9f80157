"""Image validation shared by every source, on generated bad files, and the shard store."""

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.data.images import ImageRejected, ImageStore, ShardWriter, encode, fit_square, load_image

SHARED = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "exif"


def png_bytes(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", **kw)
    return buf.getvalue()


def jpeg_bytes(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", **kw)
    return buf.getvalue()


GOOD = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))


def palette_image() -> Image.Image:
    im = Image.new("P", (8, 8), 0)
    im.putpalette([10, 200, 30] + [0, 0, 0] * 255)
    return im


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty file (0 bytes)"),
        (b"this is not an image at all", "unsupported or unrecognised format"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "unsupported or unrecognised format"),
        (jpeg_bytes(GOOD)[:200], "corrupt or truncated"),
        (png_bytes(GOOD)[:-300], "corrupt or truncated"),
        (png_bytes(GOOD)[:40] + b"\x00" * 50 + png_bytes(GOOD)[90:], "corrupt or truncated"),
    ],
)
def test_bad_bytes_are_rejected_with_a_reason(data, reason):
    with pytest.raises(ImageRejected) as e:
        load_image(data, max_pixels=10_000_000)
    assert e.value.reason == reason


def test_decompression_bomb_limit():
    with pytest.raises(ImageRejected) as e:
        load_image(png_bytes(Image.new("L", (200, 200))), max_pixels=10_000)
    assert e.value.reason == "decompression bomb" and "40,000 pixels" in e.value.detail


def test_missing_file(tmp_path):
    with pytest.raises(ImageRejected) as e:
        load_image(tmp_path / "nope.jpg", max_pixels=10**7)
    assert e.value.reason == "file not found"


@pytest.mark.parametrize(
    "image, expected",
    [
        (Image.new("CMYK", (8, 8), (0, 255, 255, 0)), (255, 0, 0)),
        (Image.new("L", (8, 8), 77), (77, 77, 77)),
        (palette_image(), (10, 200, 30)),
        (Image.new("RGBA", (8, 8), (0, 0, 0, 0)), (255, 255, 255)),  # transparent -> white
        (Image.fromarray(np.full((8, 8), 65535, np.uint16)), (255, 255, 255)),  # 16-bit
    ],
)
def test_modes_become_8bit_rgb(image, expected):
    data = jpeg_bytes(image) if image.mode == "CMYK" else png_bytes(image)
    rgb = load_image(data, max_pixels=10**6)
    assert rgb.dtype == np.uint8 and rgb.shape == (8, 8, 3)
    assert np.abs(rgb[4, 4].astype(int) - expected).max() <= 3


def test_exif_orientation_is_applied():
    im = Image.new("RGB", (40, 20), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    rgb = load_image(jpeg_bytes(im, exif=exif.tobytes()), max_pixels=10**6)
    assert rgb.shape == (40, 20, 3)


def test_real_camera_file_with_orientation_6(tmp_path):
    if not SHARED.exists():
        pytest.skip("../shared/testdata not beside the checkout")
    src = SHARED / "landscape_6.jpg"
    with Image.open(src) as im:
        w, h = im.size
    rgb = load_image(shutil.copy(src, tmp_path / "l.jpg"), max_pixels=10**8)
    assert rgb.shape[:2] == (w, h)  # rotated: width and height swap


def test_fit_square_crops_the_centre():
    rgb = np.zeros((20, 60, 3), np.uint8)
    rgb[:, 20:40] = 255  # a white centre band
    out = fit_square(rgb, 10)
    assert out.shape == (10, 10, 3) and out.mean() > 200


def test_shards_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    views = [rng.integers(0, 255, (16, 16, 3), dtype=np.uint8) for _ in range(5)]
    with ShardWriter(tmp_path, shard_views=2) as w:
        keys = [w.add(encode(v, "png")) for v in views]
    assert sorted(p.name for p in tmp_path.glob("*.bin")) == [
        "images-00000.bin",
        "images-00001.bin",
        "images-00002.bin",
    ]
    store = ImageStore(tmp_path)
    for k, v in zip(keys, views):
        assert np.array_equal(store.read(k), v)
