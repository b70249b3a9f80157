"""Enrich the whole 100,000-point MP-16 gallery: all layers, the split, the DuckDB file written.

Timed from after imports to the file on disk, reference data reading included. Also prints the
make-up of val and test on the active profile's locations (each split's share per continent and
in the ten largest training countries, and the largest gaps) and the split's buffer trade-off
(terrain views reach ~130 km).
"""

from benchmarks.common import pin_threads, report

THREADS = pin_threads(2)

import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from ml.config import load_config  # noqa: E402
from ml.data.enrich import enrich_locations  # noqa: E402
from ml.data.sources import load_raw_locations  # noqa: E402
from ml.data.split import spatial_split  # noqa: E402
from ml.geo.reference import ReferenceData  # noqa: E402
from ml.paths import Paths  # noqa: E402
from ml.settings import EnrichConfig, RawLocationsConfig  # noqa: E402
from ml.store import write_tables  # noqa: E402


def main() -> None:
    paths = Paths.from_env()
    gallery = paths.reference / "mp16_gallery_100k.csv"
    cfg = load_config(EnrichConfig, paths.params)
    raw_cfg = RawLocationsConfig(
        source="default", path=str(gallery), n_locations=0, seed=0, group_distance_m=0, group_minutes=0
    )
    raw = load_raw_locations(raw_cfg, gallery, paths.root).locations

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = enrich_locations(raw, ReferenceData(paths.reference), cfg, paths.root)
        write_tables(Path(tmp) / "enriched.duckdb", {"locations": result.locations, "rejected": result.rejected})
        seconds = time.perf_counter() - start
    loc = result.locations
    print(f"enriched {len(raw):,} points in {seconds:.2f} s ({THREADS} threads); stages: {result.seconds}")
    print(f"accepted {len(loc):,}, rejected {len(result.rejected):,}; split {result.split_sizes()}")

    sample_cfg = load_config(RawLocationsConfig, paths.params)
    sample = load_raw_locations(sample_cfg, paths.resolve(sample_cfg.path), paths.root).locations
    active = enrich_locations(sample, ReferenceData(paths.reference), cfg, paths.root)
    makeup = active.makeup()
    print(f"val / test make-up on the active profile's {len(active.locations):,} locations ({active.split_sizes()}):")
    for group in ("continents", "countries"):
        for name, v in makeup[group].items():
            print(f"  {name:16} val {v['val']:5.1f}%  test {v['test']:5.1f}%  gap {abs(v['val'] - v['test']):4.1f}")
    print(
        f"  ten largest training countries: val {makeup['top10_val']:.1f}%, test {makeup['top10_test']:.1f}%; "
        f"largest continent gap {makeup['largest_continent_gap']:.2f} points, "
        f"{makeup['largest_country']} gap {makeup['largest_country_share_gap']:.2f}"
    )

    lat, lon = sample["lat"].to_numpy(), sample["lon"].to_numpy()
    print(f"split trade-off on the active profile's {len(sample):,} locations (val/test/buffer shares):")
    print("  min_km  block_km    train   val   test  buffer")
    for min_km in (50, 75, 100, 130):
        for block_km in (400, 800, 1600):
            split = spatial_split(lat, lon, replace(cfg.split, min_distance_km=min_km, block_km=block_km))
            share = {s: float(np.mean(split == s)) for s in ("train", "val", "test", "buffer")}
            print(
                f"  {min_km:6d}  {block_km:8d}  {share['train']:6.1%} {share['val']:6.1%} "
                f"{share['test']:6.1%} {share['buffer']:6.1%}"
            )
    report(
        {
            "seconds": round(seconds, 3),
            "country_share": round(float(loc["country"].notna().mean()), 4),
            "admin1_share": round(float(loc["adm1_code"].notna().mean()), 4),
            "largest_continent_gap": makeup["largest_continent_gap"],
            "largest_country_share_gap": makeup["largest_country_share_gap"],
            "makeup": makeup,
            "points": len(raw),
        }
    )


if __name__ == "__main__":
    main()
