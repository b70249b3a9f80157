"""EXIF (a TIFF structure) read as findings: the GPS block, capture times and what identifies a
camera or a person, in IFD0, the Exif IFD, the GPS IFD and the thumbnail (IFD1), whose JPEG may
carry an EXIF block of its own. A small reader of its own (no pixel decoding, no Pillow) so that
an audit is fast and sees every tag, whatever the file's format."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ml.privacy import DEVICE, IDENTITY, LOCATION, OTHER, TIME
from ml.privacy.formats import APP1, FormatError, jpeg_segments

EXIF_IFD, GPS_IFD, INTEROP_IFD = 0x8769, 0x8825, 0xA005
ORIENTATION = 0x0112
THUMB_OFFSET, THUMB_LENGTH = 0x0201, 0x0202
SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}

# tag -> (field, kind); GPS tags that reveal nothing alone (version, references, datum) are not listed
GPS_TAGS = {
    2: ("GPSLatitude", LOCATION),
    4: ("GPSLongitude", LOCATION),
    6: ("GPSAltitude", LOCATION),
    7: ("GPSTimeStamp", TIME),
    13: ("GPSSpeed", LOCATION),
    15: ("GPSTrack", LOCATION),
    17: ("GPSImgDirection", LOCATION),
    20: ("GPSDestLatitude", LOCATION),
    22: ("GPSDestLongitude", LOCATION),
    24: ("GPSDestBearing", LOCATION),
    26: ("GPSDestDistance", LOCATION),
    27: ("GPSProcessingMethod", LOCATION),
    28: ("GPSAreaInformation", LOCATION),
    29: ("GPSDateStamp", TIME),
    31: ("GPSHPositioningError", LOCATION),
}
TAGS = {  # IFD0 / IFD1 / Exif IFD
    0x010F: ("Make", DEVICE),
    0x0110: ("Model", DEVICE),
    0x0131: ("Software", DEVICE),  # IDENTITY where it names an account or a page (ACCOUNT_MARKS)
    0x013C: ("HostComputer", DEVICE),
    0xA433: ("LensMake", DEVICE),
    0xA434: ("LensModel", DEVICE),
    0x0132: ("ModifyDate", TIME),
    0x013B: ("Artist", IDENTITY),
    0x8298: ("Copyright", IDENTITY),
    0x9003: ("DateTimeOriginal", TIME),
    0x9004: ("CreateDate", TIME),
    0x9010: ("OffsetTime", TIME),
    0x9011: ("OffsetTimeOriginal", TIME),
    0x9012: ("OffsetTimeDigitized", TIME),
    0x9290: ("SubSecTime", TIME),
    0x9291: ("SubSecTimeOriginal", TIME),
    0x9292: ("SubSecTimeDigitized", TIME),
    0x927C: ("MakerNote", IDENTITY),  # vendor data: serial numbers, often
    0x9286: ("UserComment", OTHER),
    0x010E: ("ImageDescription", OTHER),
    0x9C9B: ("XPTitle", OTHER),
    0x9C9C: ("XPComment", OTHER),
    0x9C9D: ("XPAuthor", IDENTITY),
    0xA420: ("ImageUniqueID", IDENTITY),
    0xA430: ("OwnerName", IDENTITY),
    0xA431: ("SerialNumber", IDENTITY),
    0xA435: ("LensSerialNumber", IDENTITY),
    0xC62F: ("CameraSerialNumber", IDENTITY),
}
ACCOUNT_MARKS = ("@", "http://", "https://", "www.")  # Software that names an account or a page


class ExifError(ValueError):
    pass


@dataclass
class Exif:
    order: str  # "<" or ">"
    ifds: dict[str, dict[int, object]]  # "0", "exif", "gps", "1" -> tag -> value
    thumbnail: bytes | None

    @property
    def orientation(self) -> int | None:
        value = self.ifds.get("0", {}).get(ORIENTATION)
        return int(value[0]) if isinstance(value, tuple) and value else None


def _value(data: bytes, order: str, typ: int, count: int, raw: bytes, base: int):
    size = SIZES.get(typ, 1) * count
    if size > 4:
        (offset,) = struct.unpack(order + "I", raw)
        if offset + size > len(data):
            raise ExifError("a tag's value lies past the end of the EXIF block")
        raw = data[offset : offset + size]
    else:
        raw = raw[:size]
    if typ == 2:
        return raw.split(b"\0", 1)[0].decode("utf-8", "replace").strip()
    if typ in (1, 7):
        return bytes(raw)
    if typ == 6:
        return struct.unpack(f"{order}{count}b", raw)
    fmt = {3: "H", 4: "I", 8: "h", 9: "i", 11: "f", 12: "d"}.get(typ)
    if fmt:
        return struct.unpack(f"{order}{count}{fmt}", raw)
    if typ in (5, 10):
        ints = struct.unpack(f"{order}{2 * count}{'I' if typ == 5 else 'i'}", raw)
        return tuple((ints[i], ints[i + 1]) for i in range(0, len(ints), 2))
    return bytes(raw)


def _ifd(data: bytes, order: str, offset: int) -> tuple[dict[int, object], int]:
    if offset + 2 > len(data):
        raise ExifError("an IFD lies past the end of the EXIF block")
    (n,) = struct.unpack(order + "H", data[offset : offset + 2])
    end = offset + 2 + 12 * n
    if end + 4 > len(data) or n > 4096:
        raise ExifError("a truncated IFD")
    tags = {}
    for i in range(n):
        tag, typ, count = struct.unpack(order + "HHI", data[offset + 2 + 12 * i : offset + 10 + 12 * i])
        raw = data[offset + 10 + 12 * i : offset + 14 + 12 * i]
        if typ in SIZES and count < 1 << 24:
            tags[tag] = _value(data, order, typ, count, raw, offset)
    (next_ifd,) = struct.unpack(order + "I", data[end : end + 4])
    return tags, next_ifd


def parse_exif(data: bytes) -> Exif:
    """A TIFF-structured EXIF block (with or without the ``Exif\\0\\0`` prefix)."""
    if data.startswith(b"Exif\0\0"):
        data = data[6:]
    if data[:4] not in (b"II*\0", b"MM\0*"):
        raise ExifError("not a TIFF/EXIF header")
    order = "<" if data[:2] == b"II" else ">"
    (first,) = struct.unpack(order + "I", data[4:8])
    ifd0, next_ifd = _ifd(data, order, first)
    ifds = {"0": ifd0}
    for name, tag in (("exif", EXIF_IFD), ("gps", GPS_IFD)):
        pointer = ifd0.get(tag)
        if isinstance(pointer, tuple) and pointer:
            ifds[name] = _ifd(data, order, int(pointer[0]))[0]
    thumbnail = None
    if next_ifd:
        ifds["1"] = _ifd(data, order, next_ifd)[0]
        start, length = ifds["1"].get(THUMB_OFFSET), ifds["1"].get(THUMB_LENGTH)
        if isinstance(start, tuple) and isinstance(length, tuple):
            thumbnail = data[start[0] : start[0] + length[0]] or None
    return Exif(order, ifds, thumbnail)


def _rational(v) -> float:
    num, den = v
    return num / den if den else 0.0


def _degrees(value, ref) -> str:
    if not isinstance(value, tuple) or not value or not isinstance(value[0], tuple):
        return str(value)
    d = sum(_rational(part) / 60**i for i, part in enumerate(value[:3]))
    sign = -1 if isinstance(ref, str) and ref.upper()[:1] in ("S", "W") else 1
    return f"{sign * d:.6f}"


def _text(value) -> str:
    if isinstance(value, bytes):
        text = value[8:] if value[:8] in (b"ASCII\0\0\0", b"UNICODE\0", b"\0" * 8) else value
        return text.decode("utf-8", "replace").strip("\0 ")
    if isinstance(value, tuple):
        parts = [f"{_rational(v):g}" if isinstance(v, tuple) else str(v) for v in value]
        return ":".join(parts) if len(parts) == 3 else " ".join(parts)
    return str(value)


def _gps_value(tag: int, gps: dict) -> str:
    if tag in (2, 4, 20, 22):
        return _degrees(gps[tag], gps.get(tag - 1))
    return _text(gps[tag])


def exif_findings(exif: Exif, prefix: str = "") -> list[dict]:
    """Findings (kind, field, value) of every IFD; the thumbnail's own EXIF is read too, its
    fields prefixed ``Thumbnail:``."""
    out = []
    gps = exif.ifds.get("gps", {})
    for tag, (field, kind) in GPS_TAGS.items():
        if tag in gps and _gps_value(tag, gps) not in ("", "0", "0:0:0"):
            out.append({"kind": kind, "field": prefix + field, "value": _gps_value(tag, gps)})
    for ifd in ("0", "exif", "1"):
        for tag, value in exif.ifds.get(ifd, {}).items():
            if 0x9C9B <= tag <= 0x9C9F and isinstance(value, bytes):  # Windows XP tags: UCS-2
                value = value.decode("utf-16-le", "replace").strip("\0 ")
            if tag in TAGS and _text(value):
                field, kind = TAGS[tag]
                if tag == 0x0131 and any(m in _text(value).lower() for m in ACCOUNT_MARKS):
                    kind = IDENTITY
                shown = f"{len(value)} bytes" if tag == 0x927C else _text(value)[:200]
                out.append({"kind": kind, "field": prefix + field, "value": shown})
    if exif.thumbnail:
        inner = thumbnail_exif(exif.thumbnail)
        if inner is not None:
            out += exif_findings(inner, prefix + "Thumbnail:")
    return out


def thumbnail_exif(jpeg: bytes) -> Exif | None:
    """The EXIF block inside a thumbnail JPEG, if it has a readable one."""
    try:
        for seg in jpeg_segments(jpeg).head:
            if seg.marker == APP1 and seg.payload.startswith(b"Exif\0\0"):
                return parse_exif(seg.payload)
    except (FormatError, ExifError):
        return None
    return None


def orientation_only(orientation: int) -> bytes:
    """A minimal EXIF block holding nothing but the Orientation tag (``Exif\\0\\0`` + TIFF)."""
    ifd = struct.pack("<H", 1) + struct.pack("<HHIHH", ORIENTATION, 3, 1, orientation, 0) + struct.pack("<I", 0)
    return b"Exif\0\0" + b"II*\0" + struct.pack("<I", 8) + ifd
