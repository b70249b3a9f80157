"""roost audit / roost strip on real camera JPEGs and on images written here (Pillow, exiftool):
what audit finds, exiftool (an independent reader) agrees before and after strip, the JPEG scan
data is byte-identical and the decoded pixels equal, and bad files get their own errors."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from ml.cli import main
from ml.privacy.audit import audit_file
from ml.privacy.formats import jpeg_segments
from ml.privacy.strip import strip_file
from tests.conftest import REPO

PHOTOS = REPO.parent / "shared" / "testdata" / "exif"
WITH_GPS = {"DSCN0010.jpg", "DSCN0042.jpg", "Kodak_CX7530.jpg"}
LIMIT = Image.MAX_IMAGE_PIXELS
EXIFTOOL = shutil.which("exiftool")
needs_exiftool = pytest.mark.skipif(
    EXIFTOOL is None, reason="exiftool missing: `make test` installs libimage-exiftool-perl when run as root"
)
XMP = """<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" xmlns:exif="http://ns.adobe.com/exif/1.0/"
 photoshop:City="Lyon" exif:GPSLatitude="45,45.6N"><photoshop:Country>France</photoshop:Country>
</rdf:Description></rdf:RDF></x:xmpmeta>"""


def run(*argv: str, capsys) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def exiftool_location(path: Path) -> set[str]:
    """The location tag names exiftool reads in a file (GPS, XMP and IPTC places)."""
    out = subprocess.run(
        [EXIFTOOL, "-j", "-G1", "-gps:all", "-xmp:all", "-iptc:all", "-a", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    tags = set(json.loads(out)[0]) - {"SourceFile"}
    place = ("GPSLatitude", "GPSLongitude", "City", "Country", "State", "Sub-location", "Province", "Location")
    return {t.split(":")[-1] for t in tags if any(p in t for p in place)}


def exif_with_gps(lat: float, lon: float) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90
    gps = exif.get_ifd(0x8825)
    dms = lambda v: tuple(float(x) for x in (int(abs(v)), int(abs(v) * 60 % 60), round(abs(v) * 3600 % 60, 2)))  # noqa: E731
    gps.update({1: "N" if lat >= 0 else "S", 2: dms(lat), 3: "E" if lon >= 0 else "W", 4: dms(lon)})
    return exif


def picture(mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).convert(mode)


def test_audit_finds_gps_in_exactly_the_three_geotagged_photos(capsys):
    code, out = run("audit", "--format", "json", str(PHOTOS), capsys=capsys)
    report = json.loads(out)
    assert code == 1 and len(report) == 7
    located = {Path(r["input"]).name for r in report if any(f["field"] == "GPSLatitude" for f in r["findings"])}
    assert located == WITH_GPS  # Canon_40D's GPS block holds only a version number
    kodak = next(r for r in report if r["input"].endswith("Kodak_CX7530.jpg"))
    lat = next(f for f in kodak["findings"] if f["field"] == "GPSLatitude")
    assert lat["kind"] == "location" and float(lat["value"]) == pytest.approx(-0.3713, abs=1e-4)  # south
    assert all(set(r) >= {"input", "findings", "visual"} and "error" not in r for r in report)


@needs_exiftool
def test_strip_leaves_nothing_exiftool_can_find_and_keeps_the_scan_data(tmp_path, capsys):
    out = tmp_path / "clean"
    code, _ = run("strip", "--out", str(out), str(PHOTOS), capsys=capsys)
    assert code == 0
    code, text = run("audit", str(out), capsys=capsys)
    assert code == 0, text
    for original in sorted(PHOTOS.glob("*.jpg")):
        copy = out / original.name
        before, after = exiftool_location(original), exiftool_location(copy)
        assert ("GPSLatitude" in before) == (original.name in WITH_GPS)
        assert after == set(), (copy, after)
        a, b = original.read_bytes(), copy.read_bytes()
        ja, jb = jpeg_segments(a), jpeg_segments(b)
        assert a[ja.scan_start : ja.scan_end] == b[jb.scan_start : jb.scan_end]  # entropy-coded data untouched
        with Image.open(original) as x, Image.open(copy) as y:
            assert np.array_equal(np.asarray(x), np.asarray(y))
    code, _ = run("audit", "--fail-on", "any", str(out), capsys=capsys)
    assert code == 0  # no time or identity left either


@needs_exiftool
def test_xmp_iptc_and_thumbnail_locations(tmp_path):
    photo, thumb = tmp_path / "placed.jpg", tmp_path / "thumb.jpg"
    picture().save(photo, quality=90)
    picture().resize((16, 12)).save(thumb, exif=exif_with_gps(-33.8688, -151.2093).tobytes())  # south and west
    cmd = [
        EXIFTOOL,
        "-q",
        "-overwrite_original",
        "-XMP-photoshop:City=Paris",
        "-XMP-photoshop:Country=France",
        "-IPTC:City=Paris",
        "-IPTC:Country-PrimaryLocationName=France",
        "-XMP-exif:GPSLatitude=48.85",
        f"-ThumbnailImage<={thumb}",
        str(photo),
    ]
    subprocess.run(cmd, check=True)
    fields = {f["field"]: f["value"] for f in audit_file(photo, LIMIT).findings if f["kind"] == "location"}
    assert {"XMP-photoshop:City", "XMP-photoshop:Country", "IPTC:City", "XMP-exif:GPSLatitude"} <= set(fields)
    assert float(fields["Thumbnail:GPSLatitude"]) < 0 and float(fields["Thumbnail:GPSLongitude"]) < 0
    record = strip_file(photo, tmp_path / "out" / "placed.jpg", {"icc", "orientation"}, LIMIT)
    assert "error" not in record and audit_file(tmp_path / "out" / "placed.jpg", LIMIT).findings == []
    assert exiftool_location(tmp_path / "out" / "placed.jpg") == set()


def test_png_exif_and_xmp_webp_exif_and_heic(tmp_path):
    png = tmp_path / "a.png"
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", XMP)
    info.add_text("Author", "Jane Roe")
    picture().save(png, exif=exif_with_gps(45.76, 4.84).tobytes(), pnginfo=info)
    webp = tmp_path / "a.webp"
    picture().save(webp, exif=exif_with_gps(45.76, 4.84).tobytes(), xmp=XMP.encode(), lossless=True)
    heic = tmp_path / "a.heic"
    picture().save(heic, exif=exif_with_gps(45.76, 4.84).tobytes())
    for path in (png, webp, heic):
        found = audit_file(path, LIMIT)
        assert not found.error and "GPSLatitude" in {f["field"] for f in found.findings}, path
    assert {"XMP-photoshop:City", "PNG:Author"} <= {f["field"] for f in audit_file(png, LIMIT).findings}
    for path in (png, webp, heic):  # HEIC too: its boxes rewritten (tests/test_privacy_formats.py)
        out = tmp_path / "out" / path.name
        record = strip_file(path, out, {"icc", "orientation"}, LIMIT)
        assert "error" not in record and audit_file(out, LIMIT).findings == [], record
        with Image.open(path) as x, Image.open(out) as y:
            assert np.array_equal(np.asarray(x.convert("RGB")), np.asarray(y.convert("RGB")))


@pytest.mark.parametrize("kind", ["cmyk", "progressive", "baseline"])
def test_jpeg_variants_strip_losslessly(tmp_path, kind):
    src = tmp_path / f"{kind}.jpg"
    exif = exif_with_gps(40.0, -3.7).tobytes()
    im = picture("CMYK") if kind == "cmyk" else picture()
    im.save(src, exif=exif, progressive=kind == "progressive", quality=85)
    if kind == "cmyk":
        assert any(s.marker == 0xEE for s in jpeg_segments(src.read_bytes()).head)  # Adobe APP14
    out = tmp_path / "out" / src.name
    assert "error" not in strip_file(src, out, {"icc", "orientation"}, LIMIT)
    assert audit_file(out, LIMIT).findings == []
    with Image.open(src) as x, Image.open(out) as y:
        assert np.array_equal(np.asarray(x), np.asarray(y)) and x.mode == y.mode
        assert y.getexif().get(0x0112) == 6  # the orientation stays: the picture looks the same


def test_in_place_keeps_permissions_and_an_existing_output_needs_force(tmp_path):
    src = tmp_path / "p.jpg"
    shutil.copy(PHOTOS / "DSCN0010.jpg", src)
    os.chmod(src, 0o640)
    assert "error" not in strip_file(src, src, {"icc"}, LIMIT)
    assert audit_file(src, LIMIT).findings == [] and (src.stat().st_mode & 0o777) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["p.jpg"]  # no temporary file left
    out = tmp_path / "copy.jpg"
    out.write_bytes(b"keep me")
    assert "--force" in strip_file(PHOTOS / "DSCN0042.jpg", out, set(), LIMIT)["error"]
    assert out.read_bytes() == b"keep me"
    assert "error" not in strip_file(PHOTOS / "DSCN0042.jpg", out, set(), LIMIT, force=True)


def test_bad_files_get_their_own_errors_and_the_rest_go_on(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(PHOTOS / "DSCN0010.jpg", folder / "good.jpg")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes((PHOTOS / "DSCN0042.jpg").read_bytes()[:2000])
    (folder / "text.jpg").write_text("not an image")
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, "PNG")
    bomb = bytearray(buf.getvalue())
    bomb[16:24] = (100_000).to_bytes(4, "big") * 2  # IHDR claims 100,000 x 100,000
    (folder / "bomb.png").write_bytes(bytes(bomb))
    (folder / "loop.jpg").symlink_to(folder / "loop.jpg")
    code, out = run("audit", "--format", "json", str(folder), capsys=capsys)
    errors = {Path(r["input"]).name: r.get("error", "") for r in json.loads(out)}
    assert code == 2 and errors["good.jpg"] == ""
    assert "empty" in errors["empty.jpg"] and "truncated" in errors["truncated.jpg"]
    assert "not an image" in errors["text.jpg"] and "decompression-bomb" in errors["bomb.png"]
    assert "symbolic" in errors["loop.jpg"].lower()
    code, out = run("strip", "--format", "json", "--out", str(tmp_path / "out"), str(folder), capsys=capsys)
    records = {Path(r["input"]).name: r for r in json.loads(out)}
    assert code == 2 and "error" not in records["good.jpg"] and (tmp_path / "out" / "good.jpg").exists()
    assert all("error" in r for name, r in records.items() if name != "good.jpg")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.jpg"]


def test_unreadable_file_is_its_own_error(tmp_path, monkeypatch):
    path = tmp_path / "locked.jpg"
    shutil.copy(PHOTOS / "DSCN0010.jpg", path)

    def denied(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", denied)  # root reads any file: simulate a locked one
    assert "permission denied" in audit_file(path, LIMIT).error


def test_fail_on_kinds(tmp_path, capsys):
    src = PHOTOS / "Canon_40D.jpg"  # times, no location
    assert run("audit", str(src), capsys=capsys)[0] == 0
    assert run("audit", "--fail-on", "time", str(src), capsys=capsys)[0] == 1
    assert run("audit", "--fail-on", "any", str(src), capsys=capsys)[0] == 1
    assert run("audit", "--fail-on", "where", str(src), capsys=capsys)[0] == 2


def test_audit_with_a_bundle_adds_the_visual_guess_and_the_domain_warning(smoke_chain, capsys):
    from ml.paths import Paths

    root, _ = smoke_chain
    code, out = run(
        "audit", "--format", "json", "--bundle", str(Paths(root).bundle), str(PHOTOS / "DSCN0010.jpg"), capsys=capsys
    )
    (report,) = json.loads(out)
    visual = report["visual"]
    assert code == 1 and -90 <= visual["lat"] <= 90 and len(visual["top_cells"]) >= 1
    assert visual["radius_km"] >= 0 and "terrain" in visual["warning"]
