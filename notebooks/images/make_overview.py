"""Draw overview.png, the picture at the top of the README (run from the repo root).

    python notebooks/images/make_overview.py
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.cbook as cbook  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cnnlab.signal import correlate2d  # noqa: E402


def main():
    with cbook.get_sample_data("grace_hopper.jpg") as file:
        photo = plt.imread(file).mean(axis=2)[::3, ::3] / 255.0
    sobel_x = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=float)
    edges_x = correlate2d(photo, sobel_x, mode="same")
    edges_y = correlate2d(photo, sobel_x.T, mode="same")
    panels = [
        (photo, "input image", "gray"),
        (sobel_x, "3×3 kernel (Sobel x)", "RdBu_r"),
        (edges_x, "feature map: input ⋆ kernel", "RdBu_r"),
        (np.hypot(edges_x, edges_y), "edge strength", "magma"),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.4))
    for ax, (image, title, cmap) in zip(axes, panels):
        limit = np.abs(image).max()
        vmin = -limit if cmap == "RdBu_r" else None
        ax.imshow(image, cmap=cmap, vmin=vmin, vmax=limit if vmin is not None else None)
        ax.set_title(title)
        ax.set_axis_off()
    for x, y, v in [(i, j, sobel_x[j, i]) for i in range(3) for j in range(3)]:
        axes[1].text(x, y, f"{v:+.0f}" if v else "0", ha="center", va="center", fontsize=14)
    fig.suptitle("cnnlab: a convolution layer, from scratch", fontsize=14)
    fig.tight_layout()
    out = Path(__file__).with_name("overview.png")
    fig.savefig(out, dpi=80)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
