"""The replica built on real cortical folding (issue 13).

Steps, one module each: :mod:`~m1lib.replica.anatomy` (the central region of the
MNI152 2009a template, white and pial surfaces as signed distance fields, the
Penfield areas located on it and the truth defined on it) and
:mod:`~m1lib.replica.acquisition` (an MR acquisition that is not the fitter's
model: fine-grid rendering, through-slice integration, k-space resolution,
receive bias, g-factor noise, motion as shifted phase-encode lines).
"""
