"""The replica: a synthetic cohort shaped like Cosottini et al. 2016, written as a dataset.

The study's data are private, so the default dataset the report runs on is a
replica generated here. It follows the data contract (``docs/data.md``) exactly —
participants, readers' calls, two-echo GRE images, Slicer annotations — and adds
the ground truth (``derivatives/truth/``) that lets the measurement be proved right.

One module per step:

* cohort calibration: :mod:`~m1lib.replica.targets` (the paper's numbers, cohort
  sizes), :mod:`~m1lib.replica.rank_stats` (Iman-Conover, ranks, U tests),
  :mod:`~m1lib.replica.calibration` (the rank-swap calibration, areas, UMN
  profiles) and :mod:`~m1lib.replica.tables` (``make_cohort``: participants,
  reads, truth);
* anatomy: :mod:`~m1lib.replica.anatomy` (the MNI152 2009a central region, white
  and pial surfaces, the Penfield areas located on it) and
  :mod:`~m1lib.replica.cohort` (the calibrated cohort placed on it);
  :mod:`~m1lib.replica.flat` the legacy concentric-arc geometry;
* rendering: :mod:`~m1lib.replica.acquisition` (an MR acquisition that is not the
  fitter's model) and :mod:`~m1lib.replica.phantom` (the flat phantom, the
  fitter's model: a test fixture);
* writing: :mod:`~m1lib.replica.files`, :mod:`~m1lib.replica.writer` and
  :mod:`~m1lib.replica.generate` (``generate`` and ``m1lib synth``).

Only this subpackage and the paper-vs-run table read ``m1lib/data/paper_values.yaml``.
"""
