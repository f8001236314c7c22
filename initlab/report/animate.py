"""training.gif: the interactive report's story as an animation, for places where a page can't be
opened (a README, a slide). Drawn with matplotlib (Agg, no pyplot) and its Pillow writer.

2-D binary data: one decision-boundary panel per variant (the article's figure 1, from
`boundary_frames`) above the loss curves with a cursor at the frame's step. Other data: per
variant, the activation histograms of every hidden layer (the article's figure 2) above the loss.
At most MAX_FRAMES frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.animation import PillowWriter
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from initlab.report.interactive import _even, _hist_u8
from initlab.report.plots import labels_of, palette
from initlab.results.folder import Result, loss_steps
from initlab.results.layers import MAX_LAYERS, hist_layer_numbers

MAX_FRAMES = 60
FPS = 6
DPI = 72


def _loss_axis(ax, result: Result, colours: dict[str, str]):
    a, labels = result.arrays, labels_of(result)
    loss = np.asarray(a["loss"], dtype=float)
    x = loss_steps(result)[0].astype(float)
    mv = np.asarray(a["member_variant"])
    for v, label in enumerate(labels):
        part = loss[:, mv == v]
        ok = np.isfinite(part)
        n = ok.sum(axis=1)
        mean = np.where(ok, part, 0).sum(axis=1) / np.maximum(n, 1)  # over finite seeds
        mean = np.where((n > 0) & (mean > 0), mean, np.nan)
        ax.plot(x, mean, color=colours[label], lw=1.5, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("step", fontsize=8)
    ax.set_ylabel("loss (mean)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, ncol=min(len(labels), 4), loc="upper right")
    return ax.axvline(0, color="black", ls="--", lw=1)


def write_gif(result: Result, path: str | Path) -> Path | None:
    """Write the animation to `path` (a .gif); None when the result has nothing to animate."""
    a, labels = result.arrays, labels_of(result)
    if not labels or "loss" not in a or "stat_steps" not in a:
        return None
    colours = palette(labels)
    V = len(labels)
    two_d = "boundary_frames" in a
    n_cols = min(V, 4)
    n_rows = -(-V // n_cols)
    fig = Figure(figsize=(2.3 * n_cols + 0.4, 2.3 * n_rows + 2.0), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(n_rows + 1, n_cols, height_ratios=[*([1.0] * n_rows), 0.9])
    panels = [fig.add_subplot(grid[v // n_cols, v % n_cols]) for v in range(V)]
    cursor = _loss_axis(fig.add_subplot(grid[n_rows, :]), result, colours)
    title = fig.suptitle("", fontsize=9)

    if two_d:
        frames = np.asarray(a["boundary_frames"])  # (F, V, G, G) uint8, 255 = not finite
        steps = np.asarray(a["boundary_steps"])
        g = np.asarray(a["boundary_frames_grid"], dtype=float)
        extent = (g[0], g[-1], g[0], g[-1])
        x, y = np.asarray(a["data_x"], float), np.asarray(a["data_y"], float) > 0.5
        import matplotlib

        cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="0.75")
        images = []
        for v, ax in enumerate(panels):
            im = ax.imshow(np.zeros((len(g), len(g))), extent=extent, origin="lower", cmap=cmap,
                           vmin=0, vmax=1, interpolation="bilinear")
            ax.scatter(x[y, 0], x[y, 1], marker="^", s=10, c="white", edgecolors="black",
                       lw=0.5)
            ax.scatter(x[~y, 0], x[~y, 1], marker="o", s=8, c="black", edgecolors="white",
                       lw=0.4)
            ax.set_title(labels[v], fontsize=9, color=colours[labels[v]])
            ax.set_xticks([])
            ax.set_yticks([])
            images.append(im)
        order = _even(len(steps), MAX_FRAMES)

        def draw(k: int) -> list:
            f = order[k]
            for v, im in enumerate(images):
                q = frames[f, v].astype(float)
                im.set_data(np.ma.masked_where(q == 255, q / 254))
            cursor.set_xdata([steps[f], steps[f]])
            title.set_text(f"{result.summary.get('name', '')}: step {int(steps[f])}")
            return [*images, cursor, title]
    else:
        stat_steps = np.asarray(a["stat_steps"])
        numbers = hist_layer_numbers(a)  # the recorded layers (1-based)
        L = int(np.asarray(a["stat_act_var"]).shape[-1]) if "stat_act_var" in a else len(numbers)
        at = [i for i, n in enumerate(numbers) if n < L] or [0]  # hidden layers
        at = [at[i] for i in _even(len(at), MAX_LAYERS)]
        layers = [numbers[i] - 1 for i in at]
        hist = _hist_u8(np.asarray(a["hist_h"])[:, :, at], np.asarray(a["member_variant"]),
                        V).astype(float) / 255
        edges = np.asarray(a["hist_h_edges"], dtype=float)
        centres = (edges[:-1] + edges[1:]) / 2
        lines = []
        for v, ax in enumerate(panels):
            ax.set_title(labels[v], fontsize=9, color=colours[labels[v]])
            ax.set(xlim=(edges[0], edges[-1]), ylim=(0, 1.05))
            ax.tick_params(labelsize=7)
            ax.set_yticks([])
            row = [ax.plot(centres, hist[0, v, i], lw=1.2, label=f"h{layers[i] + 1}")[0]
                   for i in range(len(layers))]
            lines.append(row)
        panels[0].legend(fontsize=6, loc="upper left")
        order = _even(len(stat_steps), MAX_FRAMES)

        def draw(k: int) -> list:
            r = order[k]
            for v, row in enumerate(lines):
                for i, line in enumerate(row):
                    line.set_ydata(hist[r, v, i])
            cursor.set_xdata([stat_steps[r], stat_steps[r]])
            title.set_text(f"{result.summary.get('name', '')}: activations, step "
                           f"{int(stat_steps[r])}")
            return [*(ln for row in lines for ln in row), cursor, title]

    draw(0)
    fig.canvas.draw()  # lay out once with the first frame, then keep that layout (much faster)
    fig.set_layout_engine("none")
    path = Path(path)
    writer = PillowWriter(fps=FPS)
    with writer.saving(fig, str(path), DPI):  # one draw per frame (FuncAnimation draws three)
        for k in range(len(order)):
            draw(k)
            writer.grab_frame()
    return path
