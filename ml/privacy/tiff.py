"""TIFF rewritten without metadata: each image directory (IFD) of the chain keeps only the tags a
reader needs to decode its pixels, and its strips or tiles are copied byte for byte.

Kept: the tags of ``DECODE`` (size, samples, compression, photometric interpretation, strip and
tile layout, colour map, predictor, YCbCr and colorimetry tags), the ICC profile (34675) with
``keep`` ``icc`` and the Orientation (274) with ``keep`` ``orientation``. Everything else goes:
the Exif, GPS and Interoperability IFDs, XMP (700), IPTC (33723), Photoshop (34377), Make, Model,
Software, Artist, Copyright, dates, descriptions, private and unknown tags. Reduced-resolution
IFDs (thumbnails: NewSubfileType bit 0) are dropped; the pages of a multi-page TIFF are kept.
Refused with the reason: BigTIFF, SubIFDs (330) and old-style JPEG (513), whose data this
rewrite does not move. A truncated IFD, an offset past the end of the file or an IFD chain that
loops raises ``FormatError``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ml.privacy.formats import FormatError

SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
STRIP_OFFSETS, STRIP_COUNTS, TILE_OFFSETS, TILE_COUNTS = 273, 279, 324, 325
NEW_SUBFILE_TYPE, ORIENTATION, ICC = 254, 274, 34675
DECODE = {
    254, 255, 256, 257, 258, 259, 262, 263, 264, 265, 266, 273, 277, 278, 279, 280, 281, 282, 283, 284,
    290, 291, 292, 293, 296, 301, 317, 318, 319, 320, 321, 322, 323, 324, 325, 332, 334, 336, 338, 339,
    340, 341, 342, 347, 529, 530, 531, 532,
}  # fmt: skip
REFUSED_TAGS = {330: "SubIFDs", 513: "old-style JPEG (JPEGInterchangeFormat)"}
NAMES = {
    34665: "EXIF", 34853: "GPS", 40965: "Interoperability", 700: "XMP", 33723: "IPTC", 34377: "Photoshop",
    34675: "ICC profile", 271: "Make", 272: "Model", 305: "Software", 306: "DateTime", 315: "Artist",
    33432: "Copyright", 270: "ImageDescription", 316: "HostComputer", 269: "DocumentName", 274: "Orientation",
}  # fmt: skip
MAX_IFDS = 4096


@dataclass
class Entry:
    tag: int
    type: int
    count: int
    value: bytes  # the value's bytes, wherever they were stored


@dataclass
class Ifd:
    entries: list[Entry]


def _read_ifds(data: bytes) -> tuple[str, list[Ifd]]:
    if data[:4] not in (b"II*\0", b"MM\0*"):
        if data[:4] in (b"II+\0", b"MM\0+"):
            raise FormatError("BigTIFF: strip rewrites classic TIFF only")
        raise FormatError("not a TIFF (bad header)")
    order = "<" if data[:2] == b"II" else ">"
    (offset,) = struct.unpack(order + "I", data[4:8])
    ifds, seen = [], set()
    while offset:
        if offset in seen or len(seen) > MAX_IFDS:
            raise FormatError(f"malformed TIFF: the IFD chain loops (back to offset {offset})")
        seen.add(offset)
        if offset + 2 > len(data):
            raise FormatError(f"malformed TIFF: an IFD offset ({offset}) lies past the end of the file")
        (n,) = struct.unpack(order + "H", data[offset : offset + 2])
        end = offset + 2 + 12 * n
        if end + 4 > len(data):
            raise FormatError("malformed TIFF: an IFD runs past the end of the file")
        entries = []
        for i in range(n):
            at = offset + 2 + 12 * i
            tag, typ, count = struct.unpack(order + "HHI", data[at : at + 8])
            size = SIZES.get(typ, 1) * count
            if size <= 4:
                value = data[at + 8 : at + 8 + size]
            else:
                (where,) = struct.unpack(order + "I", data[at + 8 : at + 12])
                if where + size > len(data):
                    raise FormatError(f"malformed TIFF: tag {tag}'s value lies past the end of the file")
                value = data[where : where + size]
            entries.append(Entry(tag, typ, count, value))
        ifds.append(Ifd(entries))
        (offset,) = struct.unpack(order + "I", data[end : end + 4])
    if not ifds:
        raise FormatError("malformed TIFF: no image directory")
    return order, ifds


def _numbers(order: str, e: Entry) -> list[int]:
    fmt = {3: "H", 4: "I", 16: "Q"}.get(e.type)
    if fmt is None:
        raise FormatError(f"malformed TIFF: tag {e.tag} has type {e.type}, not SHORT or LONG")
    return list(struct.unpack(f"{order}{e.count}{fmt}", e.value))


def _is_thumbnail(order: str, ifd: Ifd) -> bool:
    sub = next((e for e in ifd.entries if e.tag == NEW_SUBFILE_TYPE), None)
    return bool(sub and _numbers(order, sub)[0] & 1)


def strip_tiff(data: bytes, keep: set[str]) -> tuple[bytes, list[str]]:
    """(the TIFF without metadata, what went)."""
    order, ifds = _read_ifds(data)
    removed: list[str] = []
    pages = []
    for ifd in ifds:
        for e in ifd.entries:
            if e.tag in REFUSED_TAGS:
                raise FormatError(f"a TIFF with {REFUSED_TAGS[e.tag]}: strip cannot move its data yet")
        if _is_thumbnail(order, ifd) and len(ifds) > 1:
            removed.append("thumbnail image")
            continue
        wanted = DECODE | ({ICC} if "icc" in keep else set()) | ({ORIENTATION} if "orientation" in keep else set())
        for e in ifd.entries:
            if e.tag not in wanted:
                name = NAMES.get(e.tag, f"tag {e.tag}")
                if name not in removed:
                    removed.append(name)
        pages.append([e for e in ifd.entries if e.tag in wanted])
    out = bytearray(data[:4] + b"\0\0\0\0")
    ifd_offsets, patches = [], []
    for entries in pages:
        tags = {e.tag: e for e in entries}
        pairs = [(TILE_OFFSETS, TILE_COUNTS), (STRIP_OFFSETS, STRIP_COUNTS)]
        offsets_tag, counts_tag = next(((o, c) for o, c in pairs if o in tags and c in tags), (None, None))
        if offsets_tag is None:
            raise FormatError("malformed TIFF: an image directory without strip or tile offsets and byte counts")
        starts, counts = _numbers(order, tags[offsets_tag]), _numbers(order, tags[counts_tag])
        if len(starts) != len(counts):
            raise FormatError("malformed TIFF: the strip/tile offsets and byte counts differ in number")
        moved = []
        for s, n in zip(starts, counts):
            if s + n > len(data):
                raise FormatError("malformed TIFF: a strip or tile lies past the end of the file")
            moved.append(len(out))
            out += data[s : s + n]
            if len(out) & 1:
                out += b"\0"
        new = struct.pack(f"{order}{len(moved)}I", *moved)
        entries = [Entry(offsets_tag, 4, len(moved), new) if e.tag == offsets_tag else e for e in entries]
        ifd_offsets.append(_write_ifd(out, order, sorted(entries, key=lambda e: e.tag), patches))
    struct.pack_into(order + "I", out, 4, ifd_offsets[0])
    for at, nxt in zip(patches, ifd_offsets[1:]):
        struct.pack_into(order + "I", out, at, nxt)
    if len(out) >= 1 << 32:
        raise FormatError("the stripped TIFF would pass 4 GiB (BigTIFF): not supported")
    return bytes(out), removed


def _write_ifd(out: bytearray, order: str, entries: list[Entry], patches: list[int]) -> int:
    """Append the values that do not fit in 4 bytes, then the IFD; return its offset and note
    where its next-IFD pointer lies (in ``patches``)."""
    placed = {}
    for e in entries:
        if len(e.value) > 4:
            placed[e.tag] = len(out)
            out += e.value + (b"\0" if len(e.value) & 1 else b"")
    at = len(out)
    out += struct.pack(order + "H", len(entries))
    for e in entries:
        out += struct.pack(order + "HHI", e.tag, e.type, e.count)
        out += struct.pack(order + "I", placed[e.tag]) if e.tag in placed else e.value.ljust(4, b"\0")
    patches.append(len(out))
    out += b"\0\0\0\0"
    return at
