"""The containers, walked byte by byte: JPEG marker segments (up to the first scan, then the
compressed data to EOI and any trailer), PNG chunks and WebP (RIFF) chunks (HEIF / AVIF boxes:
``ml.privacy.isobmff``, TIFF directories: ``ml.privacy.tiff``, GIF blocks: ``ml.privacy.gif``);
the format from the file's signature. Truncated or malformed structure raises ``FormatError`` with what is wrong."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

APP0, APP1, APP2, APP13, APP14, COM, SOS, EOI = 0xE0, 0xE1, 0xE2, 0xED, 0xEE, 0xFE, 0xDA, 0xD9
SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
XMP_JPEG = b"http://ns.adobe.com/xap/1.0/\0"
XMP_EXTENDED = b"http://ns.adobe.com/xmp/extension/\0"
ICC_JPEG = b"ICC_PROFILE\0"


class FormatError(ValueError):
    """The file's structure is broken (truncated, a length past the end, a missing marker)."""


def sniff(data: bytes) -> str:
    """jpeg | png | webp | heic | avif | tiff | gif | bmp | unknown, from the signature."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == PNG_SIGNATURE:
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis"):
        return "avif"
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"hevc", b"hevx"):
        return "heic"
    if data[:4] in (b"II*\0", b"MM\0*"):
        return "tiff"
    if data[:4] == b"GIF8":
        return "gif"
    if data[:2] == b"BM":
        return "bmp"
    return "unknown"


@dataclass
class Segment:
    marker: int
    start: int  # offset of the 0xFF of its marker
    end: int  # offset after it
    payload: bytes  # after the length field


@dataclass
class Jpeg:
    head: list[Segment]  # every segment before the first scan
    scan_start: int  # offset of the first SOS marker: from here to ``scan_end`` the compressed data
    scan_end: int  # offset after EOI
    width: int
    height: int


def jpeg_segments(data: bytes) -> Jpeg:
    if data[:2] != b"\xff\xd8":
        raise FormatError("not a JPEG (no SOI marker)")
    pos, head, width, height = 2, [], 0, 0
    while True:
        while pos < len(data) and data[pos] == 0xFF and pos + 1 < len(data) and data[pos + 1] == 0xFF:
            pos += 1  # fill bytes
        if pos + 4 > len(data) or data[pos] != 0xFF:
            raise FormatError(f"truncated JPEG: no scan before the end of the file (at byte {pos})")
        marker = data[pos + 1]
        if marker == SOS:
            break
        if 0xD0 <= marker <= 0xD8 or marker == 0x01:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        end = pos + 2 + length
        if length < 2 or end > len(data):
            raise FormatError(f"truncated JPEG: a segment (0xFF{marker:02X}) runs past the end of the file")
        payload = data[pos + 4 : end]
        if marker in SOF and len(payload) >= 5:
            height, width = struct.unpack(">HH", payload[1:5])
        head.append(Segment(marker, pos, end, payload))
        pos = end
    scan_end = _find_eoi(data, pos)
    return Jpeg(head, pos, scan_end, width, height)


def _find_eoi(data: bytes, pos: int) -> int:
    """The offset after EOI: inside entropy-coded data 0xFF is followed by 0x00 or a restart
    marker, so the first 0xFFD9 ends the image (progressive files' later scans included)."""
    at = data.find(b"\xff\xd9", pos)
    if at < 0:
        raise FormatError("truncated JPEG: the compressed data has no end marker (EOI)")
    return at + 2


@dataclass
class Chunk:
    kind: bytes  # 4 bytes: b"IHDR", b"eXIf", b"EXIF", b"XMP ", ...
    start: int
    end: int
    data: bytes


def png_chunks(data: bytes) -> list[Chunk]:
    if data[:8] != PNG_SIGNATURE:
        raise FormatError("not a PNG (bad signature)")
    pos, chunks = 8, []
    while pos < len(data):
        if pos + 12 > len(data):
            raise FormatError("truncated PNG: a chunk header runs past the end of the file")
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise FormatError(f"truncated PNG: chunk {kind.decode('latin-1')!r} runs past the end of the file")
        chunks.append(Chunk(kind, pos, end, data[pos + 8 : pos + 8 + length]))
        pos = end
        if kind == b"IEND":
            break
    if not chunks or chunks[0].kind != b"IHDR" or chunks[-1].kind != b"IEND":
        raise FormatError("truncated PNG: no IHDR first or no IEND last")
    return chunks


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_size(chunks: list[Chunk]) -> tuple[int, int]:
    return struct.unpack(">II", chunks[0].data[:8])


def webp_chunks(data: bytes) -> list[Chunk]:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise FormatError("not a WebP (no RIFF/WEBP header)")
    (size,) = struct.unpack("<I", data[4:8])
    if size + 8 > len(data):
        raise FormatError("truncated WebP: the RIFF size runs past the end of the file")
    pos, chunks = 12, []
    while pos + 8 <= size + 8:
        kind = data[pos : pos + 4]
        (length,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        end = pos + 8 + length + (length & 1)
        if pos + 8 + length > len(data):
            raise FormatError(f"truncated WebP: chunk {kind.decode('latin-1')!r} runs past the end of the file")
        chunks.append(Chunk(kind, pos, min(end, len(data)), data[pos + 8 : pos + 8 + length]))
        pos = end
    if not chunks:
        raise FormatError("truncated WebP: no chunks")
    return chunks


def webp_chunk(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) & 1 else b"")


def webp_size(chunks: list[Chunk]) -> tuple[int, int]:
    for c in chunks:
        if c.kind == b"VP8X" and len(c.data) >= 10:
            w = int.from_bytes(c.data[4:7], "little") + 1
            return w, int.from_bytes(c.data[7:10], "little") + 1
        if c.kind == b"VP8 " and len(c.data) >= 10:
            w, h = struct.unpack("<HH", c.data[6:10])
            return w & 0x3FFF, h & 0x3FFF
        if c.kind == b"VP8L" and len(c.data) >= 5:
            bits = int.from_bytes(c.data[1:5], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return 0, 0
