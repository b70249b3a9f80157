"""Countries and admin-1 units for points, on the Natural Earth layers.

The rule where the layers disagree (written down once, here): **admin-1 wins.** A point's
country is the country of the admin-1 unit that contains it, so country and admin-1 always
nest (geocells rely on it). The admin-0 layer decides only (a) where no admin-1 unit contains
the point or lies within the coast cap, and (b) for the six disputed admin-1 areas with no
admin-0 row (BJN, CYN, KAB, KAS, SER, SOL): there the admin-0 polygon containing, else nearest
to, the point gives the country. A point in no polygon takes the nearest polygon within
``cap_km`` (piers, beaches, boats: about 7% of MP-16); beyond the cap it is not on land.
Countries coded "-99" in Natural Earth's iso_a2 (sovereign base areas, Bir Tawil...) use their
adm0_a3 code instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from ml.geo.haversine import KM_PER_DEG_LAT, haversine_km


@dataclass
class AdminIndex:
    admin0: pd.DataFrame  # attributes, positional
    admin1: pd.DataFrame
    geoms0: np.ndarray
    geoms1: np.ndarray
    tree0: shapely.STRtree
    tree1: shapely.STRtree

    @classmethod
    def build(cls, admin0, admin1) -> AdminIndex:
        a0 = admin0.reset_index(drop=True)
        a1 = admin1.reset_index(drop=True)
        g0, g1 = a0.geometry.to_numpy(), a1.geometry.to_numpy()
        shapely.prepare(g0)
        shapely.prepare(g1)
        return cls(
            admin0=pd.DataFrame(a0.drop(columns="geometry")),
            admin1=pd.DataFrame(a1.drop(columns="geometry")),
            geoms0=g0,
            geoms1=g1,
            tree0=shapely.STRtree(g0),
            tree1=shapely.STRtree(g1),
        )


def first_hit(tree: shapely.STRtree, points: np.ndarray, n: int) -> np.ndarray:
    """Index of the first polygon containing each point, -1 where none (lowest index wins on
    overlapping borders, which keeps the result deterministic)."""
    pi, gi = tree.query(points, predicate="intersects")
    out = np.full(n, -1, dtype=np.int64)
    order = np.lexsort((gi, pi))
    pi, gi = pi[order], gi[order]
    first = np.r_[True, pi[1:] != pi[:-1]] if len(pi) else np.zeros(0, bool)
    out[pi[first]] = gi[first]
    return out


def nearest_within(
    tree: shapely.STRtree, geoms: np.ndarray, points: np.ndarray, lat: np.ndarray, cap_km: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest polygon in km (not degrees) within ``cap_km`` of each point: (index or -1, km).
    With ``cap_km`` None, the nearest polygon at any distance (by degrees, then measured in km)."""
    n = len(points)
    idx = np.full(n, -1, dtype=np.int64)
    dist = np.full(n, np.inf)
    if n == 0:
        return idx, dist
    if cap_km is None:
        pi, gi = tree.query_nearest(points, all_matches=False)
    else:
        # A degree radius that covers cap_km at the point's latitude (longitude degrees shrink).
        coslat = np.maximum(np.cos(np.radians(np.abs(lat))), 0.01)
        radius = cap_km / KM_PER_DEG_LAT / coslat * 1.05
        pi, gi = tree.query(points, predicate="dwithin", distance=radius)
    if len(pi) == 0:
        return idx, dist
    lines = shapely.shortest_line(points[pi], geoms[gi])
    coords = shapely.get_coordinates(lines).reshape(-1, 2, 2)
    km = haversine_km(coords[:, 0, 1], coords[:, 0, 0], coords[:, 1, 1], coords[:, 1, 0])
    order = np.lexsort((gi, km, pi))
    pi, gi, km = pi[order], gi[order], km[order]
    first = np.r_[True, pi[1:] != pi[:-1]]
    pi, gi, km = pi[first], gi[first], km[first]
    keep = km <= cap_km if cap_km is not None else np.ones(len(km), bool)
    idx[pi[keep]] = gi[keep]
    dist[pi] = km
    return idx, dist


def country_code(admin0: pd.DataFrame) -> np.ndarray:
    iso = admin0["iso_a2"].astype(str).to_numpy()
    return np.where(iso == "-99", admin0["adm0_a3"].astype(str).to_numpy(), iso)


def locate(lat: np.ndarray, lon: np.ndarray, index: AdminIndex, cap_km: float) -> pd.DataFrame:
    """Country and admin-1 of each point; ``on_land`` False (with ``land_distance_km``) when no
    polygon lies within the cap."""
    n = len(lat)
    points = shapely.points(lon, lat)
    a0, a1 = index.admin0, index.admin1
    land_km = np.zeros(n)

    i1 = first_hit(index.tree1, points, n)
    miss = np.flatnonzero(i1 < 0)
    near1, km1 = nearest_within(index.tree1, index.geoms1, points[miss], lat[miss], cap_km)
    i1[miss] = near1
    land_km[miss] = np.where(near1 >= 0, km1, np.nan)

    # Country: the admin-1 unit's parent, where it has an admin-0 row.
    row_of_a3 = pd.Series(np.arange(len(a0)), index=a0["adm0_a3"].to_numpy())
    row_of_a3 = row_of_a3[~row_of_a3.index.duplicated()]
    parent_a3 = np.where(i1 >= 0, a1["adm0_a3"].to_numpy()[np.maximum(i1, 0)], "")
    i0 = row_of_a3.reindex(parent_a3).fillna(-1).to_numpy(dtype=np.int64)

    need0 = np.flatnonzero(i0 < 0)  # no admin-1 nearby, or a disputed admin-1 area
    if need0.size:
        hit0 = first_hit(index.tree0, points[need0], need0.size)
        out = np.flatnonzero(hit0 < 0)
        near0, km0 = nearest_within(index.tree0, index.geoms0, points[need0[out]], lat[need0[out]], cap_km)
        hit0[out] = near0
        i0[need0] = hit0
        sub = need0[out]
        land_km[sub] = np.where(near0 >= 0, km0, land_km[sub])
        land_km[need0[hit0 >= 0]] = np.where(i1[need0[hit0 >= 0]] >= 0, land_km[need0[hit0 >= 0]], 0.0)

    on_land = i0 >= 0
    far = np.flatnonzero(~on_land)
    if far.size:  # how far the nearest land is, for the rejection's detail
        _, km = nearest_within(index.tree0, index.geoms0, points[far], lat[far], None)
        land_km[far] = km
    land_km = np.nan_to_num(land_km, nan=0.0)

    codes = country_code(a0)

    def pick(frame: pd.DataFrame, column: str, rows: np.ndarray, values=None) -> np.ndarray:
        vals = frame[column].to_numpy(dtype=object) if values is None else values.astype(object)
        return np.where(rows >= 0, vals[np.maximum(rows, 0)], None)

    region = a1["region"].where(a1["region"].notna(), None)
    return pd.DataFrame(
        {
            "on_land": on_land,
            "land_distance_km": land_km,
            "country": pick(a0, "iso_a2", i0, codes),
            "country_name": pick(a0, "name", i0),
            "adm0_a3": pick(a0, "adm0_a3", i0),
            "continent": pick(a0, "continent", i0),
            "subregion": pick(a0, "subregion", i0),
            "adm1_code": pick(a1, "adm1_code", i1),
            "admin1": pick(a1, "name", i1),
            "admin1_region": pick(a1, "region", i1, region.to_numpy(dtype=object)),
        }
    )


def locate_admin2(lat: np.ndarray, lon: np.ndarray, admin2, name_field: str) -> np.ndarray:
    """Admin-2 names from a user-supplied polygon file (GADM / geoBoundaries), None outside."""
    geoms = admin2.geometry.to_numpy()
    tree = shapely.STRtree(geoms)
    hit = first_hit(tree, shapely.points(lon, lat), len(lat))
    names = admin2[name_field].astype(str).to_numpy(dtype=object)
    return np.where(hit >= 0, names[np.maximum(hit, 0)], None)
