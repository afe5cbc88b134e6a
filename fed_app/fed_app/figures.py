"""One bar chart per feature from the aggregated statistics (matplotlib, Agg, no pyplot)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import matplotlib

matplotlib.use("Agg")  # headless; must happen before any pyplot import elsewhere

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from fed_app.atomic import atomic_file  # noqa: E402

COLORS = {"0": "#1f77b4", "1": "#d62728"}


def _fmt(x: float) -> str:
    return f"{x:g}"


def plot_feature(feature: str, feat_agg: Mapping[str, Any], path: str | Path) -> Path:
    """Write a PNG with both outcomes' histograms side by side for one feature."""
    edges = [float(e) for e in feat_agg["bin_edges"]]
    by = feat_agg["by_outcome"]
    nbins = len(edges) - 1
    centers = [(edges[i] + edges[i + 1]) / 2 for i in range(nbins)]
    widths = [edges[i + 1] - edges[i] for i in range(nbins)]

    width, height = max(8.0, 0.45 * nbins + 3), 5.0
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    many = nbins > 14
    for k, o in enumerate(("0", "1")):
        hist = by[o]["hist"]
        xs = [c + (k - 0.5) * w * 0.4 for c, w in zip(centers, widths)]
        ws = [w * 0.4 for w in widths]
        bars = ax.bar(xs, hist, width=ws, color=COLORS[o], label=f"Outcome {o}",
                      edgecolor="black", linewidth=0.4)
        labels = [str(h) if h else "" for h in hist]
        ax.bar_label(bars, labels=labels, padding=2, fontsize=7 if many else 8,
                     rotation=90 if many else 0)
    ax.set_xticks(edges)
    ax.set_xticklabels([_fmt(e) for e in edges], rotation=90 if many else 0, fontsize=8)
    ax.set_xlim(edges[0], edges[-1])
    top = max([1, *by["0"]["hist"], *by["1"]["hist"]])
    ax.set_ylim(0, top * 1.18)
    ax.set_xlabel(feature)
    ax.set_ylabel("count")
    ax.legend(loc="upper right")
    ax.set_title(
        f"{feature} — Outcome 0: n={by['0']['count']} (missing {by['0']['missing']}), "
        f"Outcome 1: n={by['1']['count']} (missing {by['1']['missing']})",
        fontsize=10,
    )
    ax.grid(axis="y", alpha=0.3)
    # Margins in inches for the labels drawn here (tight_layout would draw the figure once
    # more to measure them: about half the time of a figure).
    fig.subplots_adjust(left=0.75 / width, right=1 - 0.2 / width, top=1 - 0.4 / height,
                        bottom=(0.95 if many else 0.65) / height)

    path = Path(path)
    with atomic_file(path, "wb") as fh:
        fig.savefig(fh, format="png")
    return path


def write_figures(features: Mapping[str, Any], out_dir: str | Path) -> list[Path]:
    """One ``<out_dir>/<feature>.png`` per feature of ``aggregate()`` output."""
    out_dir = Path(out_dir)
    return [plot_feature(f, agg, out_dir / f"{f}.png") for f, agg in features.items()]
