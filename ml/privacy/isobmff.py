"""HEIC / HEIF / AVIF (ISO base media file format) read box by box.

A still HEIF file is ``ftyp``, ``meta`` and ``mdat``. ``meta`` lists the items (``iinf``): coded
images (``hvc1``, ``av01``, tiles of a ``grid``, alpha and depth maps), the ``Exif`` item and
``mime`` items (XMP); ``iloc`` says where each item's bytes lie (in the file, or in ``meta``'s own
``idat``), ``iref`` links them (``thmb``: a thumbnail of, ``auxl``: an auxiliary image of, ``dimg``:
derived from, ``cdsc``: metadata describing), ``iprp`` gives images their properties (``ipco``)
and says which property belongs to which item (``ipma``). A box or extent that runs past its
end raises ``FormatError``. ``ml.privacy.heif_strip`` rewrites a file without its metadata.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ml.privacy.formats import FormatError


@dataclass
class Box:
    kind: bytes
    start: int
    end: int
    header: int  # bytes before the payload (8, or 16 with a 64-bit size)

    def payload(self, data: bytes) -> bytes:
        return data[self.start + self.header : self.end]


@dataclass
class Item:
    id: int
    type: bytes
    content_type: str = ""
    method: int = 0  # 0: bytes in the file, 1: in meta's idat
    extents: list[tuple[int, int]] = field(default_factory=list)  # (offset, length): absolute, or into idat


@dataclass
class Heif:
    data: bytes
    top: list[Box]
    meta: Box
    children: list[Box]  # meta's
    items: dict[int, Item]
    refs: list[tuple[bytes, int, list[int]]]  # (type, from, to)
    primary: int
    idat_start: int  # offset of idat's payload (0: none)


def read_boxes(data: bytes, start: int, end: int, where: str = "the file") -> list[Box]:
    out, pos = [], start
    while pos < end:
        if pos + 8 > end:
            raise FormatError(f"truncated HEIF: a box header in {where} runs past its end")
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1:
            if pos + 16 > end:
                raise FormatError(f"truncated HEIF: a box header in {where} runs past its end")
            size, header = struct.unpack(">Q", data[pos + 8 : pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            name = kind.decode("latin-1")
            raise FormatError(f"malformed HEIF: box {name!r} in {where} has a length past its end")
        out.append(Box(kind, pos, pos + size, header))
        pos += size
    return out


class Reader:
    def __init__(self, data: bytes, pos: int, end: int, box: str):
        self.data, self.pos, self.end, self.box = data, pos, end, box

    def uint(self, size: int) -> int:
        if size == 0:
            return 0
        if self.pos + size > self.end:
            raise FormatError(f"malformed HEIF: box {self.box!r} ends in the middle of a field")
        value = int.from_bytes(self.data[self.pos : self.pos + size], "big")
        self.pos += size
        return value

    def cstring(self) -> str:
        at = self.data.find(b"\0", self.pos, self.end)
        at = self.end if at < 0 else at
        text = self.data[self.pos : at].decode("utf-8", "replace")
        self.pos = min(at + 1, self.end)
        return text


def find(boxes: list[Box], kind: bytes) -> Box | None:
    return next((b for b in boxes if b.kind == kind), None)


def parse_heif(data: bytes) -> Heif:
    top = read_boxes(data, 0, len(data))
    if not top or top[0].kind != b"ftyp":
        raise FormatError("not a HEIF file (no ftyp box first)")
    meta = find(top, b"meta")
    if meta is None:
        raise FormatError("malformed HEIF: no meta box")
    children = read_boxes(data, meta.start + meta.header + 4, meta.end, "meta")
    items = _items(data, find(children, b"iinf"))
    _locations(data, find(children, b"iloc"), items, len(data))
    idat = find(children, b"idat")
    idat_start = idat.start + idat.header if idat else 0
    for item in items.values():
        if item.method == 1:
            size = idat.end - idat_start if idat else 0
            if any(o + n > size for o, n in item.extents):
                raise FormatError(f"malformed HEIF: item {item.id}'s iloc extent lies outside idat")
    pitm = find(children, b"pitm")
    if pitm is None:
        raise FormatError("malformed HEIF: no primary item (pitm)")
    r = Reader(data, pitm.start + pitm.header, pitm.end, "pitm")
    version = r.uint(1)
    r.uint(3)
    primary = r.uint(2 if version == 0 else 4)
    if primary not in items:
        raise FormatError(f"malformed HEIF: the primary item {primary} is not in iinf")
    return Heif(data, top, meta, children, items, _references(data, find(children, b"iref")), primary, idat_start)


def _items(data: bytes, iinf: Box | None) -> dict[int, Item]:
    if iinf is None:
        raise FormatError("malformed HEIF: no item list (iinf)")
    r = Reader(data, iinf.start + iinf.header, iinf.end, "iinf")
    version = r.uint(1)
    r.uint(3)
    r.uint(2 if version == 0 else 4)
    items = {}
    for infe in read_boxes(data, r.pos, iinf.end, "iinf"):
        if infe.kind != b"infe":
            continue
        e = Reader(data, infe.start + infe.header, infe.end, "infe")
        v = e.uint(1)
        e.uint(3)
        if v < 2:  # the first versions: a MIME item, no type field
            item_id, _ = e.uint(2), e.uint(2)
            e.cstring()
            items[item_id] = Item(item_id, b"mime", e.cstring())
            continue
        item_id = e.uint(2 if v == 2 else 4)
        e.uint(2)
        kind = data[e.pos : e.pos + 4]
        e.pos += 4
        e.cstring()
        items[item_id] = Item(item_id, kind, e.cstring() if kind == b"mime" else "")
    return items


def _locations(data: bytes, iloc: Box | None, items: dict[int, Item], file_size: int) -> None:
    if iloc is None:
        raise FormatError("malformed HEIF: no item locations (iloc)")
    r = Reader(data, iloc.start + iloc.header, iloc.end, "iloc")
    version = r.uint(1)
    r.uint(3)
    sizes = r.uint(1)
    offset_size, length_size = sizes >> 4, sizes & 15
    sizes = r.uint(1)
    base_size, index_size = sizes >> 4, (sizes & 15) if version in (1, 2) else 0
    for _ in range(r.uint(2 if version < 2 else 4)):
        item_id = r.uint(2 if version < 2 else 4)
        method = r.uint(2) & 15 if version in (1, 2) else 0
        reference = r.uint(2)
        base = r.uint(base_size)
        extents = []
        for _ in range(r.uint(2)):
            r.uint(index_size)
            offset, length = r.uint(offset_size), r.uint(length_size)
            extents.append((base + offset, length))
        if item_id not in items:
            continue
        if method == 2 or reference != 0:
            raise FormatError(
                f"HEIF item {item_id}: its bytes are located through another item or file "
                "(iloc construction method 2 / a data reference): not supported"
            )
        if method == 0 and any(n == 0 or o + n > file_size for o, n in extents):
            raise FormatError(f"malformed HEIF: item {item_id}'s iloc extent lies outside the file")
        items[item_id].method, items[item_id].extents = method, extents


def _references(data: bytes, iref: Box | None) -> list[tuple[bytes, int, list[int]]]:
    if iref is None:
        return []
    r = Reader(data, iref.start + iref.header, iref.end, "iref")
    version = r.uint(1)
    r.uint(3)
    width = 2 if version == 0 else 4
    refs = []
    for box in read_boxes(data, r.pos, iref.end, "iref"):
        e = Reader(data, box.start + box.header, box.end, box.kind.decode("latin-1"))
        source = e.uint(width)
        refs.append((box.kind, source, [e.uint(width) for _ in range(e.uint(2))]))
    return refs


def item_bytes(heif: Heif, item: Item) -> bytes:
    base = heif.idat_start if item.method == 1 else 0
    return b"".join(heif.data[base + o : base + o + n] for o, n in item.extents)


def kept_items(heif: Heif) -> set[int]:
    """The primary image, what it derives from (transitively) and the auxiliary images of those."""
    keep, todo = set(), [heif.primary]
    while todo:
        item = todo.pop()
        if item in keep or item not in heif.items:
            continue
        keep.add(item)
        for kind, source, targets in heif.refs:
            if source == item and kind in (b"dimg", b"base"):
                todo += targets
            if item in targets and kind in (b"auxl", b"prem"):
                todo.append(source)
    return keep


def describe(heif: Heif, item: Item) -> str:
    if item.type == b"Exif":
        return "EXIF"
    if item.type == b"mime":
        return "XMP" if "rdf+xml" in item.content_type else f"metadata ({item.content_type or 'mime'})"
    if any(kind == b"thmb" and source == item.id for kind, source, _ in heif.refs):
        return "thumbnail image"
    return f"{item.type.decode('latin-1').strip()} item"


def primary_size(heif: Heif) -> tuple[int, int]:
    """The primary image's width and height (its ``ispe`` property), (0, 0) if none is found."""
    iprp = find(heif.children, b"iprp")
    if iprp is None:
        return 0, 0
    boxes = read_boxes(heif.data, iprp.start + iprp.header, iprp.end, "iprp")
    ipco, ipma = find(boxes, b"ipco"), find(boxes, b"ipma")
    if ipco is None or ipma is None:
        return 0, 0
    props = read_boxes(heif.data, ipco.start + ipco.header, ipco.end, "ipco")
    r = Reader(heif.data, ipma.start + ipma.header, ipma.end, "ipma")
    version, flags = r.uint(1), r.uint(3)
    for _ in range(r.uint(4)):
        item_id = r.uint(2 if version < 1 else 4)
        links = [r.uint(2 if flags & 1 else 1) for _ in range(r.uint(1))]
        if item_id != heif.primary:
            continue
        for v in links:
            index = v & (0x7FFF if flags & 1 else 0x7F)
            if 0 < index <= len(props) and props[index - 1].kind == b"ispe":
                p = props[index - 1].payload(heif.data)
                if len(p) >= 12:
                    return struct.unpack(">II", p[4:12])
    return 0, 0
