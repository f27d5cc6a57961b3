"""Static figures (matplotlib, Agg): the village map and the cost curve as PNG."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from ..errors import SchemaError
from ._common import (
    CLASS_COLORS,
    CLASSES,
    _atomic_write,
    _class_of,
    _format,
    _labels,
    _missing,
    _to_wgs84,
)

logger = logging.getLogger(__name__)


def static_map_png(
    classified: gpd.GeoDataFrame,
    path: str | os.PathLike[str],
    *,
    plan: gpd.GeoDataFrame | None = None,
    title: str | None = None,
    lang: str = "vi",
    dpi: int = 150,
) -> Path:
    """Draw the villages coloured by class, with a legend, to a PNG (matplotlib, Agg).

    Parameters
    ----------
    classified : geopandas.GeoDataFrame
        Classified villages in any CRS; drawn in their local UTM zone (metres) so shapes keep
        their proportions.
    path : str or os.PathLike
        Output ``.png`` path, written atomically.
    plan : geopandas.GeoDataFrame, optional
        Planned sites (points with ``rank``), drawn as numbered black dots.
    title : str, optional
        Figure title; a translated default when omitted.
    lang : {"vi", "en"}, default "vi"
        Language of the legend and default title.
    dpi : int, default 150
        Resolution of the PNG.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path)
    _atomic_write(path, map_png_bytes(classified, plan=plan, title=title, lang=lang, dpi=dpi))
    logger.info("static map written to %s", path)
    return path


def map_png_bytes(
    classified: gpd.GeoDataFrame,
    *,
    plan: gpd.GeoDataFrame | None = None,
    title: str | None = None,
    lang: str = "vi",
    dpi: int = 150,
    figsize: tuple[float, float] = (9.0, 9.0),
    legend: bool = True,
) -> bytes:
    """The PNG of :func:`static_map_png`, as bytes (``figsize`` in inches)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure
    from matplotlib.patches import Patch

    lab = _labels(lang)
    if "class" not in classified.columns:
        raise SchemaError("classified has no 'class' column; pass the output of classification.")
    counts = classified["class"].map(_class_of).value_counts()
    villages = _to_wgs84(classified, "classified")
    metric = villages.estimate_utm_crs() if len(villages) else "EPSG:3857"
    villages = villages.to_crs(metric)
    cls = villages["class"].map(_class_of)

    fig = MplFigure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_facecolor("#f2f1ec")
    for c in (*CLASSES, "unknown"):
        part = villages[cls == c]
        if len(part):
            part.plot(ax=ax, color=CLASS_COLORS[c], edgecolor="#3a3a3a", linewidth=0.3)
    if plan is not None and len(plan):
        p = _to_wgs84(plan, "plan").to_crs(metric)
        pts = p.geometry.representative_point()
        ax.scatter(pts.x, pts.y, s=60, c="#111111", edgecolors="white", zorder=5)
        ranks = p["rank"] if "rank" in p.columns else pd.Series(range(1, len(p) + 1))
        for x, y, r in zip(pts.x, pts.y, ranks, strict=True):
            ax.annotate(
                _format("rank", r, lang) if not _missing(r) else "",
                (x, y),
                xytext=(5, 5),
                textcoords="offset points",
                fontsize=8,
                weight="bold",
            )
    handles = [
        Patch(
            facecolor=CLASS_COLORS[c], edgecolor="#3a3a3a", label=f"{lab[c]} ({counts.get(c, 0)})"
        )
        for c in CLASSES
    ]
    if counts.get("unknown", 0):
        handles.append(
            Patch(
                facecolor=CLASS_COLORS["unknown"],
                edgecolor="#3a3a3a",
                label=f"{lab['unknown']} ({counts['unknown']})",
            )
        )
    if legend:
        ax.legend(handles=handles, title=lab["legend_title"], loc="best", fontsize=9)
    ax.set_title(title if title is not None else lab["title"])
    ax.set_aspect("equal")
    ax.set_axis_off()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def cost_curve_png_bytes(
    curves: list[tuple[str, pd.DataFrame]],
    *,
    lang: str = "vi",
    currency: str = "",
    dpi: int = 150,
    figsize: tuple[float, float] = (6.0, 2.6),
) -> bytes:
    """People connected against money spent, one line per curve, as PNG bytes.

    Parameters
    ----------
    curves : list of (label, DataFrame)
        Each frame has ``cost`` (money, cumulative) and ``people`` (people connected,
        cumulative) columns, in increasing cost; a point (0, 0) is prepended.
    lang : {"vi", "en"}
        Language of the axis labels.
    currency : str
        Currency named on the money axis.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    lab = _labels(lang)
    fig = MplFigure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    scale, unit = 1.0, currency
    top = max((float(c["cost"].max()) for _, c in curves if len(c)), default=0.0)
    for factor, word in ((1e9, lab["billion"]), (1e6, lab["million"])):
        if top >= factor:
            scale, unit = factor, f"{word} {currency}".strip()
            break
    styles = [("#0072B2", "o"), ("#D55E00", "s"), ("#009E73", "^")]
    for k, (label, c) in enumerate(curves):
        x = np.r_[0.0, c["cost"].to_numpy(dtype=float)] / scale
        y = np.r_[0.0, c["people"].to_numpy(dtype=float)]
        color, marker = styles[k % len(styles)]
        ax.plot(x, y, color=color, marker=marker, markersize=3, linewidth=1.6, label=label,
                drawstyle="default")
    ax.set_xlabel(f"{lab['money_spent']} ({unit})" if unit else lab["money_spent"])
    ax.set_ylabel(lab["people_connected"])
    ax.grid(True, color="#dddddd", linewidth=0.6)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    if len(curves) > 1:
        ax.legend(fontsize=8, loc="lower right")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
