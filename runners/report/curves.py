"""Plots of curves (a metric against its step, e.g. OSU latency against message size):
one PNG per metric and one PDF with all of them."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path


def plot_curves(points: list[tuple[str, float, int]], out_dir: Path, title: str,
                units: dict[str, str] | None = None, xlabel: str = "step") -> list[Path]:
    """Draw each metric's median curve; return the PNG files and the PDF.

    Parameters
    ----------
    points : list of (name, value, step)
        Median values per step (from :func:`runners.analysis.curves.step_points`).
    out_dir : Path
        Where the files go.
    title : str
        The PDF's title.
    units : dict, optional
        ``{name: unit}`` for the y axes.
    xlabel : str
        What the step is.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for name, value, step in points:
        series[name].append((step, value))
    out_dir.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []
    pdf_path = out_dir / "summary.pdf"
    with PdfPages(pdf_path) as pdf:
        for name, pts in sorted(series.items()):
            pts.sort()
            fig, ax = plt.subplots(figsize=(7, 4.5))
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            ax.plot(xs, ys, marker="o")
            if min(xs) > 0 and max(xs) / max(min(xs), 1) >= 64:
                ax.set_xscale("log", base=2)
            if min(ys) > 0 and max(ys) / min(ys) >= 100:
                ax.set_yscale("log")
            ax.set_xlabel(xlabel)
            unit = (units or {}).get(name, "")
            ax.set_ylabel(f"{name} ({unit})" if unit else name)
            ax.set_title(f"{title}: {name}")
            ax.grid(True, alpha=0.3)
            fig.tight_layout()
            png = out_dir / f"{name}.png"
            fig.savefig(png, dpi=100)
            pdf.savefig(fig)
            plt.close(fig)
            made.append(png)
    made.append(pdf_path)
    return made
