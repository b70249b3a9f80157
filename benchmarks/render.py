"""Terrain views per second at the configured size, storage writes included.

Renders 4 views for each of 2,000 MP-16 gallery locations (8,000 views) through the same
builder the location_images asset runs (worker processes, PNG encoding, shard writes), timed
from the call to the last shard on disk, worker start-up included.
"""

from benchmarks.common import pin_threads, report

THREADS = pin_threads(1)  # per process; the builder runs `workers` processes

import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402

from ml.config import load_config  # noqa: E402
from ml.data.views import build_location_images  # noqa: E402
from ml.paths import Paths  # noqa: E402
from ml.settings import ImagesConfig  # noqa: E402


def main(n_locations: int = 2000) -> None:
    paths = Paths.from_env()
    cfg = replace(load_config(ImagesConfig, paths.params), source="terrain")
    gallery = pd.read_csv(paths.reference / "mp16_gallery_100k.csv").sample(n_locations, random_state=0)
    locations = gallery.assign(id=[f"mp16-{i}" for i in gallery.index]).reset_index(drop=True)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = build_location_images(locations, cfg, paths.reference, paths.root, Path(tmp))
        seconds = time.perf_counter() - start
        nbytes = sum(p.stat().st_size for p in Path(tmp).glob("*.bin"))
    n = len(result.images)
    print(
        f"{n:,} views of {cfg.image_size}px in {seconds:.2f} s with {cfg.workers} worker processes "
        f"({nbytes / n / 1024:.1f} KiB/view, {cfg.encoding})"
    )
    report({"views_per_s": round(n / seconds, 1), "views": n, "image_size": cfg.image_size, "workers": cfg.workers})


if __name__ == "__main__":
    main()
