"""Image validation shared by every source, and the view store.

Validation (``load_image``): every image must decode fully; EXIF orientation is applied; it is
converted to 8-bit RGB (CMYK, grayscale, palette, alpha composited over white, 16-bit scaled);
a decompression-bomb limit applies; zero bytes, truncated or corrupt data and unsupported
formats are rejected with a reason (``ImageRejected``). ``fit_square`` then resizes to the
stored size the way CLIP's processor does: shorter side to the size, centre crop.

Storage (``ShardWriter`` / ``ImageStore``): views are encoded (PNG, lossless, by default; JPEG
for large photo sets) and appended to shard files ``images-00000.bin`` of ``shard_views``
views each. The ``images`` table keeps each view's key ``<shard>:<offset>:<nbytes>``; a reader
memory-maps a shard and decodes one view from its bytes. Few large files suit DVC and object
stores far better than hundreds of thousands of small ones, and a loader reads a view with
one slice and one decode.
"""

from __future__ import annotations

import io
import mmap
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps, UnidentifiedImageError


# File signatures of formats Pillow reads: such a file that does not open is corrupt, not foreign.
KNOWN_SIGNATURES = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"II*\x00", b"MM\x00*", b"BM", b"RIFF")


class ImageRejected(ValueError):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


def register_heif() -> bool:
    """Let Pillow open HEIC/HEIF photos (pillow-heif); False when it is not installed."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return False
    register_heif_opener()
    return True


HEIF = register_heif()


def load_image(source: Path | bytes, max_pixels: int) -> np.ndarray:
    """Decode, orient and convert one image to uint8 RGB (h, w, 3), or raise ImageRejected."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ImageRejected("file not found", str(path)) from None
        except OSError as e:
            raise ImageRejected("unreadable file", f"{path}: {e}") from None
    else:
        data = bytes(source)
    if len(data) == 0:
        raise ImageRejected("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            w, h = im.size
            if w * h > max_pixels:
                raise ImageRejected("decompression bomb", f"{w}x{h} = {w * h:,} pixels > limit {max_pixels:,}")
            im.load()
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageRejected("decompression bomb", str(e)) from None
    except UnidentifiedImageError:
        if data.startswith(KNOWN_SIGNATURES):
            raise ImageRejected("corrupt or truncated", "a known image signature, but the header does not decode") from None
        raise ImageRejected("unsupported or unrecognised format", repr(data[:12])) from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageRejected("corrupt or truncated", str(e)) from None
    try:
        im = ImageOps.exif_transpose(im)
    except Exception as e:  # a malformed EXIF block should not cost a good image  # noqa: BLE001
        raise ImageRejected("corrupt EXIF orientation", str(e)) from None
    return to_rgb(im)


def to_rgb(im: Image.Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if (im.mode.startswith("I;16") or arr.max() > 255) else 255.0
        grey = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(im.convert("RGB"))


def fit_square(rgb: np.ndarray, size: int) -> np.ndarray:
    """Shorter side to ``size``, then centre crop to size x size (as CLIP's processor does)."""
    h, w = rgb.shape[:2]
    if (h, w) == (size, size):
        return rgb
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    im = Image.fromarray(rgb).resize((nw, nh), Image.Resampling.BICUBIC)
    top, left = (nh - size) // 2, (nw - size) // 2
    return np.asarray(im.crop((left, top, left + size, top + size)))


def encode(rgb: np.ndarray, encoding: str, quality: int = 95) -> bytes:
    buf = io.BytesIO()
    if encoding == "png":
        Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)
    elif encoding == "jpeg":
        Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    else:
        raise ValueError(f"unknown encoding {encoding!r}; use png or jpeg")
    return buf.getvalue()


@dataclass
class View:
    """One view of a location as a source produced it: its encoded image, or why it was rejected."""

    location_id: str
    view: int
    heading: float
    data: bytes | None  # encoded image, or None when rejected
    water_fraction: float = float("nan")
    original: str = ""
    reason: str = ""
    detail: str = ""


class ShardWriter:
    """Appends encoded views to shard files in ``folder``; returns each view's key."""

    def __init__(self, folder: Path, shard_views: int):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.shard_views = shard_views
        self._n = 0
        self._file = None
        self._name = ""
        self._offset = 0

    def add(self, data: bytes) -> str:
        if self._file is None or self._n % self.shard_views == 0:
            self._open(self._n // self.shard_views)
        key = f"{self._name}:{self._offset}:{len(data)}"
        self._file.write(data)
        self._offset += len(data)
        self._n += 1
        return key

    def _open(self, index: int) -> None:
        if self._file is not None:
            self._file.close()
        self._name = f"images-{index:05d}.bin"
        self._file = open(self.folder / self._name, "wb")  # noqa: SIM115
        self._offset = 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ImageStore:
    """Reads views by key from the shards of one folder (memory-mapped, opened on first use)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._maps: dict[str, mmap.mmap] = {}

    def raw(self, key: str) -> bytes:
        shard, offset, nbytes = key.rsplit(":", 2)
        if shard not in self._maps:
            with open(self.folder / shard, "rb") as f:
                self._maps[shard] = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        start = int(offset)
        return self._maps[shard][start : start + int(nbytes)]

    def read(self, key: str) -> np.ndarray:
        with Image.open(io.BytesIO(self.raw(key))) as im:
            return np.asarray(im.convert("RGB"))

    def close(self) -> None:
        for m in self._maps.values():
            m.close()
        self._maps.clear()

    def __enter__(self) -> ImageStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self):  # picklable for DataLoader workers: maps reopen lazily
        return {"folder": self.folder, "_maps": {}}


@dataclass(frozen=True)
class ViewTable:
    """Locations' views, joined by location id: row ``k`` of ``index`` holds the positions in
    ``keys`` of location ``k``'s views in view order (-1 padding, ``mask`` False there)."""

    keys: np.ndarray  # (n_images,) store keys of the images table, in its row order
    index: np.ndarray  # (n_locations, V) positions into keys
    mask: np.ndarray  # (n_locations, V)

    def keys_of(self, k: int) -> list[str]:
        """Location ``k``'s view keys in view order."""
        return [str(self.keys[r]) for r in self.index[k][self.mask[k]]]

    def read(self, store: ImageStore, k: int) -> list[np.ndarray]:
        return [store.read(key) for key in self.keys_of(k)]

    def flat_rows(self, locations: np.ndarray | slice) -> tuple[np.ndarray, np.ndarray]:
        """(image rows, mask) of some locations: (B * V,) rows into ``keys``, a location's
        padding filled with its first view (so every row can be read; the mask drops them),
        and the (B, V) mask to average the views with."""
        index, mask = self.index[locations], self.mask[locations]
        return np.where(mask, index, index[:, :1]).ravel(), mask

    def draw(self, locations: np.ndarray, k: int, noise: np.ndarray) -> ViewTable:
        """The table of ``locations`` (in that order) with ``k`` of each one's own views drawn at
        random without replacement (all of them where it has ``k`` or fewer; ``k`` 0: all), kept
        in view order: what a training batch reads when ``geocell_model.train_views`` is set.
        ``noise`` (len(locations), V) uniform numbers rank the views (the ``k`` lowest win), so
        the draw depends on the numbers a location is given, not on which batch or process it
        falls in."""
        index, mask = self.index[locations], self.mask[locations]
        if k <= 0 or k >= index.shape[1]:
            return ViewTable(keys=self.keys, index=index, mask=mask)
        draws = np.where(mask, noise, 2.0)  # padding sorts last
        chosen = np.sort(np.argsort(draws, axis=1, kind="stable")[:, :k], axis=1)  # view order
        return ViewTable(
            keys=self.keys, index=np.take_along_axis(index, chosen, 1), mask=np.take_along_axis(mask, chosen, 1)
        )


def view_table(location_ids: Iterable, images: pd.DataFrame, views: int = 0) -> ViewTable:
    """The one map from locations to their stored views, used by training, prototypes and
    evaluation: for each id of ``location_ids`` (in that order) its first ``views`` views (0 =
    all) of the ``images`` table (``location_id``, ``view``, ``key``), sorted by view. Ids are
    compared as strings, and the join is by id: the images table may be in any order."""
    keys = images["key"].to_numpy()
    owner = images["location_id"].astype(str).to_numpy()
    order = np.lexsort((images["view"].to_numpy(np.int64), owner))  # by location, then view
    by_location: dict[str, list[int]] = {}
    for r in order.tolist():
        by_location.setdefault(owner[r], []).append(r)
    rows = [by_location.get(str(i), [])[: views or None] for i in location_ids]
    width = max([len(r) for r in rows] + [1])
    index = np.full((len(rows), width), -1, dtype=np.int64)
    for k, r in enumerate(rows):
        index[k, : len(r)] = r
    return ViewTable(keys=keys, index=index, mask=index >= 0)


def contact_sheet(views: list[np.ndarray], columns: int, scale: int = 2) -> bytes:
    """A grid of views as PNG bytes."""
    if not views:
        views = [np.zeros((8, 8, 3), np.uint8)]
    h, w = views[0].shape[:2]
    rows = -(-len(views) // columns)
    sheet = np.full((rows * (h + 2), columns * (w + 2), 3), 255, np.uint8)
    for i, v in enumerate(views):
        r, c = divmod(i, columns)
        sheet[r * (h + 2) : r * (h + 2) + h, c * (w + 2) : c * (w + 2) + w] = v
    im = Image.fromarray(sheet).resize((sheet.shape[1] * scale, sheet.shape[0] * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()
