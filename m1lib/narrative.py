"""Sentences in the paper's style, filled from the results registry, and the report's index page.

Only formatting lives here: every number comes from the registry that
:mod:`m1lib.analyses` computed.
"""
from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd

from .results import format_percent, round_half_up


def pct(x: float) -> str:
    """A fraction as the paper prints it, halves rounded up: ``0.625 -> '63%'``."""
    return "n/a" if x is None or x != x else format_percent(x)


def p_text(p: float) -> str:
    """``P < .001`` or ``P = .024`` as in the paper."""
    if p is None or p != p:
        return "P = n/a"
    if p < 0.001:
        return "P < .001"
    return ("P = " + f"{p:.3f}".lstrip("0")) if p < 1 else "P = 1"


def r_text(r: float) -> str:
    return "r = n/a" if r is None or r != r else f"r = {r:.2f}"


def _g(reg: dict, key: str):
    v = reg.get(key)
    return float("nan") if v is None else v


def sentences(reg: dict[str, float]) -> dict[str, str]:
    """The report's findings, one paragraph per result, with numbers from ``reg``.

    A paragraph whose keys are absent from the registry (a notebook not run) is left out.
    """
    out = {}
    g = lambda k: _g(reg, k)  # noqa: E731
    if "cohort.n_als" in reg:
        out["cohort"] = (
            f"{int(g('cohort.n_als_enrolled'))} patients with ALS and {int(g('cohort.n_hs_enrolled'))} healthy "
            f"subjects were enrolled; {_n(g('cohort.n_als_excluded'), 'patient')} and "
            f"{_n(g('cohort.n_hs_excluded'), 'healthy subject')} were excluded. In the remaining "
            f"{int(g('cohort.n_als'))} patients, ALSFRS-R was {g('cohort.analysed.als.alsfrs_r.mean'):.0f} ± "
            f"{g('cohort.analysed.als.alsfrs_r.sd'):.0f}, UMN score {g('cohort.analysed.als.umn_total.mean'):.0f} ± {g('cohort.analysed.als.umn_total.sd'):.0f}, "
            f"disease duration {g('cohort.analysed.als.disease_duration_months.mean'):.0f} ± "
            f"{g('cohort.analysed.als.disease_duration_months.sd'):.0f} months and DPR {g('cohort.analysed.als.dpr.mean'):.2f} ± "
            f"{g('cohort.analysed.als.dpr.sd'):.2f}.")
    if "visual_reading.reader1.sensitivity" in reg:
        parts = []
        for r in ("reader1", "reader2"):
            k = f"visual_reading.{r}"
            parts.append(
                f"Reader {r[-1]} called {int(g(k + '.tp'))} of {int(g(k + '.tp') + g(k + '.fn'))} patients and "
                f"{int(g(k + '.fp'))} of {int(g(k + '.fp') + g(k + '.tn'))} healthy subjects abnormal: sensitivity, "
                f"specificity, PPV, NPV and accuracy were {pct(g(k + '.sensitivity'))}, "
                f"{pct(g(k + '.specificity'))}, {pct(g(k + '.ppv'))}, {pct(g(k + '.npv'))} and "
                f"{pct(g(k + '.accuracy'))}.")
        parts.append(f"Interobserver agreement: Cohen κ = {g('visual_reading.kappa'):.2f} "
                     f"(95% CI {g('visual_reading.kappa_ci_low'):.2f}–{g('visual_reading.kappa_ci_high'):.2f}).")
        out["visual_reading"] = " ".join(parts)
    if "correct_vs_missed.reader1.umn_total.p_value" in reg:
        out["correct_vs_missed"] = (
            "The UMN score was higher in correctly diagnosed than in misdiagnosed patients ("
            f"reader 1: {p_text(g('correct_vs_missed.reader1.umn_total.p_value'))}; reader 2: "
            f"{p_text(g('correct_vs_missed.reader2.umn_total.p_value'))}), and so was the DPR (reader 1: "
            f"{p_text(g('correct_vs_missed.reader1.dpr.p_value'))}; reader 2: "
            f"{p_text(g('correct_vs_missed.reader2.dpr.p_value'))}).")
    if "group.thickness_mm.p_value" in reg:
        out["group"] = (
            f"Deep-layer thickness was lower in patients (mean {g('group.thickness_mm.mean_als'):.2f} mm) than in "
            f"healthy subjects ({g('group.thickness_mm.mean_hs'):.2f} mm; Mann-Whitney "
            f"{p_text(g('group.thickness_mm.p_value'))}); signal intensity "
            f"{'did not differ' if g('group.intensity.p_value') >= 0.05 else 'differed'} between the groups "
            f"({p_text(g('group.intensity.p_value'))}).")
    if "corr.thickness_mm.umn_limb.rho" in reg:
        c = lambda m, v: f"{r_text(g(f'corr.{m}.{v}.rho'))}; {p_text(g(f'corr.{m}.{v}.p_value'))}"  # noqa: E731
        out["correlations"] = (
            f"Thickness correlated with the UMN score ({c('thickness_mm', 'umn_limb')}), DPR "
            f"({c('thickness_mm', 'dpr')}) and ALSFRS-R ({c('thickness_mm', 'alsfrs_r')}). Signal intensity "
            f"correlated with the UMN score ({c('intensity', 'umn_limb')}), DPR ({c('intensity', 'dpr')}) "
            f"and ALSFRS-R ({c('intensity', 'alsfrs_r')}). Treating limbs of one patient as clustered, the "
            f"UMN correlations have cluster-permutation P {p_text(g('corr.thickness_mm.umn_limb.cluster_p_value'))[2:]} "
            f"(thickness) and {p_text(g('corr.intensity.umn_limb.cluster_p_value'))[2:]} (intensity).")
    if "dpr_subgroups.intensity.p_value" in reg:
        out["dpr_subgroups"] = (
            f"Signal intensity in faster progressors (DPR above the median, {g('dpr_subgroups.dpr_median'):.2f}) was "
            f"{'lower' if g('dpr_subgroups.intensity.median_faster') < g('dpr_subgroups.intensity.median_slower') else 'not lower'} "
            f"than in slower ones ({p_text(g('dpr_subgroups.intensity.p_value'))}); thickness "
            f"{'did not differ' if g('dpr_subgroups.thickness_mm.p_value') >= 0.05 else 'differed'} "
            f"({p_text(g('dpr_subgroups.thickness_mm.p_value'))}).")
    if "measurement.profile_thickness_mm.mae" in reg:
        m = lambda q, k: g(f"measurement.{q}.{k}")  # noqa: E731
        out["measurement"] = (
            f"Against the phantom's ground truth ({int(m('profile_thickness_mm', 'n'))} ROIs of analysed "
            f"participants), the rater-independent profile thickness had a mean absolute error of "
            f"{m('profile_thickness_mm', 'mae'):.3f} mm (bias {m('profile_thickness_mm', 'bias'):+.3f} mm; "
            f"{int(m('profile_thickness_mm', 'n_failed'))} failed fits) and the caliper, placed by a simulated "
            f"rater, {m('thickness_mm', 'mae'):.3f} mm; normalized intensity was within 2% in "
            f"{pct(m('intensity', 'within_tolerance'))} of ROIs (largest error {pct(m('intensity', 'max_abs'))}) "
            f"and R2* within 5% in {pct(m('r2star_s', 'within_tolerance'))}.")
    if "qc.n_flagged" in reg:
        extra = (f"; the flags match the phantom's motion truth for {pct(g('qc.flag_matches_truth'))} of them"
                 if "qc.flag_matches_truth" in reg else "")
        out["motion_qc"] = (
            f"Motion QC flagged {int(g('qc.n_flagged'))} of {int(g('qc.n_measured'))} measured participants, "
            f"{int(g('qc.n_flagged_excluded'))} of the {int(g('qc.n_excluded'))} excluded for motion{extra}.")
    return out


_TITLES = {"cohort": "Cohort", "visual_reading": "Visual reading",
           "correct_vs_missed": "Correctly vs wrongly diagnosed", "group": "ALS vs healthy subjects",
           "correlations": "Correlations", "dpr_subgroups": "DPR subgroups",
           "measurement": "Measurement accuracy", "motion_qc": "Motion QC"}


def _n(count: float, noun: str) -> str:
    """``1 healthy subject``, ``2 healthy subjects``."""
    return f"{int(count)} {noun}{'' if int(count) == 1 else 's'}"


_CSS = """
body{font-family:DejaVu Sans,Arial,sans-serif;max-width:1100px;margin:2em auto;color:#222;line-height:1.45}
h1{font-size:1.5em} h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
.thumbs{display:flex;flex-wrap:wrap;gap:14px} .thumbs figure{margin:0;width:250px;font-size:.8em}
.thumbs img{width:250px;border:1px solid #ddd} table{border-collapse:collapse;font-size:.85em}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:left} .bad{color:#b2182b} code{font-size:.9em}
"""


def write_index(report: Path, registry: dict[str, float], provenance: dict) -> Path:
    """Write ``index.html`` linking notebooks, figures, tables, results and provenance."""
    report = Path(report)
    esc = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>m1lib report</title>"
             f"<style>{_CSS}</style></head><body>",
             "<h1>Deep layers of M1 on 7T GRE — report</h1>",
             f"<p>Dataset <code>{esc(str(provenance.get('dataset')))}</code> "
             f"(measurements: {esc(str(provenance.get('measurement_source')))}); m1lib "
             f"{esc(str(provenance.get('m1lib')))}, commit <code>{esc(str(provenance.get('git', {}).get('commit')))}"
             f"</code>{' (dirty)' if provenance.get('git', {}).get('dirty') else ''}. Reproduces Cosottini et al., "
             "AJNR 2016;37:455–61.</p>", "<h2>Results</h2>"]
    for name, text in sentences(registry).items():
        parts.append(f"<p><b>{esc(_TITLES.get(name, name))}.</b> {esc(text)}</p>")
    parts.append("<h2>Notebooks</h2><ul>")
    for nb in sorted(report.glob("[0-9][0-9]_*.html")):
        parts.append(f"<li><a href='{esc(nb.name)}'>{esc(nb.stem)}</a> "
                     f"(<a href='notebooks/{esc(nb.stem)}.ipynb'>executed notebook</a>)</li>")
    parts.append("</ul><h2>Figures</h2><div class='thumbs'>")
    for png in sorted((report / "figures").glob("*.png")):
        pdf = png.with_suffix(".pdf")
        link = f" · <a href='figures/{esc(pdf.name)}'>PDF</a>" if pdf.is_file() else ""
        parts.append(f"<figure><a href='figures/{esc(png.name)}'><img src='figures/{esc(png.name)}' "
                     f"alt='{esc(png.stem)}'></a><figcaption>{esc(png.stem)}{link}</figcaption></figure>")
    parts.append("</div><h2>Tables</h2><ul>")
    for csv in sorted((report / "tables").glob("*.csv")):
        parts.append(f"<li><a href='tables/{esc(csv.name)}'>{esc(csv.stem)}</a></li>")
    parts.append("</ul><h2>Paper vs this run</h2>")
    comp = report / "paper_comparison.csv"
    if comp.is_file():
        df = pd.read_csv(comp, keep_default_na=False, dtype=str)
        parts.append(df[["result", "paper", "this_run_display", "registry_key"]]
                     .rename(columns={"this_run_display": "this run"}).to_html(index=False, escape=True))
    parts.append("<h2>Files</h2><ul><li><a href='results.json'>results.json</a> (every number, full precision)"
                 "</li><li><a href='paper_comparison.csv'>paper_comparison.csv</a></li>"
                 "<li><a href='provenance.json'>provenance.json</a></li></ul></body></html>\n")
    path = report / "index.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


_COHORT_LABELS = {
    "n": "n", "excluded": "Excluded (motion)", "sex": "Sex", "age": "Age (y)", "alsfrs_r": "ALSFRS-R (0–48)",
    "umn_total": "UMN score (0–33)", "mrc": "MRC (0–130)", "disease_duration_months": "Disease duration (mo)",
    "dpr": "DPR (points/mo)", "cmct_ms": "CMCT (ms)", "cortical_latency_ms": "Cortical latency (ms)",
    "cortical_silent_period_ms": "Cortical silent period (ms)", "frap": "FRAP", "aopp": "AOPP", "thiols": "Thiols",
}


def cohort_display(cohort: pd.DataFrame) -> pd.DataFrame:
    """The cohort table laid out as the paper's on-line Table 1 (mean ± SD; counts).

    Parameters
    ----------
    cohort : DataFrame
        :func:`m1lib.analyses.cohort_table`.

    Returns
    -------
    DataFrame
        One row per variable; columns ``ALS enrolled``, ``HS enrolled``, ``ALS analysed``,
        ``HS analysed`` as display strings.
    """
    cells: dict[tuple[str, str], str] = {}
    order: list[str] = []
    for r in cohort.itertuples(index=False):
        label = _COHORT_LABELS.get(r.variable, r.variable)
        if r.variable == "sex":
            label = f"Sex, {'women' if r.level == 'F' else 'men'}"
        col = f"{r.group} {r.subset}"
        if r.variable in ("n", "excluded", "sex"):
            text = f"{int(r.count)}"
        else:
            digits = 2 if r.variable in ("dpr", "frap") else 0
            text = f"{round_half_up(r.mean, digits):.{digits}f} ± {round_half_up(r.sd, digits):.{digits}f}"
        cells[(label, col)] = text
        if label not in order:
            order.append(label)
    cols = ["ALS enrolled", "HS enrolled", "ALS analysed", "HS analysed"]
    return pd.DataFrame([[cells.get((lab, c), "") for c in cols] for lab in order],
                        index=pd.Index(order, name="variable"), columns=cols).reset_index()


def reader_table(accuracy: pd.DataFrame, agreement: pd.DataFrame) -> pd.DataFrame:
    """The paper's reader results as printed: counts and percentages (halves rounded up).

    Parameters
    ----------
    accuracy : DataFrame
        :func:`m1lib.analyses.visual_reading`.
    agreement : DataFrame
        :func:`m1lib.analyses.reader_agreement`.

    Returns
    -------
    DataFrame
        One row per reader: positive ALS, positive HS, sensitivity, specificity, PPV,
        NPV, accuracy (as ``67%``), with 95% CI strings, and Cohen's kappa.
    """
    rows = []
    kappa = agreement["kappa"].iloc[0] if len(agreement) == 1 else float("nan")
    for reader, g in accuracy.groupby("reader", sort=True):
        s = g.set_index("statistic")
        row = {"reader": reader,
               "positive ALS": f"{int(s.loc['tp', 'numerator'])} of {int(s.loc['tp', 'numerator'] + s.loc['fn', 'numerator'])}",
               "positive HS": f"{int(s.loc['fp', 'numerator'])} of {int(s.loc['fp', 'numerator'] + s.loc['tn', 'numerator'])}"}
        for stat, lab in (("sensitivity", "sensitivity"), ("specificity", "specificity"), ("ppv", "PPV"),
                          ("npv", "NPV"), ("accuracy", "accuracy")):
            row[lab] = pct(s.loc[stat, "estimate"])
            row[f"{lab} 95% CI"] = f"{pct(s.loc[stat, 'ci_low'])}–{pct(s.loc[stat, 'ci_high'])}"
        row["Cohen kappa"] = f"{kappa:.2f}"
        rows.append(row)
    return pd.DataFrame(rows)
