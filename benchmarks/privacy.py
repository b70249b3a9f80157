"""roost audit and roost strip throughput: 1,000 JPEGs (the real camera photos of
../shared/testdata/exif, copied round-robin into a temporary folder), audited, then stripped
into another folder, through the same functions as the commands (one process; no pixel is
decoded by either)."""

from benchmarks.common import pin_threads, report

THREADS = pin_threads(2)

import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from PIL import Image  # noqa: E402

from ml.privacy.audit import audit_file  # noqa: E402
from ml.privacy.files import collect  # noqa: E402
from ml.privacy.strip import KEEP, strip_file  # noqa: E402

N = 1000
PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "exif"


def main() -> None:
    photos = sorted(PHOTOS.glob("*.jpg"))
    if not photos:
        sys.exit(f"no photos in {PHOTOS}")
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in", Path(tmp) / "out"
        src.mkdir()
        for i in range(N):
            shutil.copy(photos[i % len(photos)], src / f"{i:04d}_{photos[i % len(photos)].name}")
        inputs, _ = collect([str(src)])
        start = time.perf_counter()
        audits = [audit_file(i.path, Image.MAX_IMAGE_PIXELS) for i in inputs]
        audit_s = time.perf_counter() - start
        start = time.perf_counter()
        records = [strip_file(i.path, out / i.relative, set(KEEP), Image.MAX_IMAGE_PIXELS) for i in inputs]
        strip_s = time.perf_counter() - start
        errors = sum(bool(a.error) for a in audits) + sum("error" in r for r in records)
        located = sum(any(f["kind"] == "location" for f in a.findings) for a in audits)
        mb = sum(p.stat().st_size for p in src.iterdir()) / 1e6
    print(f"{N} JPEGs ({mb:.0f} MB, {len(photos)} distinct photos; {located} with a location finding), errors {errors}")
    print(
        f"audit: {audit_s:.2f} s, {N / audit_s:.0f} files/s; strip (audit of each copy included): "
        f"{strip_s:.2f} s, {N / strip_s:.0f} files/s"
    )
    report({"audit_per_s": round(N / audit_s, 1), "strip_per_s": round(N / strip_s, 1), "errors": errors})


if __name__ == "__main__":
    main()
