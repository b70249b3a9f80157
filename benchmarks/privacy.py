"""roost audit and roost strip throughput: 1,000 JPEGs (the real camera photos of
../shared/testdata/exif, copied round-robin into a temporary folder), audited, then stripped
into another folder, through the same functions as the commands (one process; no pixel is
decoded by either). Then per format (PNG, WebP, HEIC, AVIF, TIFF, GIF): one 1024 x 768 file
made here with EXIF (GPS, camera, time), XMP and, where the format has one, a thumbnail, copied
200 times, audited and stripped; and a 12-megapixel HEIC (4032 x 3024, as phones save them)
stripped 20 times: the median milliseconds of one strip (the audit of the copy included)."""

from benchmarks.common import pin_threads, report

THREADS = pin_threads(2)

import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pillow_heif  # noqa: E402
from PIL import Image  # noqa: E402

from ml.privacy.audit import audit_file  # noqa: E402
from ml.privacy.files import collect  # noqa: E402
from ml.privacy.strip import KEEP, strip_file  # noqa: E402

N = 1000
PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "exif"


PER_FORMAT = 200
SUFFIX = {"png": ".png", "webp": ".webp", "heic": ".heic", "avif": ".avif", "tiff": ".tif", "gif": ".gif"}


def sample(fmt: str, path: Path, size=(1024, 768)) -> Path:
    """A photo-like file of ``fmt`` with EXIF (GPS, camera, time) and XMP."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "EOS 5D"
    exif.get_ifd(0x8769)[0x9003] = "2024:05:01 12:00:00"
    exif.get_ifd(0x8825).update({1: "N", 2: (45.0, 45.0, 36.0), 3: "E", 4: (4.0, 50.0, 24.0)})
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    xmp += b'<rdf:Description xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" photoshop:City="Lyon"/>'
    xmp += b"</rdf:RDF></x:xmpmeta>"
    yy, xx = np.mgrid[0 : size[1], 0 : size[0]]
    noise = np.random.default_rng(0).integers(0, 40, (size[1], size[0], 3))
    rgb = np.stack([xx * 255 // size[0], yy * 255 // size[1], (xx + yy) % 256], axis=-1) + noise
    image = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    if fmt == "heic":
        pillow_heif.from_pillow(image).save(path, quality=80, exif=exif.tobytes(), xmp=xmp, thumbnails=[256])
    elif fmt == "gif":
        image.convert("P").save(path, comment=b"taken at home")
    elif fmt == "tiff":
        image.save(path, exif=exif.tobytes())  # uncompressed: Pillow's libtiff path will not write EXIF
    else:
        image.save(path, exif=exif.tobytes(), xmp=xmp, quality=80)
    return path


def audit_and_strip(src: Path, out: Path):
    """(audits, strip records, audit seconds, strip seconds) of every image in ``src``."""
    inputs, _ = collect([str(src)])
    start = time.perf_counter()
    audits = [audit_file(i.path, Image.MAX_IMAGE_PIXELS) for i in inputs]
    audit_s = time.perf_counter() - start
    start = time.perf_counter()
    records = [strip_file(i.path, out / i.relative, set(KEEP), Image.MAX_IMAGE_PIXELS) for i in inputs]
    return audits, records, audit_s, time.perf_counter() - start


def errors_in(audits, records) -> int:
    return sum(bool(a.error) for a in audits) + sum("error" in r for r in records)


def rates(folder: Path, source: Path, n: int) -> dict:
    n = max(20, min(n, int(100e6 / source.stat().st_size)))  # at most ~100 MB of copies
    src = folder / "in"
    src.mkdir()
    for i in range(n):
        shutil.copy(source, src / f"{i:04d}{source.suffix}")
    audits, records, audit_s, strip_s = audit_and_strip(src, folder / "out")
    return {
        "files": n,
        "kb": round(source.stat().st_size / 1e3, 1),
        "findings": len(audits[0].findings),
        "audit_per_s": round(n / audit_s, 1),
        "strip_per_s": round(n / strip_s, 1),
        "errors": errors_in(audits, records),
    }


def heic_12mp(folder: Path, repeats: int = 20) -> tuple[float, float]:
    """(median ms of one strip of a 12-megapixel HEIC, its size in MB)."""
    path = sample("heic", folder / "12mp.heic", size=(4032, 3024))
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        record = strip_file(path, folder / f"12mp-{i}.heic", set(KEEP), Image.MAX_IMAGE_PIXELS)
        times.append(time.perf_counter() - start)
        assert "error" not in record, record
    return float(np.median(times) * 1000), path.stat().st_size / 1e6


def main() -> None:
    photos = sorted(PHOTOS.glob("*.jpg"))
    if not photos:
        sys.exit(f"no photos in {PHOTOS}")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        for i in range(N):
            shutil.copy(photos[i % len(photos)], src / f"{i:04d}_{photos[i % len(photos)].name}")
        audits, records, audit_s, strip_s = audit_and_strip(src, Path(tmp) / "out")
        errors = errors_in(audits, records)
        located = sum(any(f["kind"] == "location" for f in a.findings) for a in audits)
        mb = sum(p.stat().st_size for p in src.iterdir()) / 1e6
    print(f"{N} JPEGs ({mb:.0f} MB, {len(photos)} distinct photos; {located} with a location finding), errors {errors}")
    print(
        f"audit: {audit_s:.2f} s, {N / audit_s:.0f} files/s; strip (audit of each copy included): "
        f"{strip_s:.2f} s, {N / strip_s:.0f} files/s"
    )
    formats = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, suffix in SUFFIX.items():
            folder = Path(tmp) / fmt
            folder.mkdir()
            formats[fmt] = rates(folder, sample(fmt, folder / f"sample{suffix}"), PER_FORMAT)
            f = formats[fmt]
            print(
                f"{fmt:5} {f['files']} files of {f['kb']:.0f} kB ({f['findings']} findings each): audit "
                f"{f['audit_per_s']:.0f} files/s, strip {f['strip_per_s']:.0f} files/s, errors {f['errors']}"
            )
        ms, mb = heic_12mp(Path(tmp))
    print(f"12-megapixel HEIC ({mb:.1f} MB): strip {ms:.1f} ms (median of 20, audit of the copy included)")
    formats["jpeg"] = {"files": N, "audit_per_s": round(N / audit_s, 1), "strip_per_s": round(N / strip_s, 1)}
    errors += sum(f.get("errors", 0) for f in formats.values())
    report(
        {
            "audit_per_s": round(N / audit_s, 1),
            "strip_per_s": round(N / strip_s, 1),
            "errors": errors,
            "per_format": formats,
            "heic_12mp_strip_ms": round(ms, 1),
        }
    )


if __name__ == "__main__":
    main()
