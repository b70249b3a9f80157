"""roost audit / roost strip for every format it reads, on files made here with EXIF (GPS,
camera, time), XMP, IPTC where the format has it, a comment and a thumbnail where it has them.
exiftool is the independent oracle: it sees the metadata before strip and none of it after.
The coded image data is byte-identical (JPEG scan, PNG IDAT, WebP VP8, HEIF items, TIFF strips,
GIF image blocks) and the decoded pixels are equal; broken structure is a per-file error that
writes nothing."""

from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pillow_heif
import pytest
from PIL import Image

from ml.cli import main
from ml.privacy.audit import audit_file
from ml.privacy.formats import jpeg_segments, png_chunks, webp_chunks
from ml.privacy.gif import gif_blocks
from ml.privacy.isobmff import item_bytes, parse_heif, read_boxes
from ml.privacy.strip import strip_file

EXIFTOOL = shutil.which("exiftool")
pytestmark = pytest.mark.skipif(
    EXIFTOOL is None, reason="exiftool missing: `make test` installs libimage-exiftool-perl when run as root"
)
LIMIT = Image.MAX_IMAGE_PIXELS
XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" xmlns:tiff="http://ns.adobe.com/tiff/1.0/"'
    b' photoshop:City="Lyon" tiff:Model="PhoneCam 12"/></rdf:RDF></x:xmpmeta>'
)
# what exiftool must not find after strip: any tag of these groups, or of these names
LEAK_GROUPS = ("GPS", "XMP", "IPTC", "ExifIFD", "IFD1", "Photoshop", "InteropIFD")
LEAK_NAMES = {"Make", "Model", "DateTimeOriginal", "Comment", "ImageDescription", "City", "ThumbnailImage", "Software"}


def exif_block() -> bytes:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0131] = "Canon", "EOS 5D", "Firmware 1.1"
    exif.get_ifd(0x8769)[0x9003] = "2024:05:01 12:00:00"
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (45.0, 45.0, 36.0), 3: "E", 4: (4.0, 50.0, 24.0)})
    return exif.tobytes()


def pixels(mode="RGB", size=(96, 64), seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 4), dtype=np.uint8), "RGBA").convert(mode)


def exiftool(*args):
    subprocess.run([EXIFTOOL, "-q", "-q", "-overwrite_original", *map(str, args)], check=True)


def exiftool_tags(path: Path) -> dict:
    out = subprocess.run([EXIFTOOL, "-j", "-a", "-u", "-G1", str(path)], capture_output=True, text=True, check=True)
    return {k: v for k, v in json.loads(out.stdout)[0].items() if k != "SourceFile"}


def leaks(tags: dict) -> set[str]:
    return {k for k in tags if k.split(":")[0].startswith(LEAK_GROUPS) or k.split(":")[-1] in LEAK_NAMES}


def make(fmt: str, folder: Path) -> Path:
    """A file of ``fmt`` with every kind of metadata the format can hold."""
    path = folder / f"dirty.{fmt}"
    thumb = folder / "thumb.jpg"
    pixels(size=(32, 24), seed=1).save(thumb)
    if fmt == "jpg":
        pixels().save(path, exif=exif_block(), quality=90)
        exiftool(f"-ThumbnailImage<={thumb}", "-XMP-photoshop:City=Lyon", "-IPTC:City=Lyon", "-Comment=hello", path)
    elif fmt == "png":
        pixels().save(path, exif=exif_block())
        exiftool("-XMP-photoshop:City=Lyon", "-PNG:Comment=hello", "-PNG:CreationTime=2024:05:01 12:00:00", path)
    elif fmt == "webp":
        pixels().save(path, exif=exif_block(), xmp=XMP, lossless=True)
    elif fmt == "tif":
        pixels().save(path, exif=exif_block())
        exiftool("-XMP-photoshop:City=Lyon", "-IPTC:City=Lyon", "-ImageDescription=hello", "-GPSLatitude=45.76",
                 "-GPSLatitudeRef=N", path)  # fmt: skip
    elif fmt == "gif":
        pixels("P").save(path, comment=b"hello")
        exiftool("-XMP-photoshop:City=Lyon", "-XMP-exif:GPSLatitude=45.76", "-XMP-tiff:Make=Canon", path)
    elif fmt == "heic":
        pillow_heif.from_pillow(pixels("RGBA")).save(path, quality=90, exif=exif_block(), xmp=XMP, thumbnails=[32])
    elif fmt == "avif":
        pixels().save(path, exif=exif_block(), xmp=XMP, quality=90)
    return path


EXPECTED = {  # field -> kind that audit must report, per format
    "jpg": {"GPSLatitude": "location", "XMP-photoshop:City": "location", "IPTC:City": "location",
            "Make": "device", "DateTimeOriginal": "time", "Comment": "other", "Thumbnail:Make": None},
    "png": {"GPSLatitude": "location", "XMP-photoshop:City": "location", "Make": "device", "PNG:Comment": "other",
            "DateTimeOriginal": "time"},
    "webp": {"GPSLatitude": "location", "XMP-photoshop:City": "location", "XMP-tiff:Model": "device",
             "Model": "device", "Software": "device"},
    "tif": {"GPSLatitude": "location", "XMP-photoshop:City": "location", "IPTC:City": "location",
            "Make": "device", "ImageDescription": "other"},
    "gif": {"GIF:Comment": "other", "XMP-photoshop:City": "location", "XMP-exif:GPSLatitude": "location",
            "XMP-tiff:Make": "device"},
    "heic": {"GPSLatitude": "location", "XMP-photoshop:City": "location", "Make": "device",
             "DateTimeOriginal": "time"},
    "avif": {"GPSLatitude": "location", "XMP-photoshop:City": "location", "Model": "device",
             "DateTimeOriginal": "time"},
}  # fmt: skip


def coded(fmt: str, path: Path):
    """The coded image data that strip must leave byte for byte."""
    data = path.read_bytes()
    if fmt == "jpg":
        j = jpeg_segments(data)
        return data[j.scan_start : j.scan_end]
    if fmt == "png":
        return [c.data for c in png_chunks(data) if c.kind in (b"IHDR", b"PLTE", b"IDAT", b"tRNS")]
    if fmt == "webp":
        return [c.data for c in webp_chunks(data) if c.kind in (b"VP8 ", b"VP8L", b"ALPH")]
    if fmt in ("heic", "avif"):
        heif = parse_heif(data)
        thumbs = {s for kind, s, _ in heif.refs if kind == b"thmb"}
        thumbs |= {s for kind, s, t in heif.refs if kind == b"auxl" and set(t) <= thumbs}
        images = [i for i in heif.items.values() if i.type in (b"hvc1", b"av01", b"grid") and i.id not in thumbs]
        return {i.id: item_bytes(heif, i) for i in images}
    if fmt == "tif":
        with Image.open(path) as im:
            return [data[o : o + n] for o, n in zip(im.tag_v2[273], im.tag_v2[279])]
    if fmt == "gif":
        return [data[b.start : b.end] for b in gif_blocks(data) if b.kind in ("image", "graphic")]
    raise AssertionError(fmt)


def decoded(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGBA"))


@pytest.mark.parametrize("fmt", ["jpg", "png", "webp", "tif", "gif", "heic", "avif"])
def test_audit_finds_it_all_and_strip_leaves_nothing_exiftool_sees(fmt, tmp_path):
    pillow_heif.register_heif_opener()
    src = make(fmt, tmp_path)
    assert leaks(exiftool_tags(src)), "the oracle sees the metadata before strip"
    found = {f["field"]: f["kind"] for f in audit_file(src, LIMIT).findings}
    for field, kind in EXPECTED[fmt].items():
        if kind:
            assert found.get(field) == kind, (field, found)
    if fmt == "jpg":  # the thumbnail carries no EXIF of its own here: exiftool's thumbnail is the leak
        assert "IFD1:ThumbnailImage" in exiftool_tags(src)
    dest = tmp_path / "out" / src.name
    record = strip_file(src, dest, {"icc", "orientation"}, LIMIT)
    assert "error" not in record, record
    assert leaks(exiftool_tags(dest)) == set()
    assert audit_file(dest, LIMIT).findings == []
    assert coded(fmt, dest) == coded(fmt, src)
    assert np.array_equal(decoded(dest), decoded(src))
    if fmt == "heic":
        assert "thumbnail image" in record["removed"] and not pillow_heif.open_heif(dest).info.get("thumbnails")


def heif_grid_with_alpha(folder: Path) -> Path:
    """A 128 x 128 HEIC whose primary is a 2 x 2 grid of 64 x 64 tiles with a full-size alpha
    image (auxl), written box by box from tiles and an alpha plane that pillow-heif encoded."""

    def encoded(image):
        buffer = io.BytesIO()
        pillow_heif.from_pillow(image).save(buffer, quality=90)
        data = buffer.getvalue()
        heif = parse_heif(data)
        props = properties(data, heif)
        return heif, props

    tiles = [encoded(pixels(size=(64, 64), seed=s)) for s in range(4)]
    alpha_heif, alpha_props = encoded(pixels("RGBA", size=(128, 128), seed=9))
    (alpha_id,) = [s for kind, s, _ in alpha_heif.refs if kind == b"auxl"]

    def box(kind, payload):
        return struct.pack(">I4s", len(payload) + 8, kind) + payload

    def full(kind, payload, version=0):
        return box(kind, bytes([version, 0, 0, 0]) + payload)

    ipco, ipma, chunks = [], [], []

    def prop(raw):
        ipco.append(raw)
        return len(ipco)

    grid_ispe = prop(full(b"ispe", struct.pack(">II", 128, 128)))
    tile_ispe = prop(full(b"ispe", struct.pack(">II", 64, 64)))
    ipma.append((1, [grid_ispe]))
    for n, (heif, props) in enumerate(tiles):
        hvcc = prop(next(p for p in props[heif.primary] if p[4:8] == b"hvcC"))
        ipma.append((2 + n, [0x80 | hvcc, tile_ispe]))
        chunks.append((2 + n, item_bytes(heif, heif.items[heif.primary])))
    alpha_links = [prop(p) for p in alpha_props[alpha_id] if p[4:8] in (b"hvcC", b"ispe", b"auxC")]
    ipma.append((6, [0x80 | alpha_links[0], *alpha_links[1:]]))
    chunks.append((6, item_bytes(alpha_heif, alpha_heif.items[alpha_id])))
    grid = bytes([0, 0, 1, 1]) + struct.pack(">HH", 128, 128)  # version, flags, rows-1, columns-1, size

    types = {1: b"grid", 2: b"hvc1", 3: b"hvc1", 4: b"hvc1", 5: b"hvc1", 6: b"hvc1"}
    iinf = full(b"iinf", struct.pack(">H", 6) + b"".join(full(b"infe", struct.pack(">HH", i, 0) + t + b"\0", 2)
                                                         for i, t in types.items()))  # fmt: skip
    iref = full(
        b"iref", box(b"dimg", struct.pack(">HH4H", 1, 4, 2, 3, 4, 5)) + box(b"auxl", struct.pack(">HHH", 6, 1, 1))
    )
    ipma_box = full(b"ipma", struct.pack(">I", len(ipma)) + b"".join(
        struct.pack(">HB", i, len(links)) + bytes(links) for i, links in ipma))  # fmt: skip
    iprp = box(b"iprp", box(b"ipco", b"".join(ipco)) + ipma_box)
    hdlr = full(b"hdlr", b"\0\0\0\0pict" + b"\0" * 12 + b"\0")
    pitm = full(b"pitm", struct.pack(">H", 1))
    ftyp = box(b"ftyp", b"heic\0\0\0\0mif1heic")

    def iloc(mdat_start):
        entries, at = [struct.pack(">HHHH", 1, 1, 0, 1) + struct.pack(">II", 0, len(grid))], mdat_start
        for item, data in chunks:
            entries.append(struct.pack(">HHHH", item, 0, 0, 1) + struct.pack(">II", at, len(data)))
            at += len(data)
        return full(b"iloc", bytes([0x44, 0x00]) + struct.pack(">H", len(entries)) + b"".join(entries), 1)

    def meta(start):
        return full(b"meta", hdlr + pitm + iloc(start) + iinf + iref + iprp + box(b"idat", grid))

    start = len(ftyp) + len(meta(0)) + 8
    path = folder / "grid.heic"
    path.write_bytes(ftyp + meta(start) + box(b"mdat", b"".join(d for _, d in chunks)))
    return path


def properties(data: bytes, heif) -> dict[int, list[bytes]]:
    """item -> its property boxes (raw), read from ipco and ipma."""
    iprp = next(b for b in heif.children if b.kind == b"iprp")
    boxes = read_boxes(data, iprp.start + 8, iprp.end)
    ipco = next(b for b in boxes if b.kind == b"ipco")
    ipma = next(b for b in boxes if b.kind == b"ipma")
    props = [data[p.start : p.end] for p in read_boxes(data, ipco.start + 8, ipco.end)]
    payload, out = data[ipma.start + 8 : ipma.end], {}
    wide, pos = payload[3] & 1, 8
    for _ in range(struct.unpack(">I", payload[4:8])[0]):
        item, n = struct.unpack(">HB", payload[pos : pos + 3])
        pos += 3
        links = []
        for _ in range(n):
            v = struct.unpack(">H", payload[pos : pos + 2])[0] & 0x7FFF if wide else payload[pos] & 0x7F
            pos += 2 if wide else 1
            links.append(props[v - 1])
        out[item] = links
    return out


def test_a_grid_heic_with_alpha_keeps_every_tile_byte_for_byte(tmp_path):
    pillow_heif.register_heif_opener()
    src = heif_grid_with_alpha(tmp_path)
    with Image.open(src) as im:
        assert im.size == (128, 128) and im.mode == "RGBA"  # libheif reads it: the grid and its alpha
    exiftool("-GPSLatitude=45.76", "-GPSLatitudeRef=N", "-Make=Canon", "-XMP-photoshop:City=Lyon", src)
    assert {"GPSLatitude", "Make", "XMP-photoshop:City"} <= {f["field"] for f in audit_file(src, LIMIT).findings}
    before = parse_heif(src.read_bytes())
    dest = tmp_path / "out.heic"
    record = strip_file(src, dest, set(), LIMIT)
    assert "error" not in record and {"EXIF", "XMP"} <= set(record["removed"]), record
    after = parse_heif(dest.read_bytes())
    assert leaks(exiftool_tags(dest)) == set()
    for item in (1, 2, 3, 4, 5, 6):  # the grid, its four tiles and the alpha image
        assert item_bytes(after, after.items[item]) == item_bytes(before, before.items[item]), item
    assert {i for i, it in after.items.items()} == {1, 2, 3, 4, 5, 6}
    assert np.array_equal(decoded(dest), decoded(src))


def _set(data: bytes, at: int, value: bytes) -> bytes:
    return data[:at] + value + data[at + len(value) :]


def broken_files(tmp_path: Path) -> dict[str, bytes]:
    pillow_heif.register_heif_opener()
    heic = make("heic", tmp_path).read_bytes()
    heif = parse_heif(heic)
    iloc = next(b for b in heif.children if b.kind == b"iloc")
    length = heif.items[heif.primary].extents[0][1]  # the primary image's extent length, in iloc
    at = heic.find(struct.pack(">I", length), iloc.start, iloc.end)
    tif = make("tif", tmp_path).read_bytes()
    first = struct.unpack("<I", tif[4:8])[0]
    n = struct.unpack("<H", tif[first : first + 2])[0]
    tags = {struct.unpack("<H", tif[first + 2 + 12 * i : first + 4 + 12 * i])[0]: first + 2 + 12 * i for i in range(n)}
    assert at > 0 and struct.unpack("<I", tif[tags[273] + 4 : tags[273] + 8])[0] == 1  # one strip, its offset inline
    return {
        "box_past_end.heic": _set(heic, heif.meta.start, struct.pack(">I", len(heic) * 2)),
        "iloc_outside.heic": _set(heic, at, struct.pack(">I", len(heic) * 2)),
        "ifd_loop.tif": _set(tif, first + 2 + 12 * n, struct.pack("<I", first)),
        "strip_past_end.tif": _set(tif, tags[273] + 8, struct.pack("<I", len(tif) + 100)),
        "truncated.gif": make("gif", tmp_path).read_bytes()[:-40],
    }


def test_broken_structure_is_a_per_file_error_and_writes_nothing(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for name, data in broken_files(tmp_path).items():
        (folder / name).write_bytes(data)
    pixels().save(folder / "fine.png")
    out = tmp_path / "out"
    assert main(["strip", "--format", "json", "--out", str(out), str(folder)]) == 2
    records = {Path(r["input"]).name: r for r in json.loads(capsys.readouterr().out)}
    assert "error" not in records["fine.png"] and (out / "fine.png").exists()
    for name in ("box_past_end.heic", "iloc_outside.heic", "ifd_loop.tif", "strip_past_end.tif", "truncated.gif"):
        assert name in records and "error" in records[name], (name, records.get(name))
        assert str(folder / name) in records[name]["error"] and not (out / name).exists()
    assert "loops" in records["ifd_loop.tif"]["error"]
    assert "past its end" in records["box_past_end.heic"]["error"]
    assert "outside the file" in records["iloc_outside.heic"]["error"]
    assert sorted(p.name for p in out.iterdir()) == ["fine.png"]  # no partial file, no temporary left


def test_png_time_is_a_date_and_device_is_its_own_kind(tmp_path, capsys):
    png = tmp_path / "t.png"
    pixels().save(png, exif=exif_block())
    exiftool("-PNG:ModifyDate=2018:03:20 21:59:25", png)
    fields = {f["field"]: f for f in audit_file(png, LIMIT).findings}
    assert fields["PNG:ModifyDate"] == {"kind": "time", "field": "PNG:ModifyDate", "value": "2018:03:20 21:59:25"}
    assert fields["Make"]["kind"] == fields["Model"]["kind"] == "device"
    only_device = tmp_path / "camera.jpg"
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "OLYMPUS", "C7070WZ"
    pixels().save(only_device, exif=exif.tobytes())
    assert main(["audit", str(only_device)]) == 0  # --fail-on location (the default): a camera is not a place
    assert main(["audit", "--fail-on", "device", str(only_device)]) == 1
    assert main(["audit", "--fail-on", "location,time", str(only_device)]) == 0
    assert main(["audit", "--fail-on", "camera", str(only_device)]) == 2
    capsys.readouterr()


def test_a_webp_exif_chunk_with_the_exif_prefix_is_read(tmp_path):
    """Common tools write WebP's EXIF chunk with JPEG's ``Exif\\0\\0`` prefix (against the spec;
    exiftool reads it with a warning): its GPS block is found, and strip removes it."""
    path = tmp_path / "p.webp"
    pixels().save(path, exif=exif_block(), lossless=True)
    data = path.read_bytes()
    body = b"".join(
        (c.kind + struct.pack("<I", len(c.data) + 6) + b"Exif\0\0" + c.data + (b"\0" if len(c.data) & 1 else b""))
        if c.kind == b"EXIF"
        else data[c.start : c.end]
        for c in webp_chunks(data)
    )
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body)
    assert "Improper EXIF header" in json.dumps(exiftool_tags(path))
    assert {"GPSLatitude", "GPSLongitude"} <= {f["field"] for f in audit_file(path, LIMIT).findings}
    dest = tmp_path / "clean.webp"
    assert "error" not in strip_file(path, dest, set(), LIMIT)
    assert leaks(exiftool_tags(dest)) == set()
