"""Words from the findings: the report's sentences and its index page.

Every sentence is generated from :func:`m1lib.findings.findings`, which decides
directions and significance from the registry once; here they are only put into
words ("lower in ALS than in HS" when it is, "did not differ significantly" when
P >= alpha), with the numbers beside them. Every count quoted is the n the analysis
actually used.
"""
from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Mapping

import pandas as pd

from m1lib.findings import COMPUTED, alpha_of, findings, label
from m1lib.formats import _signed, ci_text, p_text, pct, r_text, rho_text
from m1lib.results import key_part
from m1lib.result_tables import cohort_display, reader_table

__all__ = ["pct", "p_text", "r_text", "rho_text", "ci_text", "sentences", "write_index",
           "MEASURE_NAMES", "VARIABLE_NAMES", "FIGURE_CAPTIONS", "replica_banner",
           "unmeasured_notice", "data_labels", "cohort_display", "reader_table"]

#: How the measured quantities are named in sentences: (name, unit, decimals).
MEASURE_NAMES: dict[str, tuple[str, str, int]] = {
    "thickness_mm": ("deep-layer thickness", " mm", 2),
    "intensity": ("deep-layer signal intensity", "", 3),
    "r2star_s": ("deep-layer R2*", " s⁻¹", 1),
}
#: How clinical variables are named in sentences.
VARIABLE_NAMES: dict[str, str] = {
    "umn_limb": "the limb UMN score", "umn_total": "the UMN score", "dpr": "DPR",
    "alsfrs_r": "ALSFRS-R", "mrc": "MRC", "disease_duration_months": "disease duration",
    "cmct_ms": "CMCT", "cortical_latency_ms": "cortical latency",
    "cortical_silent_period_ms": "the cortical silent period", "frap": "FRAP", "aopp": "AOPP",
    "thiols": "thiols",
}


def _n(count: float, noun: str) -> str:
    """``1 healthy subject``, ``2 healthy subjects``."""
    return f"{int(count)} {noun}{'' if int(count) == 1 else 's'}"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _g(reg: Mapping, key: str) -> float:
    v = reg.get(key)
    return math.nan if v is None else float(v)


# ------------------------------------------------------------------ paragraphs
def _cohort(reg: Mapping, labels) -> str | None:
    groups = sorted({k.split(".")[1][2:-len("_enrolled")] for k in reg
                     if k.startswith("cohort.n_") and k.endswith("_enrolled")})
    if not groups:
        return None
    patients = [g for g in groups if f"cohort.analysed.{g}.alsfrs_r.mean" in reg]
    groups = patients + [g for g in groups if g not in patients]
    name = lambda g: label(g, labels)  # noqa: E731
    enrolled = " and ".join(f"{int(_g(reg, f'cohort.n_{g}_enrolled'))} {name(g)}" for g in groups)
    excluded = " and ".join(f"{int(_g(reg, f'cohort.n_{g}_excluded'))} {name(g)}" for g in groups)
    analysed = " and ".join(f"{int(_g(reg, f'cohort.n_{g}'))} {name(g)}" for g in groups)
    text = f"Enrolled: {enrolled}; excluded: {excluded}; analysed: {analysed}."
    if patients:
        p = patients[0]
        parts = []
        for var, what, d in (("alsfrs_r", "ALSFRS-R", 0), ("umn_total", "UMN score", 0),
                             ("disease_duration_months", "disease duration (months)", 0), ("dpr", "DPR", 2)):
            m, s = _g(reg, f"cohort.analysed.{p}.{var}.mean"), _g(reg, f"cohort.analysed.{p}.{var}.sd")
            if m == m:
                parts.append(f"{what} {m:.{d}f} ± {s:.{d}f}")
        if parts:
            text += (f" In the {int(_g(reg, f'cohort.n_{p}'))} analysed {name(p)} (mean ± SD): "
                     + ", ".join(parts) + ".")
    return text


def _reading(reg: Mapping, f: pd.DataFrame, labels, level: float) -> str | None:
    readers = sorted({k.split(".")[1] for k in reg if k.startswith("visual_reading.") and k.endswith(".sensitivity")})
    if not readers:
        return None
    parts = []
    for r in readers:
        k = f"visual_reading.{r}"
        tp, fn, fp, tn = (int(_g(reg, f"{k}.{s}")) for s in ("tp", "fn", "fp", "tn"))
        stats = ", ".join(f"{name} {pct(_g(reg, f'{k}.{s}'))} ({pct(_g(reg, f'{k}.{s}_ci_low'))}–"
                          f"{pct(_g(reg, f'{k}.{s}_ci_high'))})"
                          for s, name in (("sensitivity", "sensitivity"), ("specificity", "specificity"),
                                          ("ppv", "PPV"), ("npv", "NPV"), ("accuracy", "accuracy")))
        parts.append(f"{label(r, labels)} called ALS in {tp} of {tp + fn} patients and {fp} of {fp + tn} "
                     f"comparison subjects: {stats}.")
    for row in f[f["family"] == "agreement"].itertuples(index=False):
        if row.status != COMPUTED:
            parts.append(f"Agreement between readers: not computable ({row.reason}).")
        elif row.effect == "fleiss_kappa":
            parts.append(f"Fleiss κ across all {int(row.n_a)} readers = {_signed(row.estimate, 2)} "
                         f"({int(row.n)} participants).")
        else:
            parts.append(f"Cohen κ, {label(row.label_a, labels)} vs {label(row.label_b, labels)} = "
                         f"{_signed(row.estimate, 2)} ({ci_text(row.ci_low, row.ci_high, 2, level)}; "
                         f"n = {int(row.n)}).")
    return " ".join(parts) + " Intervals: Wilson (proportions), Wald with the Fleiss–Cohen–Everitt SE (κ)."


def _two_group_sentence(row, what: str, unit: str, digits: int, a_name: str, b_name: str,
                        level: float, lead: str = "") -> str:
    """One comparison in words; ``lead`` (e.g. ``"For reader1, "``) starts the sentence."""
    what = what if lead else _cap(what)
    if row.status != COMPUTED:
        return f"{lead}{what} could not be compared between {a_name} and {b_name}: {row.reason}."
    nums = (f"median {_signed(row.median_a, digits)} vs {_signed(row.median_b, digits)}{unit}; "
            f"Hodges–Lehmann shift {_signed(row.estimate, digits)}{unit}, "
            f"{ci_text(row.ci_low, row.ci_high, digits, level)}; Mann–Whitney {p_text(row.p_value)}; "
            f"n = {int(row.n_a)} and {int(row.n_b)}")
    if bool(row.significant) and row.direction in ("higher", "lower"):
        return f"{lead}{what} was {row.direction} in {a_name} than in {b_name} ({nums})."
    return f"{lead}{what} did not differ significantly between {a_name} and {b_name} ({nums})."


def _measure(name: str) -> tuple[str, str, int]:
    return MEASURE_NAMES.get(name, (name.replace("_", " "), "", 3))


def _groups(f: pd.DataFrame, level: float, family: str, names=None) -> str | None:
    rows = f[f["family"] == family]
    if rows.empty:
        return None
    out = []
    for row in rows.itertuples(index=False):
        what, unit, d = _measure(row.subject)
        a, b = names if names else (row.label_a, row.label_b)
        out.append(_two_group_sentence(row, what, unit, d, a, b, level))
    return " ".join(out)


def _correct_vs_missed(f: pd.DataFrame, level: float) -> str | None:
    rows = f[f["family"] == "correct_vs_missed"]
    if rows.empty:
        return None
    out = []
    for row in rows.itertuples(index=False):
        what = VARIABLE_NAMES.get(row.subject, row.subject)
        d = 2 if row.subject == "dpr" else 1
        out.append(_two_group_sentence(row, what, "", d, "correctly diagnosed patients", "missed patients",
                                       level, lead=f"For {row.against}, "))
    return " ".join(out)


def _corr_sentence(row, level: float) -> str:
    what = _cap(_measure(row.subject)[0])
    var = VARIABLE_NAMES.get(row.against, row.against)
    if row.status != COMPUTED:
        return f"{what} and {var}: correlation not computable ({row.reason})."
    if row.family == "limb_correlation":
        nums = (f"{rho_text(row.estimate)}, {p_text(row.p_value)}, over {int(row.n)} limbs of "
                f"{int(row.n_a)} patients treated as independent")
        cluster = (f"cluster-permutation {p_text(row.cluster_p_value)}, cluster-bootstrap "
                   f"{ci_text(row.ci_low, row.ci_high, 2, level)}")
        if bool(row.significant) and bool(row.cluster_significant):
            return (f"{what} correlated {row.direction}ly with {var} ({nums}), also when the limbs of "
                    f"each patient are treated as clustered ({cluster}).")
        if bool(row.significant):
            return (f"{what} correlated {row.direction}ly with {var} when limbs are treated as "
                    f"independent ({nums}), but not significantly when the limbs of each patient are "
                    f"treated as clustered ({cluster}).")
        return f"{what} did not correlate significantly with {var} ({nums}; {cluster})."
    nums = f"{rho_text(row.estimate)}, {ci_text(row.ci_low, row.ci_high, 2, level)}, {p_text(row.p_value)}, n = {int(row.n)}"
    if bool(row.significant) and row.direction in ("positive", "negative"):
        return f"{what} correlated {row.direction}ly with {var} ({nums})."
    return f"{what} did not correlate significantly with {var} ({nums})."


def _correlations(f: pd.DataFrame, level: float) -> str | None:
    rows = f[f["family"].isin(["correlation", "limb_correlation"])]
    if rows.empty:
        return None
    main = rows[rows["against"].isin(["umn_limb", "dpr", "alsfrs_r"])]
    out = [_corr_sentence(r, level) for r in main.itertuples(index=False)]
    others = rows[~rows["against"].isin(["umn_limb", "dpr", "alsfrs_r"])]
    for subject, g in others.groupby("subject", sort=False):
        sig = g[g["significant"].fillna(False).astype(bool)]
        out += [_corr_sentence(r, level) for r in sig.itertuples(index=False)]
        rest = g[~g.index.isin(sig.index) & (g["status"] == COMPUTED)]
        if len(rest):
            names = ", ".join(VARIABLE_NAMES.get(v, v) for v in rest["against"])
            alpha_text = f"{rest['alpha'].iloc[0]:g}".lstrip("0")
            out.append(f"{_cap(_measure(subject)[0])} did not correlate significantly with {names} "
                       f"(all P ≥ {alpha_text}; q-values in the table).")
        out += [_corr_sentence(r, level) for r in g[g["status"] != COMPUTED].itertuples(index=False)]
    return " ".join(out)


def _roc(f: pd.DataFrame, level: float, labels) -> str | None:
    rows = f[f["family"] == "roc"]
    if rows.empty:
        return None
    out = []
    for row in rows.itertuples(index=False):
        what = _cap(_measure(row.subject)[0]) if row.subject in MEASURE_NAMES else label(row.subject, labels)
        if row.status != COMPUTED:
            out.append(f"{what}, {row.label_a} vs {row.label_b}: ROC not computable ({row.reason}).")
            continue
        nums = f"AUC {row.estimate:.2f}, {ci_text(row.ci_low, row.ci_high, 2, level)} (DeLong)"
        verdict = {"above chance": "separated {a} from {b} better than chance",
                   "below chance": "separated {a} from {b} in the direction opposite to the expected one",
                   "chance": "did not separate {a} from {b} better than chance"}[row.direction]
        out.append(f"{what} {verdict.format(a=row.label_a, b=row.label_b)} ({nums}).")
    return " ".join(out)


def _measurement(reg: Mapping) -> str | None:
    if "measurement.profile_thickness_mm.mae" not in reg:
        return None
    m = lambda q, k: _g(reg, f"measurement.{q}.{k}")  # noqa: E731
    return (f"Against the phantom's ground truth ({int(m('profile_thickness_mm', 'n'))} ROIs of analysed "
            f"participants), the rater-independent profile thickness had a mean absolute error of "
            f"{m('profile_thickness_mm', 'mae'):.3f} mm (bias {_signed(m('profile_thickness_mm', 'bias'), 3)} mm; "
            f"{int(m('profile_thickness_mm', 'n_failed'))} failed fits) and the caliper, placed by a simulated "
            f"rater, {m('thickness_mm', 'mae'):.3f} mm; normalized intensity was within 2% in "
            f"{pct(m('intensity', 'within_tolerance'))} of ROIs (largest error {pct(m('intensity', 'max_abs'))}) "
            f"and R2* within 5% in {pct(m('r2star_s', 'within_tolerance'))}.")


def _motion(reg: Mapping) -> str | None:
    if "qc.n_flagged" not in reg:
        return None
    extra = (f"; the flags match the phantom's motion truth for {pct(_g(reg, 'qc.flag_matches_truth'))} of them"
             if "qc.flag_matches_truth" in reg else "")
    return (f"Motion QC flagged {int(_g(reg, 'qc.n_flagged'))} of {int(_g(reg, 'qc.n_measured'))} measured "
            f"participants; {int(_g(reg, 'qc.n_flagged_excluded'))} of the {int(_g(reg, 'qc.n_excluded'))} "
            f"excluded participants were flagged{extra}.")


def data_labels(participants: pd.DataFrame | None = None, reads: pd.DataFrame | None = None) -> dict[str, str]:
    """Key part -> the data's own spelling of every group and reader label.

    Examples
    --------
    >>> data_labels(pd.DataFrame({"group": ["ALS", "mimic"]}), pd.DataFrame({"reader": ["Dr. Lee"]}))
    {'als': 'ALS', 'mimic': 'mimic', 'dr_lee': 'Dr. Lee'}
    """
    out: dict[str, str] = {}
    for table, col in ((participants, "group"), (reads, "reader")):
        if table is not None and col in table.columns:
            out.update({key_part(v): str(v) for v in dict.fromkeys(table[col].astype(str))})
    return out


def sentences(reg: Mapping[str, float], labels: Mapping[str, str] | None = None,
              alpha: float | None = None, unmeasured: int = 0) -> dict[str, str]:
    """The report's findings in words, one paragraph per result, from ``reg``.

    Parameters
    ----------
    reg : mapping
        The results registry (all of it, or one notebook's part).
    labels : mapping, optional
        Key part -> the data's spelling of group and reader labels (:func:`data_labels`).
    alpha : float, optional
        Significance level (default: the registry's ``settings.alpha``, else 0.05).
    unmeasured : int
        Analysed participants that could not be measured (said in the cohort paragraph).

    Returns
    -------
    dict of str to str
        Keys among ``cohort, visual_reading, correct_vs_missed, group, correlations,
        dpr_subgroups, roc, measurement, motion_qc``; a paragraph whose results are
        absent from the registry (a notebook not run) is left out. Directions and
        significance come from :func:`m1lib.findings.findings`.
    """
    alpha = alpha_of(reg) if alpha is None else float(alpha)
    f = findings(reg, labels=labels, alpha=alpha)
    level = 1 - alpha
    cohort = _cohort(reg, labels)
    if cohort and unmeasured:
        cohort += (f" {_n(unmeasured, 'analysed participant')} could not be measured and "
                   f"{'is' if unmeasured == 1 else 'are'} left out of every quantitative analysis; "
                   "each result below gives the n it used.")
    out = {
        "cohort": cohort,
        "visual_reading": _reading(reg, f, labels, level),
        "correct_vs_missed": _correct_vs_missed(f, level),
        "group": _groups(f, level, "group"),
        "correlations": _correlations(f, level),
        "dpr_subgroups": _groups(f, level, "dpr_subgroups", ("faster progressors", "slower progressors")),
        "roc": _roc(f, level, labels),
        "measurement": _measurement(reg),
        "motion_qc": _motion(reg),
    }
    return {k: v for k, v in out.items() if v}


# ------------------------------------------------------------------ the index page
_TITLES = {"cohort": "Cohort", "visual_reading": "Visual reading",
           "correct_vs_missed": "Correctly diagnosed vs missed", "group": "Patients vs comparison groups",
           "correlations": "Correlations", "dpr_subgroups": "DPR subgroups", "roc": "ROC",
           "measurement": "Measurement accuracy", "motion_qc": "Motion QC"}

#: Figure stems in the paper's order, with their captions (the test each one shows).
FIGURE_CAPTIONS: dict[str, str] = {
    "fig1_measurement": "Fig 1. Deep layer of M1 in a comparison subject and a patient; C/F: the caliper "
                        "and the ROI that was measured.",
    "fig1_profiles": "Fig 1 (profiles). Intensity across the layer with the fitted edges, per caliper.",
    "fig2_correlations": "Fig 2. Thickness and intensity vs clinical scores; Spearman ρ and P (per-limb "
                         "panels: limbs pooled, cluster-permutation P in the table); line: least-squares "
                         "guide.",
    "online_fig1AB_umn_correct_vs_missed": "On-line Fig 1A–B. UMN score and DPR of correctly diagnosed vs "
                                           "missed patients per reader; Mann–Whitney P.",
    "online_fig1CD_als_vs_hs": "On-line Fig 1C–D. Thickness and intensity, patients vs comparison group; "
                               "Mann–Whitney P.",
    "online_fig2_dpr_subgroups": "On-line Fig 2. Intensity and thickness in faster vs slower progressors; "
                                 "Mann–Whitney P.",
    "roc_measures_vs_readers": "ROC of the measures (AUC, DeLong CI) with the readers' operating points.",
    "motion_qc": "Motion QC: k-space ghost ratio per participant against the flag threshold.",
    "measurement_error_vs_snr": "Measurement error against the phantom's truth vs SNR.",
}

_CSS = """
body{font-family:DejaVu Sans,Arial,sans-serif;max-width:1100px;margin:2em auto;color:#222;line-height:1.45}
h1{font-size:1.5em} h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
.thumbs{display:flex;flex-wrap:wrap;gap:14px} .thumbs figure{margin:0;width:250px;font-size:.8em}
.thumbs img{width:250px;border:1px solid #ddd} table{border-collapse:collapse;font-size:.85em}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:left} .bad{color:#b2182b} code{font-size:.9em}
.banner{background:#fff3cd;border:2px solid #d39e00;padding:.6em 1em;margin:1em 0;font-weight:bold}
.alarm{background:#f8d7da;border:2px solid #b2182b;padding:.6em 1em;margin:1em 0}
tr.disagree td{background:#f8d7da}
"""


def replica_banner() -> str:
    """The banner of every page of a report on the replica (HTML)."""
    # styled inline too: the notebook pages do not carry the index's stylesheet
    return ("<div class='banner' style='background:#fff3cd;border:2px solid #d39e00;"
            "padding:.6em 1em;margin:1em 0;font-weight:bold'>SYNTHETIC DATA: this report runs on the replica, a generated cohort "
            "calibrated to the paper's published numbers. Rows marked <i>calibration target</i> in the "
            "paper comparison were set by the generator; only rows that <i>emerge from measurement</i> "
            "test the method.</div>")


def unmeasured_notice(unmeasured: list[dict]) -> str:
    """The loud notice of participants that could not be measured (HTML; '' when none)."""
    if not unmeasured:
        return ""
    items = "".join(f"<li><code>{html.escape(str(u.get('participant_id')))}</code>"
                    f"{(' ' + html.escape(str(u['label']))) if u.get('label') else ''}: "
                    f"{html.escape(str(u.get('reason', '')))}</li>" for u in unmeasured)
    return (f"<div class='alarm'><b>{len(unmeasured)} measurement(s) failed and are left out of every "
            f"analysis</b> (run with <code>allow_unmeasured</code>); each n below is the n analysed."
            f"<ul>{items}</ul></div>")


def _figures_html(report: Path) -> list[str]:
    pngs = sorted((report / "figures").glob("*.png"))
    order = list(FIGURE_CAPTIONS)

    def rank(p: Path) -> tuple:
        hits = [i for i, stem in enumerate(order) if p.stem.startswith(stem)]
        return (hits[0] if hits else len(order), p.stem)

    parts = []
    for png in sorted(pngs, key=rank):
        pdf = png.with_suffix(".pdf")
        link = f" · <a href='figures/{html.escape(pdf.name)}'>PDF</a>" if pdf.is_file() else ""
        stem = next((s for s in order if png.stem.startswith(s)), None)
        cap = FIGURE_CAPTIONS.get(stem, png.stem) if stem else png.stem
        if stem and png.stem != stem:
            cap += f" ({png.stem[len(stem):].strip('_')})"
        parts.append(f"<figure><a href='figures/{html.escape(png.name)}'><img src='figures/{html.escape(png.name)}' "
                     f"alt='{html.escape(png.stem)}'></a><figcaption>{html.escape(cap)}{link}</figcaption></figure>")
    return parts


def _comparison_html(report: Path) -> str:
    comp = report / "paper_comparison.csv"
    if not comp.is_file():
        return ""
    df = pd.read_csv(comp, keep_default_na=False, dtype=str)
    cols = [c for c in ("result", "paper", "this_run_display", "origin", "verdicts_agree", "registry_key")
            if c in df.columns]
    rows = ["<table><thead><tr>" + "".join(f"<th>{html.escape(c.replace('this_run_display', 'this run').replace('_', ' '))}</th>"
                                            for c in cols) + "</tr></thead><tbody>"]
    for r in df.itertuples(index=False):
        d = r._asdict()
        bad = d.get("verdicts_agree") == "no"
        cls = " class='disagree'" if bad else ""
        rows.append(f"<tr{cls}>"
                    + "".join(f"<td>{html.escape(str(d[c]))}</td>" for c in cols) + "</tr>")
    return "\n".join(rows) + "</tbody></table>"


def write_index(report: Path, registry: dict[str, float], provenance: dict,
                labels: Mapping[str, str] | None = None) -> Path:
    """Write ``index.html``: notices, the findings in words, notebooks, figures, tables, provenance.

    A replica run carries the synthetic-data banner (``provenance['dataset_kind'] ==
    'replica'``); participants that could not be measured (``provenance['unmeasured']``)
    are listed at the top, loudly.
    """
    report = Path(report)
    esc = html.escape
    labels = labels or provenance.get("labels") or None
    git = provenance.get("git") or {}
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>m1lib report</title>"
             f"<style>{_CSS}</style></head><body>",
             "<h1>Deep layers of M1 on 7T GRE — report</h1>"]
    if provenance.get("dataset_kind") == "replica":
        parts.append(replica_banner())
    parts.append(unmeasured_notice(provenance.get("unmeasured") or []))
    parts.append(f"<p>Dataset <code>{esc(str(provenance.get('dataset')))}</code> "
                 f"(measurements: {esc(str(provenance.get('measurement_source')))}); m1lib "
                 f"{esc(str(provenance.get('m1lib')))}, commit <code>{esc(str(git.get('commit')))}"
                 f"</code>{' (dirty)' if git.get('dirty') else ''}. Reproduces Cosottini et al., "
                 "AJNR 2016;37:455–61.</p>")
    parts.append(f"<h2>Results</h2><p>Significance level α = {alpha_of(registry):g}; P values two-sided.</p>")
    unmeasured = {u.get("participant_id") for u in provenance.get("unmeasured") or []}
    for name, text in sentences(registry, labels, unmeasured=len(unmeasured)).items():
        parts.append(f"<p><b>{esc(_TITLES.get(name, name))}.</b> {esc(text)}</p>")
    parts.append("<h2>Notebooks</h2><ul>")
    for nb in sorted(report.glob("[0-9][0-9]_*.html")):
        parts.append(f"<li><a href='{esc(nb.name)}'>{esc(nb.stem)}</a> "
                     f"(<a href='notebooks/{esc(nb.stem)}.ipynb'>executed notebook</a>)</li>")
    parts.append("</ul><h2>Figures</h2><div class='thumbs'>")
    parts += _figures_html(report)
    parts.append("</div><h2>Tables</h2><ul>")
    for csv in sorted((report / "tables").glob("*.csv")):
        parts.append(f"<li><a href='tables/{esc(csv.name)}'>{esc(csv.stem)}</a></li>")
    parts.append("</ul><h2>Paper vs this run</h2>")
    parts.append(_comparison_html(report))
    parts.append("<h2>Files</h2><ul><li><a href='results.json'>results.json</a> (every number, full precision)"
                 "</li><li><a href='paper_comparison.csv'>paper_comparison.csv</a></li>"
                 "<li><a href='provenance.json'>provenance.json</a></li></ul></body></html>\n")
    path = report / "index.html"
    path.write_text("\n".join(p for p in parts if p), encoding="utf-8")
    return path

