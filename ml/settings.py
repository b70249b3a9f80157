"""The schema of params.yaml: one config class per section (and the classes nested in them), in
the order of the file, in a module that imports nothing heavy: the definitions, every DVC
stage's start, ``check_params`` and the CLI read params without importing torch, transformers,
geopandas or the web stack. The code each section configures lives in its own module."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import ClassVar, Literal


@dataclass(frozen=True)
class RawLocationsConfig:
    SECTION: ClassVar[str] = "raw_locations"

    source: Literal["default", "manifest", "exif_folder"]
    path: str  # the MP-16 gallery CSV (default), the user's manifest (manifest) or photo folder (exif_folder)
    n_locations: int  # default source: how many gallery rows to sample (0 = all)
    seed: int
    group_distance_m: float  # exif_folder: photos this close (and group_minutes apart) form one location; 0 = off
    group_minutes: float


@dataclass(frozen=True)
class SplitConfig:
    seed: int
    val_share: float
    test_share: float
    min_distance_km: float  # no val/test location this close to a train location
    block_km: float  # width of a block dealt whole to one split
    held_per_block: int = 0  # most locations a val/test block holds out (the rest: buffer; 0 = all)
    stratify: bool = False  # deal held-out blocks to val and test by region (continent, country): the same make-up


@dataclass(frozen=True)
class EnrichConfig:
    SECTION: ClassVar[str] = "enriched_locations"

    coast_cap_km: float  # points off every polygon take the nearest within this, else rejected
    koppen_search_px: int  # a coastal point reading "Ocean" takes the nearest land class this near
    population_bandwidth_km: float  # the Gaussian kernel of the population-density proxy
    admin2: Admin2Config
    split: SplitConfig


@dataclass(frozen=True)
class Admin2Config:
    path: str  # a GADM / geoBoundaries polygon file readable by pyogrio; "" for none
    name_field: str  # its name column, e.g. NAME_2 (GADM) or shapeName (geoBoundaries)


@dataclass(frozen=True)
class TerrainConfig:
    window_km: float  # width and depth of the ground a view shows
    water_below_m: float  # elevation under this is water, whatever the land cover says
    koppen_tint: float  # 0..1 blend of the climate-group colour
    hillshade: float  # strength of the relief shading
    town_px_per_log10: float  # spot radius (px) per decade of population above 10,000
    town_max_px: float  # spot radius cap
    noise: NoiseConfig


@dataclass(frozen=True)
class NoiseConfig:
    brightness: float  # factor drawn from 1 ± this
    contrast: float  # factor drawn from 1 ± this
    blur_max_px: float  # Gaussian sigma drawn from [0, this]
    sensor_sigma: float  # per-pixel Gaussian noise sigma drawn from [0, this] (0-255 scale)


@dataclass(frozen=True)
class StreetViewConfig:
    base_url: str  # https://maps.googleapis.com/maps/api/streetview (a local stub in tests)
    key_env: str  # the environment variable holding the API key
    radius_m: int  # metadata search radius around each location
    size: int  # requested image size in px (square; the API allows up to 640)
    fov: float  # horizontal field of view, degrees
    pitch: float
    outdoor_only: bool  # source=outdoor: no indoor panoramas
    requests_per_s: float  # client-side rate limit (all requests)
    timeout_s: float  # per request
    max_retries: int  # retries after the first try, on 429 / 5xx / network errors / truncated bodies
    backoff_s: float  # first retry's wait; doubles each time
    cache: str  # folder for metadata and images, relative to the project root; outside DVC's outs


@dataclass(frozen=True)
class ImagesConfig:
    SECTION: ClassVar[str] = "location_images"

    source: Literal["terrain", "files", "streetview"]
    views: int  # views per location (terrain, streetview), at most this many files per location (files)
    image_size: int  # stored views are image_size x image_size RGB
    seed: int
    encoding: Literal["png", "jpeg"]
    jpeg_quality: int
    shard_views: int  # views per shard file
    max_pixels: int  # decompression-bomb limit for decoded files
    workers: int  # processes
    chunk_views: int  # views per task
    terrain: TerrainConfig
    streetview: StreetViewConfig


@dataclass(frozen=True)
class CaptionsConfig:
    SECTION: ClassVar[str] = "captions"

    per_view: int  # captions per stored view
    photo_noun: str  # "Street View photo", "photo", "terrain view"...
    town_max_km: float  # name the nearest town only when it is this close
    aux_min: int  # auxiliary sentences per caption, drawn uniformly in [aux_min, aux_max]
    aux_max: int
    aux_kinds: list[str]  # which auxiliary sentences may be drawn
    seed: int


@dataclass(frozen=True)
class GeocellsConfig:
    SECTION: ClassVar[str] = "geocells"

    min_cell_size: int
    max_cell_size: int
    optics: OpticsConfig
    adjacency_deg: float  # units closer than this (degrees) are adjacent
    workers: int  # processes for splitting
    builder: str  # semantic (PIGEON's cells) | naive (border-blind equal-count boxes, the ablation)
    naive_cells: int  # naive: the number of boxes (0 = as many as the semantic build makes)

    def __post_init__(self):
        if self.builder not in ("semantic", "naive"):
            raise ValueError(f"geocells: builder {self.builder!r}; use semantic or naive")
        if self.max_cell_size < 2 * self.min_cell_size - 1:
            raise ValueError(
                f"geocells: max_cell_size {self.max_cell_size} must be at least 2 * min_cell_size - 1 "
                f"= {2 * self.min_cell_size - 1}, or a split cannot keep both halves above the minimum"
            )


@dataclass(frozen=True)
class OpticsConfig:
    min_samples: int
    xi: float
    min_cluster_size: int
    max_eps_km: float
    max_sites: int  # a cell with more unique sites is cut into pieces of at most this many before OPTICS


@dataclass(frozen=True)
class ReportConfig:
    SECTION: ClassVar[str] = "benchmark_report"

    sets: list[EvalSet]  # user evaluation sets; `holdout` (the test split) is always evaluated
    bootstrap: int
    seed: int
    batch_size: int
    max_locations: int  # evaluate at most this many holdout locations (0 = all)
    zero_shot: list[str]  # CLIP models for the zero-shot rows: streetclip (the asset), a folder or a hub id
    zero_shot_top_countries: int  # admin-1 regions are scored within this many best countries


@dataclass(frozen=True)
class EvalSet:
    name: str
    manifest: str  # a CSV/Parquet with lat, lon and image_path(s) (the raw_locations format)
    swap_lat_lon: bool  # IM2GPS / IM2GPS3k metadata files have LAT and LON headers swapped


@dataclass(frozen=True)
class StreetclipConfig:
    SECTION: ClassVar[str] = "streetclip"

    backbone: str  # a file in ml/models/configs: tiny | vit-l-14-336
    weights: Literal["random", "pretrained"]
    epochs: int  # 0 = no contrastive training (the ablation): the initial model is saved
    batch_size: int
    grad_accum: int
    lr: float
    weight_decay: float
    warmup_fraction: float
    seed: int
    device: str  # auto | cpu | cuda
    num_workers: int
    val_locations: int  # locations in the val retrieval measurement
    threads: int  # torch CPU threads (0 = torch's default)
    processes: int  # >1: the asset launches torchrun with this many processes (DDP; one per GPU)
    checkpoint_every: int  # optimizer steps between checkpoints in data/cache/streetclip (0 = none)


@dataclass(frozen=True)
class AuxWeights:
    koppen: float
    landcover: float
    elevation: float
    population: float
    month: float


@dataclass(frozen=True)
class GeocellModelConfig:
    SECTION: ClassVar[str] = "geocell_model"

    views: int  # views averaged per location, training and evaluation (0 = all)
    train_views: int  # of those, the ones training reads per location, drawn afresh each epoch (0 = all)
    trainable_layers: int  # last transformer layers of the vision tower that train
    head: Literal["linear", "mlp"]
    head_hidden: int
    labels: Literal["haversine", "one_hot"]
    tau_km: float
    aux: AuxWeights  # 0 switches a head off
    epochs: int
    batch_size: int  # locations per batch
    lr: float
    weight_decay: float
    warmup_fraction: float
    patience: int  # select best: early stopping after this many epochs without a better val GeoGuessr score
    select: Literal["best", "last"]  # the epoch kept: the best val GeoGuessr score | the schedule's last
    seed: int
    device: str
    threads: int
    cache_trunk: bool
    processes: int  # >1: the asset launches torchrun with this many processes (DDP; one per GPU)
    checkpoint_every: int  # optimizer steps between checkpoints in data/cache/geocell_model (0 = none)


@dataclass(frozen=True)
class RefineConfig:
    SECTION: ClassVar[str] = "refine"

    enabled: bool
    top_k: int  # PIGEON: 5
    temperature: float
    max_move_km: float  # PIGEON: 1000
    # the cell a guess starts from (ml.refine.refine.anchor_cells)
    guess: Literal["top_cell", "min_expected_distance", "country_first"]


GUESSES: tuple[str, ...] = typing.get_args(typing.get_type_hints(RefineConfig)["guess"])


@dataclass(frozen=True)
class PrototypesConfig:
    SECTION: ClassVar[str] = "prototypes"

    min_samples: int  # PIGEON: 3
    xi: float  # PIGEON: 0.15
    workers: int
    batch_size: int  # locations per embedding batch


@dataclass(frozen=True)
class BundleConfig:
    SECTION: ClassVar[str] = "model_bundle"

    image_domain: str  # what the model saw in training; predict warns on other domains


@dataclass(frozen=True)
class PromotionConfig:
    SECTION: ClassVar[str] = "promotion"

    # the challenger is refused when worse than the champion by more than this many half-widths
    # of the champion's bootstrap interval, on GeoGuessr score, median km or country accuracy
    tolerance: float
    force: bool  # promote the challenger whatever the figures (the log and the verdict say so)


@dataclass(frozen=True)
class ChecksConfig:
    SECTION: ClassVar[str] = "checks"

    # error: a geocell model that does not beat the train-set medoid stops model_bundle (blocking);
    # warn: the failed check is reported and the chain goes on (the smoke profile, whose
    # seconds-long model is a mechanism, not a model)
    baseline_severity: str


@dataclass(frozen=True)
class ServeConfig:
    SECTION: ClassVar[str] = "serve"

    max_file_mb: float  # an upload over this gets 413
    max_request_mb: float  # a request over this gets 413
    max_files: int  # files in one request
    simplify_deg: float  # the map's country outlines are simplified to this tolerance
