"""Fig 1 of the paper, on the folded replica: the precentral gyrus and hand knob, healthy vs ALS.

Run as ``.venv/bin/python scripts/replica_fig1.py [--seed N] [--out DIR]``.

Picks, from the default calibrated cohort, the analysed healthy subject with the
thickest deep layer in the right hand area and the analysed patient with the
thinnest (ties broken by the darker), places them on the MNI152 folding
(:func:`m1lib.replica.cohort.build_cohort`), renders both with the replica's
acquisition (noise, bias, veins; no motion) and writes, into ``--out``
(default ``benchmarks/results``):

- ``replica_preview_fig1.png``: per participant, the right central region on the
  hand-area slice (56 x 56 mm: the precentral gyrus from the midline to the hand knob) and a 12 mm zoom
  on the hand area with the true deep-layer edges (cyan: outer, yellow: inner)
  and the simulated rater's caliper (red);
- ``replica_preview_areas.png``: 16 mm crops of the four Penfield areas (right
  hemisphere) of both participants, with the same marks.

Echo 2 (the one the paper's intensities are read on), grey scale from the 1st to
the 99.5th percentile of each slice. Image x runs from the participant's left to
right hemisphere as radiologists do not: this is MNI/RAS, right on the right.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from m1lib.replica import acquisition as Q  # noqa: E402
from m1lib.replica.anatomy import cached_anatomy  # noqa: E402
from m1lib.replica.cohort import build_cohort  # noqa: E402
from m1lib.replica.tables import make_cohort  # noqa: E402
from m1lib.replica.targets import DEFAULT_SEED  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
AREAS = ("foot", "leg", "hand", "face")


def pick(seed: int) -> list[str]:
    """The healthy subject with the thickest and the patient with the thinnest right hand area."""
    c = make_cohort(seed)
    ta = c["truth_areas"]
    ok = set(c["participants"].loc[~c["participants"]["excluded"], "participant_id"])
    hand = ta[(ta["area"] == "hand") & (ta["hemisphere"] == "R") & ta["participant_id"].isin(ok)]
    hs = hand[hand["group"] == "HS"].sort_values(["thickness_mm", "intensity"], ascending=False)
    als = hand[hand["group"] == "ALS"].sort_values(["thickness_mm", "intensity"])
    return [hs["participant_id"].iloc[0], als["participant_id"].iloc[0]]


def _show(ax, img, acq, k, centre, half_mm, rows=()):
    x, y, _ = acq.axes()
    sl = img[1, k]
    lo, hi = np.percentile(sl, [1, 99.5])
    ax.imshow(sl, origin="lower", cmap="gray", vmin=lo, vmax=hi,
              extent=[x[0] - acq.voxel_mm / 2, x[-1] + acq.voxel_mm / 2,
                      y[0] - acq.voxel_mm / 2, y[-1] + acq.voxel_mm / 2], interpolation="nearest")
    for row in rows:
        ax.plot([row["caliper_outer_x"], row["caliper_inner_x"]],
                [row["caliper_outer_y"], row["caliper_inner_y"]], "r-", lw=1.5)
        ax.plot(row["edge_outer_x"], row["edge_outer_y"], "c.", ms=6)
        ax.plot(row["edge_inner_x"], row["edge_inner_y"], "y.", ms=6)
    ax.set_xlim(centre[0] - half_mm, centre[0] + half_mm)
    ax.set_ylim(centre[1] - half_mm, centre[1] + half_mm)
    ax.set_xticks([])
    ax.set_yticks([])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    ids = pick(a.seed)
    anat = cached_anatomy()
    cohort = build_cohort(anat, seed=a.seed, participants=ids)
    acq = cohort.acquisition
    imgs = [Q.render_subject(anat, acq, spec, np.random.default_rng([a.seed, 1414, i]))
            for i, spec in enumerate(cohort.specs)]
    ta = cohort.truth_areas

    fig, axes = plt.subplots(2, 2, figsize=(11, 11), dpi=90)
    for r, (pid, img) in enumerate(zip(ids, imgs)):
        row = ta[(ta["participant_id"] == pid) & (ta["hemisphere"] == "R")
                 & (ta["area"] == "hand")].iloc[0]
        k = int(row["slice_index"])
        group = row["group"]
        _show(axes[r, 0], img, acq, k, (32.0, -20.0), 28.0, [row])
        axes[r, 0].set_title(f"{group} {pid}: right central region, slice {k} "
                             f"(z = {row['edge_inner_z']:.2f} mm), 56 mm", fontsize=9)
        _show(axes[r, 1], img, acq, k, (row["midpoint_x"], row["midpoint_y"]), 6.0, [row])
        axes[r, 1].set_title(f"hand area, 12 mm: deep layer {row['thickness_3d_mm']:.2f} mm "
                             f"(3-D), {row['thickness_plane_mm']:.2f} mm in plane; "
                             f"intensity {row['intensity']:.2f}", fontsize=9)
    fig.suptitle("folded replica, echo 2 (MNI/RAS: anterior up, right hemisphere, lateral to the "
                 "right); red: the rater's caliper; cyan/yellow: true outer/inner edge of the "
                 "deep layer", fontsize=9)
    fig.tight_layout()
    fig.savefig(a.out / "replica_preview_fig1.png", metadata={"Software": None})
    plt.close(fig)

    fig, axes = plt.subplots(2, 4, figsize=(16, 8.8), dpi=80)
    for r, (pid, img) in enumerate(zip(ids, imgs)):
        for c, area in enumerate(AREAS):
            row = ta[(ta["participant_id"] == pid) & (ta["hemisphere"] == "R")
                     & (ta["area"] == area)].iloc[0]
            k = int(row["slice_index"])
            _show(axes[r, c], img, acq, k, (row["midpoint_x"], row["midpoint_y"]), 8.0, [row])
            axes[r, c].set_title(f"{row['group']} R {area} (slice {k}): "
                                 f"{row['thickness_plane_mm']:.2f} mm in plane, "
                                 f"obliquity {row['obliquity_deg']:.0f} deg", fontsize=8)
    fig.suptitle("folded replica, echo 2, 16 mm crops of the Penfield areas; top: healthy, "
                 "bottom: ALS", fontsize=9)
    fig.tight_layout(h_pad=2.0)
    fig.savefig(a.out / "replica_preview_areas.png", metadata={"Software": None})
    plt.close(fig)
    print("\n".join(str(a.out / n) for n in ("replica_preview_fig1.png", "replica_preview_areas.png")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
