"""roost serve under load: the server started as a user starts it (`roost serve` on 127.0.0.1, a
free port, the default bundle of `make run`, 2 torch threads), a 640 px JPEG (a camera photo of
../shared/testdata/exif resized, its metadata kept) posted to /api/predict: the median of 40
one-at-a-time requests after 5 warm-ups, then 4 concurrent clients sending 100 in all."""

from benchmarks.common import pin_threads, report

THREADS = pin_threads(2)

import io  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import requests  # noqa: E402
from PIL import Image  # noqa: E402

from ml.paths import Paths  # noqa: E402
from ml.serve.process import served  # noqa: E402

PHOTO = Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "exif" / "DSCN0010.jpg"
CLIENTS, SEQUENTIAL, CONCURRENT = 4, 40, 100


def photo_640() -> bytes:
    with Image.open(PHOTO) as im:
        exif = im.info.get("exif", b"")
        im.thumbnail((640, 640))
        out = io.BytesIO()
        im.save(out, "JPEG", quality=90, exif=exif)
    return out.getvalue()


def main() -> None:
    bundle = Paths.from_env().bundle
    if not (bundle / "manifest.json").exists():
        sys.exit(f"no bundle at {bundle}: run `make run` first")
    body = photo_640()
    with served(bundle, "--threads", str(THREADS)) as server:
        base, start_seconds, pid = server.base, server.start_seconds, server.pid

        def one(_=None) -> float:
            t = time.perf_counter()
            reply = requests.post(base + "/api/predict", files=[("files", ("p.jpg", body, "image/jpeg"))], timeout=60)
            reply.raise_for_status()
            assert "lat" in reply.json()[0], reply.text
            return (time.perf_counter() - t) * 1000

        for _ in range(5):
            one()
        latencies = [one() for _ in range(SEQUENTIAL)]
        t = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            concurrent = list(pool.map(one, range(CONCURRENT)))
        per_s = CONCURRENT / (time.perf_counter() - t)
    median = statistics.median(latencies)
    with Image.open(io.BytesIO(body)) as im:
        size = im.size
    print(f"server up in {start_seconds:.1f} s (bundle loaded once); photo {size[0]}x{size[1]}, {len(body):,} bytes")
    low, high = min(latencies), max(latencies)
    print(f"one at a time: median {median:.1f} ms over {SEQUENTIAL} (min {low:.1f}, max {high:.1f})")
    print(
        f"{CLIENTS} concurrent clients: {per_s:.1f} requests/s over {CONCURRENT}, "
        f"median {statistics.median(concurrent):.1f} ms"
    )
    print(f"server pid {pid}, {os.cpu_count()} cpus, {THREADS} torch threads")
    report({"median_ms": round(median, 1), "requests_per_s": round(per_s, 1), "clients": CLIENTS})


if __name__ == "__main__":
    main()
