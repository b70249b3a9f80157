"""``roost audit``'s reading of one file: every finding (kind, field, value) of its metadata,
whatever the container, or the reason the file cannot be read. The visual part (what a model
infers from the pixels) is added above, by the command (``ml.privacy.report``)."""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from ml.privacy import IDENTITY, OTHER, TIME
from ml.privacy.exif import ExifError, exif_findings, parse_exif
from ml.privacy.formats import (
    APP1,
    APP13,
    COM,
    XMP_EXTENDED,
    XMP_JPEG,
    FormatError,
    jpeg_segments,
    png_chunks,
    png_size,
    sniff,
    webp_chunks,
    webp_size,
)
from ml.privacy.gif import ICC_APP, LOOPING, XMP_APP, gif_blocks, xmp_packet
from ml.privacy.isobmff import item_bytes, parse_heif, primary_size
from ml.privacy.xmp import iptc_findings, photoshop_iptc, xmp_findings

PNG_TEXT = {b"tEXt", b"zTXt", b"iTXt"}
PNG_KEYWORDS = {"author": IDENTITY, "copyright": IDENTITY, "creation time": TIME, "owner": IDENTITY}
XMP_PNG_KEYWORD = "XML:com.adobe.xmp"


class AuditError(ValueError):
    """The file cannot be audited: the message names what is wrong and what to do."""


@dataclass
class Audit:
    input: str
    format: str = ""
    findings: list[dict] = field(default_factory=list)
    error: str = ""
    visual: dict | None = None

    def kinds(self) -> set[str]:
        return {f["kind"] for f in self.findings}

    def to_json(self) -> dict:
        out = {"input": self.input, "findings": self.findings, "visual": self.visual}
        return out | ({"error": self.error} if self.error else {})


def read_file(path: Path) -> bytes:
    """The file's bytes, or an ``AuditError`` saying why not (missing, a folder, a link loop,
    permissions, empty)."""
    try:
        data = Path(path).read_bytes()
    except PermissionError:
        raise AuditError(f"{path}: permission denied; make the file readable (chmod u+r)") from None
    except IsADirectoryError:
        raise AuditError(f"{path}: a folder where a file was expected") from None
    except FileNotFoundError:
        reason = "a symbolic link to nowhere" if os.path.islink(path) else "no such file"
        raise AuditError(f"{path}: {reason}") from None
    except OSError as e:  # ELOOP: a symbolic-link loop
        raise AuditError(f"{path}: cannot be read ({e.strerror or e})") from None
    if not data:
        raise AuditError(f"{path}: the file is empty (0 bytes)")
    return data


def check_pixels(width: int, height: int, max_pixels: int, name: str) -> None:
    """Pillow's rule: more than twice the limit is a decompression bomb."""
    if width * height > 2 * max_pixels:
        raise AuditError(
            f"{name}: {width} x {height} pixels is over twice the decompression-bomb limit of {max_pixels:,}: "
            "refused (a bomb or a mislabelled file)"
        )


def _exif(data: bytes, prefix: str = "") -> list[dict]:
    try:
        return exif_findings(parse_exif(data), prefix)
    except (ExifError, IndexError, ValueError) as e:  # unreadable EXIF still reveals that it is there
        return [{"kind": OTHER, "field": prefix + "EXIF", "value": f"an EXIF block that could not be read ({e})"}]


def jpeg_findings(data: bytes, max_pixels: int, name: str) -> list[dict]:
    jpeg = jpeg_segments(data)
    check_pixels(jpeg.width, jpeg.height, max_pixels, name)
    out, extended = [], {}
    for seg in jpeg.head:
        p = seg.payload
        if seg.marker == APP1 and p.startswith(b"Exif\0\0"):
            out += _exif(p)
        elif seg.marker == APP1 and p.startswith(XMP_JPEG):
            out += xmp_findings(p[len(XMP_JPEG) :])
        elif seg.marker == APP1 and p.startswith(XMP_EXTENDED):  # GUID(32), full length, offset, part
            guid, offset = p[35:67], int.from_bytes(p[71:75], "big")
            extended.setdefault(guid, []).append((offset, p[75:]))
        elif seg.marker == APP13:
            block = photoshop_iptc(p)
            if block:
                out += iptc_findings(block)
        elif seg.marker == COM and p.strip(b"\0 "):
            out.append({"kind": OTHER, "field": "Comment", "value": p.decode("utf-8", "replace").strip("\0 ")[:200]})
    for parts in extended.values():
        out += xmp_findings(b"".join(part for _, part in sorted(parts)))
    trailer = data[jpeg.scan_end :]
    if trailer.strip(b"\0\xff \r\n"):
        out.append({"kind": OTHER, "field": "Trailer", "value": f"{len(trailer)} bytes after the image's end"})
    return out


def _png_text(chunk) -> tuple[str, str]:
    keyword, _, rest = chunk.data.partition(b"\0")
    key = keyword.decode("latin-1")
    if chunk.kind == b"tEXt":
        return key, rest.decode("latin-1")
    if chunk.kind == b"zTXt":
        return key, zlib.decompress(rest[1:]).decode("latin-1", "replace")
    compressed, _method, rest = rest[0], rest[1], rest[2:]
    _lang, _, rest = rest.partition(b"\0")
    _translated, _, text = rest.partition(b"\0")
    return key, (zlib.decompress(text) if compressed else text).decode("utf-8", "replace")


def png_time(data: bytes) -> str:
    """A tIME chunk (year, month, day, hour, minute, second) as EXIF writes times."""
    if len(data) != 7:
        return f"a tIME chunk of {len(data)} bytes (7 expected): {data.hex()}"
    year, month, day, hour, minute, second = struct.unpack(">HBBBBB", data)
    return f"{year:04d}:{month:02d}:{day:02d} {hour:02d}:{minute:02d}:{second:02d}"


def png_findings(data: bytes, max_pixels: int, name: str) -> list[dict]:
    chunks = png_chunks(data)
    check_pixels(*png_size(chunks), max_pixels, name)
    out = []
    for c in chunks:
        if c.kind == b"eXIf":
            out += _exif(c.data)
        elif c.kind == b"tIME":
            out.append({"kind": TIME, "field": "PNG:ModifyDate", "value": png_time(c.data)})
        elif c.kind in PNG_TEXT:
            key, text = _png_text(c)
            if key == XMP_PNG_KEYWORD:
                out += xmp_findings(text)
            elif text.strip():
                kind = PNG_KEYWORDS.get(key.lower(), OTHER)
                out.append({"kind": kind, "field": f"PNG:{key}", "value": text.strip()[:200]})
    return out


def webp_findings(data: bytes, max_pixels: int, name: str) -> list[dict]:
    chunks = webp_chunks(data)
    check_pixels(*webp_size(chunks), max_pixels, name)
    out = []
    for c in chunks:
        if c.kind == b"EXIF":
            out += _exif(c.data)
        elif c.kind == b"XMP ":
            out += xmp_findings(c.data)
    return out


def heic_findings(data: bytes, max_pixels: int, name: str) -> list[dict]:
    """Every metadata item of a HEIF / AVIF file (the primary image's and its thumbnails'): EXIF
    items, XMP and other ``mime`` items, user descriptions; read from the boxes, no pixel decoded."""
    heif = parse_heif(data)
    check_pixels(*primary_size(heif), max_pixels, name)
    out = []
    for item in sorted(heif.items.values(), key=lambda i: i.id):
        payload = item_bytes(heif, item)
        if item.type == b"Exif" and len(payload) >= 4:
            skip = int.from_bytes(payload[:4], "big")  # to the TIFF header
            out += _exif(payload[4 + skip :] if 4 + skip < len(payload) else payload[4:])
        elif item.type == b"mime" and "xml" in item.content_type:
            out += xmp_findings(payload)
        elif item.type in (b"mime", b"uri "):
            what = item.content_type or item.type.decode("latin-1")
            out.append({"kind": OTHER, "field": "HEIF:MetadataItem", "value": f"{what}, {len(payload)} bytes"})
    return out


def tiff_findings(data: bytes) -> list[dict]:
    out = _exif(data)
    exif = parse_exif(data)
    ifd0 = exif.ifds["0"]
    if isinstance(ifd0.get(700), bytes):  # XMP
        out += xmp_findings(ifd0[700])
    iptc = ifd0.get(33723)  # IPTC: UNDEFINED / BYTE, or LONG words (as many writers store it)
    if isinstance(iptc, tuple) and all(isinstance(v, int) for v in iptc):
        iptc = b"".join(v.to_bytes(4, "little" if exif.order == "<" else "big") for v in iptc)
    if isinstance(iptc, bytes):
        out += iptc_findings(iptc)
    return out


def gif_findings(data: bytes, max_pixels: int, name: str) -> list[dict]:
    blocks = gif_blocks(data)
    check_pixels(*struct.unpack("<HH", data[6:10]), max_pixels, name)
    out = []
    for b in blocks:
        if b.kind == "comment" and b.body.strip(b"\0 "):
            out.append({"kind": OTHER, "field": "GIF:Comment", "value": b.body.decode("latin-1").strip("\0 ")[:200]})
        elif b.kind == "application" and b.label == XMP_APP:
            out += xmp_findings(xmp_packet(b))
        elif b.kind == "application" and b.label not in LOOPING and b.label != ICC_APP:
            label = b.label.decode("latin-1", "replace")
            out.append({"kind": OTHER, "field": "GIF:ApplicationExtension", "value": f"{label}, {len(b.body)} bytes"})
    return out


FINDERS = {
    "jpeg": jpeg_findings,
    "png": png_findings,
    "webp": webp_findings,
    "heic": heic_findings,
    "avif": heic_findings,
    "gif": gif_findings,
}


def audit_bytes(data: bytes, name: str, max_pixels: int) -> tuple[str, list[dict]]:
    """(format, findings) of a file's bytes; raises ``AuditError`` / ``FormatError`` when they
    cannot be read."""
    fmt = sniff(data)
    if fmt in FINDERS:
        return fmt, FINDERS[fmt](data, max_pixels, name)
    if fmt == "tiff":
        return fmt, tiff_findings(data)
    if fmt == "bmp":  # a BMP has no metadata container
        return fmt, []
    raise AuditError(f"{name}: not an image Roost can read (JPEG, PNG, WebP, HEIC, AVIF, TIFF, GIF, BMP)")


def audit_file(path: Path, max_pixels: int) -> Audit:
    """One file's findings, or its error; never raises for a bad file."""
    result = Audit(input=str(path))
    try:
        result.format, result.findings = audit_bytes(read_file(path), str(path), max_pixels)
    except (AuditError, FormatError, ExifError) as e:
        result.error = str(e) if str(e).startswith(str(path)) else f"{path}: {e}"
    except Exception as e:  # a file that breaks a reader is that file's error, not the batch's
        result.error = f"{path}: unreadable ({type(e).__name__}: {e})"
    return result
