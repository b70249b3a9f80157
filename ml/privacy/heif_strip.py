"""HEIC / HEIF / AVIF rewritten without metadata (read by ``ml.privacy.isobmff``).

``strip_heif`` keeps the primary image and what it is made of: the items it derives from
(``dimg``: a grid's tiles), transitively, and the auxiliary images of any of those (``auxl``:
alpha, depth, gain maps). Everything else goes: the ``Exif`` and ``mime`` (XMP) items, thumbnails
(a thumbnail is the picture as first taken, and an edit or crop of the main image does not reach
it), other images, ``udes`` (user description) properties, and boxes a still image does not
need (``free``, ``uuid``, ``xml `` ...). ``iinf``, ``iloc``, ``iref``, ``ipma``, ``idat`` and ``grpl``
are rebuilt for the kept items; every kept item's bytes are copied unchanged into a new ``mdat``
(or ``idat``) and its ``iloc`` extents point at them. Colour profiles (``colr``) and rotation
(``irot`` / ``imir``) are item properties and stay. Image sequences (``moov``) and item-based
locations (construction method 2) are refused with the reason.
"""

from __future__ import annotations

import struct

from ml.privacy.formats import FormatError
from ml.privacy.isobmff import (
    Box,
    Heif,
    Item,
    Reader,
    describe,
    find,
    item_bytes,
    kept_items,
    parse_heif,
    read_boxes,
)

KEPT_META_BOXES = {b"hdlr", b"pitm", b"iloc", b"iinf", b"iref", b"iprp", b"idat", b"grpl", b"dinf"}
DESCRIPTIVE_PROPERTIES = {b"udes"}  # user description: name, description, tags (text)


def _box(kind: bytes, payload: bytes) -> bytes:
    if len(payload) + 8 < 1 << 32:
        return struct.pack(">I4s", len(payload) + 8, kind) + payload
    return struct.pack(">I4sQ", 1, kind, len(payload) + 16) + payload


def _full(version: int, flags: int = 0) -> bytes:
    return bytes([version]) + flags.to_bytes(3, "big")


def strip_heif(data: bytes) -> tuple[bytes, list[str]]:
    """(the file without its metadata, what went)."""
    heif = parse_heif(data)
    if any(b.kind == b"moov" for b in heif.top):
        raise FormatError("a HEIF image sequence (moov): strip rewrites still images only")
    keep = kept_items(heif)
    removed = []
    for item in sorted(heif.items.values(), key=lambda i: i.id):
        if item.id not in keep and describe(heif, item) not in removed:
            removed.append(describe(heif, item))
    removed += sorted({b.kind.decode("latin-1") + " box" for b in heif.children if b.kind not in KEPT_META_BOXES})
    removed += sorted(
        {b.kind.decode("latin-1") + " box" for b in heif.top if b.kind not in (b"ftyp", b"meta", b"mdat")}
    )
    ipco_payload, udes = _ipco(heif)
    if udes:
        removed.append("user description (udes)")
    kept = [heif.items[i] for i in sorted(keep)]
    idat = b"".join(item_bytes(heif, it) for it in kept if it.method == 1)
    chunks = [item_bytes(heif, it) for it in kept if it.method == 0]
    mdat_payload = sum(len(c) for c in chunks)
    big = len(data) + mdat_payload >= 1 << 32

    def meta(mdat_data_start: int) -> bytes:
        placed, at, in_idat = {}, mdat_data_start, 0
        for it in kept:
            base = in_idat if it.method == 1 else at
            placed[it.id], pos = [], base
            for _, n in it.extents:
                placed[it.id].append((pos, n))
                pos += n
            if it.method == 1:
                in_idat = pos
            else:
                at = pos
        parts = []
        for b in heif.children:
            if b.kind == b"iloc":
                parts.append(_iloc(kept, placed, big))
            elif b.kind == b"iinf":
                parts.append(_iinf(kept))
            elif b.kind == b"iref":
                parts.append(_iref(heif.refs, keep))
            elif b.kind == b"iprp":
                parts.append(_iprp(heif, b, ipco_payload, keep, udes))
            elif b.kind == b"idat":
                parts.append(_box(b"idat", idat))
            elif b.kind == b"grpl":
                parts.append(_grpl(heif, b, keep))
            elif b.kind in KEPT_META_BOXES:
                parts.append(data[b.start : b.end])
        return _box(b"meta", heif.meta.payload(data)[:4] + b"".join(parts))

    ftyp = data[heif.top[0].start : heif.top[0].end]
    header = 16 if mdat_payload + 16 >= 1 << 32 else 8
    size = len(meta(0))
    body = meta(len(ftyp) + size + header)
    assert len(body) == size
    return ftyp + body + _box(b"mdat", b"".join(chunks)), removed


def _iloc(kept: list[Item], placed: dict[int, list[tuple[int, int]]], big: bool) -> bytes:
    width = 8 if big else 4
    version = 2 if any(it.id > 0xFFFF for it in kept) else 1
    id_size = 4 if version == 2 else 2
    out = bytearray(_full(version) + bytes([(width << 4) | width, 0]))
    out += len(kept).to_bytes(id_size, "big")
    for it in kept:
        out += it.id.to_bytes(id_size, "big") + it.method.to_bytes(2, "big") + b"\0\0"
        out += len(placed[it.id]).to_bytes(2, "big")
        for offset, length in placed[it.id]:
            out += offset.to_bytes(width, "big") + length.to_bytes(width, "big")
    return _box(b"iloc", bytes(out))


def _iinf(kept: list[Item]) -> bytes:
    entries = []
    for it in kept:  # names blanked: they are free text
        wide = it.id > 0xFFFF
        body = _full(3 if wide else 2) + it.id.to_bytes(4 if wide else 2, "big") + b"\0\0" + it.type + b"\0"
        if it.type == b"mime":
            body += it.content_type.encode() + b"\0"
        entries.append(_box(b"infe", body))
    return _box(b"iinf", _full(1) + len(kept).to_bytes(4, "big") + b"".join(entries))


def _iref(refs, keep: set[int]) -> bytes:
    wide = any(i > 0xFFFF for _, s, t in refs for i in [s, *t])
    width = 4 if wide else 2
    out = bytearray(_full(1 if wide else 0))
    for kind, source, targets in refs:
        targets = [t for t in targets if t in keep]
        if source in keep and targets:
            body = source.to_bytes(width, "big") + len(targets).to_bytes(2, "big")
            out += _box(kind, body + b"".join(t.to_bytes(width, "big") for t in targets))
    return _box(b"iref", bytes(out))


def _ipco(heif: Heif) -> tuple[bytes, set[int]]:
    """ipco's payload with user-description properties blanked (``free``, so that the other
    properties keep their 1-based indexes), and those indexes."""
    iprp = find(heif.children, b"iprp")
    if iprp is None:
        return b"", set()
    ipco = find(read_boxes(heif.data, iprp.start + iprp.header, iprp.end, "iprp"), b"ipco")
    if ipco is None:
        return b"", set()
    parts, blanked = [], set()
    for index, prop in enumerate(read_boxes(heif.data, ipco.start + ipco.header, ipco.end, "ipco"), start=1):
        if prop.kind in DESCRIPTIVE_PROPERTIES:
            parts.append(_box(b"free", b""))
            blanked.add(index)
        else:
            parts.append(heif.data[prop.start : prop.end])
    return b"".join(parts), blanked


def _iprp(heif: Heif, iprp: Box, ipco_payload: bytes, keep: set[int], blanked: set[int]) -> bytes:
    parts = []
    for child in read_boxes(heif.data, iprp.start + iprp.header, iprp.end, "iprp"):
        if child.kind == b"ipco":
            parts.append(_box(b"ipco", ipco_payload))
        elif child.kind == b"ipma":
            parts.append(_ipma(heif.data, child, keep, blanked))
    return _box(b"iprp", b"".join(parts))


def _ipma(data: bytes, ipma: Box, keep: set[int], blanked: set[int]) -> bytes:
    r = Reader(data, ipma.start + ipma.header, ipma.end, "ipma")
    version, flags = r.uint(1), r.uint(3)
    id_size, wide = (2 if version < 1 else 4), bool(flags & 1)
    entries = []
    for _ in range(r.uint(4)):
        item_id = r.uint(id_size)
        links = [r.uint(2 if wide else 1) for _ in range(r.uint(1))]
        mask = 0x7FFF if wide else 0x7F
        links = [v for v in links if (v & mask) not in blanked]
        if item_id in keep:
            entries.append(
                item_id.to_bytes(id_size, "big")
                + bytes([len(links)])
                + b"".join(v.to_bytes(2 if wide else 1, "big") for v in links)
            )
    return _box(b"ipma", _full(version, flags) + len(entries).to_bytes(4, "big") + b"".join(entries))


def _grpl(heif: Heif, grpl: Box, keep: set[int]) -> bytes:
    groups = []
    for g in read_boxes(heif.data, grpl.start + grpl.header, grpl.end, "grpl"):
        r = Reader(heif.data, g.start + g.header, g.end, g.kind.decode("latin-1"))
        head, group_id = r.uint(4), r.uint(4)
        ids = [r.uint(4) for _ in range(r.uint(4))]
        ids = [i for i in ids if i in keep]
        if len(ids) > 1:
            body = head.to_bytes(4, "big") + group_id.to_bytes(4, "big") + len(ids).to_bytes(4, "big")
            groups.append(_box(g.kind, body + b"".join(i.to_bytes(4, "big") for i in ids) + heif.data[r.pos : g.end]))
    return _box(b"grpl", b"".join(groups))
