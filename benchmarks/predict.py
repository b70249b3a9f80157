"""Inference with the default bundle (run `make run` first): what a `roost predict` call costs
from a cold start, bundle load time after imports, median single-image latency, batch
throughput, and the prototype build time of the embedded default (OPTICS within every geocell,
on the default's training locations).

`cold_seconds` is the wall time of `roost predict --bundle B docs/example/view0.png` in a fresh
process (imports, bundle load, one image, the table printed): the median of three runs.
`import_seconds` is the imports a prediction needs, in this process (torch, pandas, scipy,
shapely and Roost's inference modules; not transformers, since the vision tower is plain torch
(ml/models/vit.py), nor geopandas, since naming places reads the bundle's polygons with pyarrow);
`load_seconds` starts once they are imported."""

import time

IMPORTS_START = time.perf_counter()

from benchmarks.common import pin_threads, report  # noqa: E402

THREADS = pin_threads(2)

import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from ml.bundle import BundleError  # noqa: E402
from ml.config import load_config  # noqa: E402
from ml.data.images import ImageStore  # noqa: E402
from ml.geo import boundaries, gazetteer  # noqa: E402, F401
from ml.models.geocell import load_geocell_model  # noqa: E402
from ml.paths import Paths  # noqa: E402
from ml.predict import Geolocator  # noqa: E402
from ml.refine.prototypes import build_prototypes, location_embeddings  # noqa: E402
from ml.settings import PrototypesConfig  # noqa: E402
from ml.stages.geocells import read_geocells  # noqa: E402
from ml.stages.location_images import read_images  # noqa: E402

IMPORT_SECONDS = time.perf_counter() - IMPORTS_START
EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "example" / "view0.png"


def cold_start(bundle: Path, runs: int = 3) -> list[float]:
    """Wall seconds of `roost predict` on one image, each in a fresh process."""
    roost = Path(sys.executable).with_name("roost")
    cmd = [str(roost)] if roost.exists() else [sys.executable, "-m", "ml.cli"]
    seconds = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([*cmd, "predict", "--bundle", str(bundle), str(EXAMPLE)], check=True, capture_output=True)
        seconds.append(time.perf_counter() - t)
    return seconds


def main() -> None:
    paths = Paths.from_env()
    bundle = paths.bundle
    start = time.perf_counter()
    try:
        geo = Geolocator(bundle, device="cpu", threads=THREADS)
    except BundleError as e:
        sys.exit(f"{e}\nrun `make run` first: this benchmark measures the default bundle")
    geo.name_places(np.array([0.0]), np.array([0.0]))  # the place index is part of loading
    load_seconds = time.perf_counter() - start
    colds = cold_start(bundle)
    cold = statistics.median(colds)

    images = read_images(paths)
    store = ImageStore(paths.shards)
    views = [store.read(k) for k in images["key"].head(256)]
    for v in views[:3]:
        geo.predict_arrays([[v]])  # warm-up
    latencies = []
    for v in views[:50]:
        t = time.perf_counter()
        geo.predict_arrays([[v]])
        latencies.append((time.perf_counter() - t) * 1000)
    t = time.perf_counter()
    for i in range(0, 256, 64):
        geo.predict_arrays([[v] for v in views[i : i + 64]])
    per_s = 256 / (time.perf_counter() - t)

    cfg = load_config(PrototypesConfig, paths.params)
    cells = read_geocells(paths).assignments
    model = load_geocell_model(paths.geocell_model)
    ids = cells["id"].astype(str).to_numpy()
    emb = location_embeddings(model, images, list(ids), store, cfg.batch_size)
    _, proto_seconds = build_prototypes(
        ids, cells["lat"].to_numpy(), cells["lon"].to_numpy(), cells["cell_id"].to_numpy(), emb, cfg
    )
    store.close()
    median = statistics.median(latencies)
    print(f"roost predict, one image, fresh process: {cold:.2f} s (median of {', '.join(f'{c:.2f}' for c in colds)})")
    print(f"imports (torch, pandas, scipy, shapely, Roost's inference modules): {IMPORT_SECONDS:.2f} s")
    print(f"bundle {bundle} loaded in {load_seconds:.2f} s (checksums verified, place index built)")
    print(f"single image: median {median:.1f} ms over {len(latencies)} ({THREADS} threads, CPU)")
    print(f"batch of 64: {per_s:.1f} images/s")
    print(f"prototypes for {len(ids):,} training locations ({cfg.workers} workers): {proto_seconds:.2f} s")
    report(
        {
            "cold_seconds": round(cold, 2),
            "median_ms": round(median, 2),
            "images_per_s": round(per_s, 1),
            "load_seconds": round(load_seconds, 3),
            "import_seconds": round(IMPORT_SECONDS, 3),
            "prototype_build_seconds": round(proto_seconds, 3),
        }
    )


if __name__ == "__main__":
    main()
