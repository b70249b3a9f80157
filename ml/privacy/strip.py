"""``roost strip``: a copy with no location, time, identity or device metadata, written losslessly.

- JPEG: every APPn segment and comment is dropped but JFIF (APP0), Adobe (APP14, which says how
  to read CMYK/YCCK colours) and, with ``keep`` ``icc``, the ICC profile (APP2); with
  ``orientation``, a new EXIF block holding the Orientation tag alone. The compressed data,
  from the first scan marker to EOI, is copied byte for byte (the decoded pixels are the same);
  data after EOI (trailers, appended preview images) is dropped.
- PNG: eXIf, tEXt, zTXt, iTXt and tIME chunks dropped (iCCP kept with ``icc``; a minimal eXIf
  with ``orientation``); image chunks untouched.
- WebP: EXIF and XMP chunks dropped (ICCP kept with ``icc``), the VP8X flags and RIFF size
  rewritten; image chunks untouched.
- HEIC / HEIF / AVIF: the item boxes rewritten without the Exif and XMP items and thumbnails,
  every coded image item (tiles, alpha, depth) copied unchanged (``ml.privacy.isobmff``).
- TIFF: each image directory rewritten with the decoding tags only, strips and tiles copied
  unchanged (``ml.privacy.tiff``).
- GIF: comment and application extensions dropped but the animation loop (and ICC with ``icc``);
  image blocks untouched (``ml.privacy.gif``).
- BMP: no metadata container; copied as it is.

What cannot be rewritten losslessly is refused with the reason (never re-encoded): BigTIFF, TIFF
with SubIFDs or old-style JPEG, HEIF image sequences, HEIF items located through other items.
Every output is audited before it takes its name: a finding left is an error and nothing is
written. Writes are atomic: a temporary file in the destination's folder, fsync, rename.
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ml.privacy.audit import AuditError, audit_bytes, read_file
from ml.privacy.exif import ExifError, orientation_only, parse_exif
from ml.privacy.formats import (
    APP0,
    APP1,
    APP2,
    APP13,
    APP14,
    COM,
    ICC_JPEG,
    XMP_EXTENDED,
    XMP_JPEG,
    FormatError,
    jpeg_segments,
    png_chunk,
    png_chunks,
    sniff,
    webp_chunk,
    webp_chunks,
)
from ml.privacy.gif import strip_gif
from ml.privacy.heif_strip import strip_heif
from ml.privacy.tiff import strip_tiff

KEEP = ("icc", "orientation")
PNG_DROP = {b"eXIf", b"tEXt", b"zTXt", b"iTXt", b"tIME"}


class StripError(ValueError):
    pass


@dataclass
class Stripped:
    data: bytes
    removed: list[str]  # what went: segment or chunk names


def _orientation(payload: bytes) -> int | None:
    try:
        return parse_exif(payload).orientation
    except (ExifError, IndexError, ValueError, struct.error):
        return None


def _jpeg_name(marker: int, payload: bytes) -> str:
    if marker == APP1 and payload.startswith(b"Exif\0\0"):
        return "EXIF"
    if marker == APP1 and payload.startswith((XMP_JPEG, XMP_EXTENDED)):
        return "XMP"
    if marker == APP13:
        return "IPTC/Photoshop (APP13)"
    if marker == COM:
        return "Comment"
    if marker == APP2 and payload.startswith(ICC_JPEG):
        return "ICC profile"
    return f"APP{marker - APP0}"


def strip_jpeg(data: bytes, keep: set[str]) -> Stripped:
    jpeg = jpeg_segments(data)
    kept, removed, orientation = [], [], None
    for seg in jpeg.head:
        m, p = seg.marker, seg.payload
        raw = data[seg.start : seg.end]
        if (m == APP0 and p.startswith(b"JFIF\0")) or (m == APP14 and p.startswith(b"Adobe")):
            kept.append(raw)
        elif m == APP2 and p.startswith(ICC_JPEG) and "icc" in keep:
            kept.append(raw)
        elif APP0 <= m <= 0xEF or m == COM:
            if m == APP1 and p.startswith(b"Exif\0\0"):
                orientation = _orientation(p)
            name = _jpeg_name(m, p)
            if name not in removed:
                removed.append(name)
        else:
            kept.append(raw)  # tables, frame header, restart interval
    if "orientation" in keep and orientation and orientation != 1:
        payload = orientation_only(orientation)
        app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
        first = 1 if kept and kept[0][1] == APP0 else 0
        kept.insert(first, app1)
    trailer = len(data) - jpeg.scan_end
    if trailer:
        removed.append(f"{trailer} bytes after the image's end")
    return Stripped(b"\xff\xd8" + b"".join(kept) + data[jpeg.scan_start : jpeg.scan_end], removed)


def strip_png(data: bytes, keep: set[str]) -> Stripped:
    out, removed = [data[:8]], []
    for c in png_chunks(data):
        name = c.kind.decode("latin-1")
        if c.kind == b"eXIf" and "orientation" in keep and (o := _orientation(c.data)) and o != 1:
            out.append(png_chunk(b"eXIf", orientation_only(o)[6:]))
            removed.append("eXIf (all but Orientation)")
        elif c.kind in PNG_DROP or (c.kind == b"iCCP" and "icc" not in keep):
            removed.append(name)
        else:
            out.append(data[c.start : c.end])
    return Stripped(b"".join(out), removed)


def strip_webp(data: bytes, keep: set[str]) -> Stripped:
    body, removed, flags_at = [], [], None
    for c in webp_chunks(data):
        name = c.kind.decode("latin-1").strip()
        if c.kind == b"EXIF" and "orientation" in keep and (o := _orientation(c.data)) and o != 1:
            body.append(webp_chunk(b"EXIF", orientation_only(o)[6:]))
            removed.append("EXIF (all but Orientation)")
        elif c.kind in (b"EXIF", b"XMP ") or (c.kind == b"ICCP" and "icc" not in keep):
            removed.append(name)
        else:
            if c.kind == b"VP8X":
                flags_at = sum(len(b) for b in body) + 8
            body.append(data[c.start : c.end])
    payload = bytearray(b"".join(body))
    if flags_at is not None:
        kinds = {c.kind for c in webp_chunks(b"RIFF" + struct.pack("<I", 4 + len(payload)) + b"WEBP" + payload)}
        flags = payload[flags_at] & ~(0x20 | 0x08 | 0x04)
        flags |= (
            (0x20 if b"ICCP" in kinds else 0) | (0x08 if b"EXIF" in kinds else 0) | (0x04 if b"XMP " in kinds else 0)
        )
        payload[flags_at] = flags
    return Stripped(b"RIFF" + struct.pack("<I", 4 + len(payload)) + b"WEBP" + bytes(payload), removed)


def strip_heif_file(data: bytes, keep: set[str]) -> Stripped:
    """Colour profile and rotation are item properties of the image: kept whatever ``keep`` says."""
    return Stripped(*strip_heif(data))


def strip_tiff_file(data: bytes, keep: set[str]) -> Stripped:
    return Stripped(*strip_tiff(data, keep))


def strip_gif_file(data: bytes, keep: set[str]) -> Stripped:
    return Stripped(*strip_gif(data, keep))


def strip_bmp(data: bytes, keep: set[str]) -> Stripped:
    return Stripped(data, [])


STRIPPERS = {
    "jpeg": strip_jpeg,
    "png": strip_png,
    "webp": strip_webp,
    "heic": strip_heif_file,
    "avif": strip_heif_file,
    "tiff": strip_tiff_file,
    "gif": strip_gif_file,
    "bmp": strip_bmp,
}


def strip_bytes(data: bytes, keep: set[str]) -> Stripped:
    fmt = sniff(data)
    if fmt not in STRIPPERS:
        raise StripError("not an image Roost can strip (JPEG, PNG, WebP, HEIC, AVIF, TIFF, GIF, BMP)")
    try:
        return STRIPPERS[fmt](data, keep)
    except FormatError as e:
        raise StripError(f"{fmt.upper()}: {e}") from None


def _write_atomically(data: bytes, dest: Path, mode_from: Path | None) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode_from is not None:
            shutil.copymode(mode_from, tmp)
        else:  # a new file's usual permissions (mkstemp makes it private)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(dest.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def strip_file(src: Path, dest: Path, keep: set[str], max_pixels: int, force: bool = False) -> dict:
    """Strip ``src`` into ``dest`` (``dest`` = ``src``: in place, keeping its permissions); the
    record ``roost strip --format json`` prints. Never raises for a bad file."""
    record = {"input": str(src), "output": str(dest)}
    in_place = Path(src).resolve() == Path(dest).resolve() if Path(dest).exists() else False
    try:
        data = read_file(src)
        if dest.exists() and not (force or in_place):
            raise StripError(f"{dest} exists; pass --force to overwrite it")
        stripped = strip_bytes(data, keep)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            _, left = audit_bytes(stripped.data, str(dest), max_pixels)
        except (AuditError, FormatError, ExifError) as e:
            raise StripError(f"the stripped copy could not be read back ({e}): nothing was written") from None
        if left:
            fields = ", ".join(f["field"] for f in left)
            raise StripError(f"the stripped copy still shows {fields}: nothing was written")
        _write_atomically(stripped.data, dest, src if in_place else None)
        return record | {"removed": stripped.removed, "bytes_before": len(data), "bytes_after": len(stripped.data)}
    except (AuditError, StripError, FormatError, OSError) as e:
        message = str(e)
        return record | {"error": message if message.startswith(str(src)) else f"{src}: {message}"}
