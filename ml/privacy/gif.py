"""GIF read block by block: its comment and application extensions (XMP as ``XMP DataXMP``, ICC
as ``ICCRGBG1012``) as findings, and a copy without them whose image blocks are byte for byte
the same. The animation loop (``NETSCAPE2.0`` / ``ANIMEXTS1.0``) and graphic control extensions
(frame delays, transparency) are how the image plays: they stay."""

from __future__ import annotations

from dataclasses import dataclass

from ml.privacy.formats import FormatError

LOOPING = (b"NETSCAPE2.0", b"ANIMEXTS1.0")
XMP_APP, ICC_APP = b"XMP DataXMP", b"ICCRGBG1012"


@dataclass
class Block:
    kind: str  # header | image | graphic | comment | application | text | trailer | extension
    start: int
    end: int
    label: bytes = b""  # an application extension's identifier + authentication code
    body: bytes = b""  # its sub-blocks' data joined (comments, application data)
    raw: bytes = b""  # an application extension's bytes after its identifier, as stored


def _sub_blocks(data: bytes, pos: int) -> tuple[int, bytes]:
    parts = []
    while True:
        if pos >= len(data):
            raise FormatError("truncated GIF: a data sub-block runs past the end of the file")
        n = data[pos]
        if n == 0:
            return pos + 1, b"".join(parts)
        if pos + 1 + n > len(data):
            raise FormatError("truncated GIF: a data sub-block runs past the end of the file")
        parts.append(data[pos + 1 : pos + 1 + n])
        pos += 1 + n


def gif_blocks(data: bytes) -> list[Block]:
    if data[:6] not in (b"GIF87a", b"GIF89a") or len(data) < 13:
        raise FormatError("not a GIF (bad header)")
    pos = 13
    if data[10] & 0x80:
        pos += 3 << ((data[10] & 7) + 1)
    if pos > len(data):
        raise FormatError("truncated GIF: the global colour table runs past the end of the file")
    blocks = [Block("header", 0, pos)]
    while True:
        if pos >= len(data):
            raise FormatError("truncated GIF: no trailer (0x3B) before the end of the file")
        start, marker = pos, data[pos]
        if marker == 0x3B:
            blocks.append(Block("trailer", pos, pos + 1))
            return blocks
        if marker == 0x2C:
            if pos + 10 > len(data):
                raise FormatError("truncated GIF: an image descriptor runs past the end of the file")
            flags, pos = data[pos + 9], pos + 10
            if flags & 0x80:
                pos += 3 << ((flags & 7) + 1)
            pos, _ = _sub_blocks(data, pos + 1)  # after the LZW minimum code size
            blocks.append(Block("image", start, pos))
        elif marker == 0x21 and pos + 1 < len(data):
            label = data[pos + 1]
            if label == 0xFF:
                n = data[pos + 2] if pos + 2 < len(data) else 0
                ident = data[pos + 3 : pos + 3 + n]
                pos, body = _sub_blocks(data, pos + 3 + n)
                blocks.append(Block("application", start, pos, ident, body, data[start + 3 + n : pos]))
            else:
                pos, body = _sub_blocks(data, pos + 2)
                kind = {0xF9: "graphic", 0xFE: "comment", 0x01: "text"}.get(label, "extension")
                blocks.append(Block(kind, start, pos, b"", body))
        else:
            raise FormatError(f"malformed GIF: unexpected byte 0x{marker:02X} at offset {pos}")


def xmp_packet(block: Block) -> bytes:
    """XMP's application data is the packet as it is (not in sub-blocks), then a 258-byte 'magic
    trailer' that makes a reader's walk over sub-blocks end after it."""
    return block.raw[:-258] if len(block.raw) > 258 else block.raw


def strip_gif(data: bytes, keep: set[str]) -> tuple[bytes, list[str]]:
    out, removed = [], []
    for b in gif_blocks(data):
        drop = b.kind in ("comment", "extension") or (
            b.kind == "application" and b.label not in LOOPING and not (b.label == ICC_APP and "icc" in keep)
        )
        if drop:
            name = "Comment" if b.kind == "comment" else _name(b)
            if name not in removed:
                removed.append(name)
        else:
            out.append(data[b.start : b.end])
    return b"".join(out), removed


def _name(b: Block) -> str:
    if b.label == XMP_APP:
        return "XMP"
    if b.label == ICC_APP:
        return "ICC profile"
    if b.kind == "application":
        return f"application extension {b.label.decode('latin-1', 'replace')!r}"
    return "extension"
