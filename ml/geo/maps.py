"""Small world maps as PNG bytes, for asset metadata and reports."""

from __future__ import annotations

import io

import numpy as np


def world_axes(countries=None, size=(8, 4.2)):
    """A plate carrée figure with country outlines, ready for points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size, dpi=90)
    if countries is not None:
        countries.boundary.plot(ax=ax, linewidth=0.3, color="#888888")
    return fig, ax


def finish_png(fig, ax, title: str = "") -> bytes:
    """World extent, no ticks, the title; the figure as PNG bytes (closed)."""

    ax.set_xlim(-180, 180)
    ax.set_ylim(-60, 85)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    return figure_png(fig)


def figure_png(fig) -> bytes:
    """A matplotlib figure as PNG bytes; the figure is closed."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def world_map_png(lat, lon, groups=None, countries=None, title: str = "", size=(8, 4.2)) -> bytes:
    """Points on a plate carrée world map, coloured by ``groups``, over country outlines."""
    fig, ax = world_axes(countries, size)
    lat, lon = np.asarray(lat), np.asarray(lon)
    if groups is None:
        ax.scatter(lon, lat, s=2, c="#d62728", linewidths=0)
    else:
        groups = np.asarray(groups)
        colours = {"train": "#1f77b4", "val": "#2ca02c", "test": "#d62728", "buffer": "#aaaaaa"}
        for g in dict.fromkeys(groups):
            m = groups == g
            ax.scatter(lon[m], lat[m], s=2, linewidths=0, label=f"{g} ({m.sum():,})", c=colours.get(str(g)))
        ax.legend(loc="lower left", fontsize=7, markerscale=4, frameon=False)
    return finish_png(fig, ax, title)


def cells_map_png(cells, countries=None, title: str = "", size=(8, 4.2)) -> bytes:
    """Geocell polygons in random colours with their centroids, over country outlines."""
    fig, ax = world_axes(countries, size)
    colours = np.random.default_rng(0).uniform(0.2, 0.95, (len(cells), 3))
    cells.plot(ax=ax, color=colours, linewidth=0.1, edgecolor="white")
    ax.scatter(cells["centroid_lon"], cells["centroid_lat"], s=1, c="black", linewidths=0)
    return finish_png(fig, ax, title)
