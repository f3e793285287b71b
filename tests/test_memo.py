"""The content-keyed memo (m1lib.memo): it never serves a stale result, and a cached
and an uncached run give byte-identical tables, figures and results."""
from __future__ import annotations

import os
import shutil
import types

import matplotlib
import numpy as np
import pandas as pd
import pytest

from m1lib import analyses, figures, memo as M, power
from m1lib.memo import Memo, digest
from m1lib.report import Recorder

from conftest import tree_digest


def _tables(n=12, seed=0):
    rng = np.random.default_rng(seed)
    ids = [f"sub-{i:02d}" for i in range(n)]
    participants = pd.DataFrame({"participant_id": ids, "group": ["ALS"] * (n - 4) + ["HS"] * 4,
                                 "excluded": False, "dpr": rng.uniform(0.1, 2, n),
                                 "alsfrs_r": rng.integers(20, 48, n).astype(float)})
    rows = [(pid, h, a, 1.0 + rng.normal(0, 0.1), 50 + rng.normal(0, 5))
            for pid in ids for h in ("L", "R") for a in ("hand", "leg", "foot", "face")]
    meas = pd.DataFrame(rows, columns=["participant_id", "hemisphere", "area", "thickness_mm", "intensity"])
    return participants, meas


def _csv(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False, lineterminator="\n", float_format="%.10g").encode()


# ----------------------------------------------------------------------------- keys
def test_digest_follows_content_not_identity():
    a = pd.DataFrame({"x": [0.1, 0.2], "g": ["a", "b"]})
    assert digest(a) == digest(a.copy())
    assert digest(a) != digest(a.assign(x=[0.1, np.nextafter(0.2, 1)]))   # one ulp is a change
    assert digest(a) != digest(a.iloc[::-1])                                # order is content
    assert digest(np.arange(3)) != digest(np.arange(3.0))                   # so is dtype
    assert digest({"b": 1, "a": 2}) == digest({"a": 2, "b": 1})
    assert digest((1, 2)) != digest([1, 2]) and digest(1) != digest(1.0) and digest(True) != digest(1)


def test_digest_refuses_what_it_cannot_key():
    with pytest.raises(TypeError, match="cannot key"):
        digest(object())
    with pytest.raises(TypeError, match="not a file"):
        digest(pd.__file__ and __import__("pathlib").Path("/no/such/file"))


def test_a_file_is_keyed_by_its_bytes_even_when_size_and_mtime_are_kept(tmp_path):
    f = tmp_path / "sub-01_markups.json"
    f.write_text('{"x": 1.0}')
    before = digest(f)
    st = f.stat()
    f.write_text('{"x": 2.0}')                       # same size
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # timestamps put back, as cp -p would
    assert digest(f) != before


def test_a_change_in_the_snapshot_or_a_parameter_misses(tmp_path):
    participants, meas = _tables()
    memo = Memo(tmp_path)
    kw = dict(n_boot=200, seed=1, conf_level=0.95, patient_group="ALS")
    first = memo(analyses.correlations, participants, meas, **kw)
    assert (memo.hits, memo.misses) == (0, 1)
    assert _csv(memo(analyses.correlations, participants, meas, **kw)) == _csv(first)
    assert (memo.hits, memo.misses) == (1, 1)
    changed = meas.copy()
    changed.loc[0, "thickness_mm"] += 1e-9                         # the snapshot changed
    memo(analyses.correlations, participants, changed, **kw)
    for k, v in (("n_boot", 201), ("seed", 2), ("conf_level", 0.9)):  # n_boot, seed, alpha
        memo(analyses.correlations, participants, meas, **{**kw, k: v})
    assert (memo.hits, memo.misses) == (1, 5)


def test_a_change_in_the_code_closure_misses(tmp_path, monkeypatch):
    pkg = tmp_path / "m1lib"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "top.py").write_text("from m1lib.sub import helper\nimport numpy\n")
    (pkg / "sub" / "helper.py").write_text("from .. import leaf\nK = 1\n")
    (pkg / "leaf.py").write_text("import scipy.stats\nL = 1\n")
    (pkg / "unrelated.py").write_text("U = 1\n")
    monkeypatch.setattr(M, "PACKAGE_DIR", pkg)
    for f in (M.code_closure, M.code_hash):
        f.cache_clear()
    monkeypatch.setattr(M, "code_closure", M.code_closure)  # restored (and cleared) below
    mods, libs = M.code_closure("m1lib.top")
    assert set(mods) == {"", "top", "sub", "sub.helper", "leaf"}
    assert set(libs) == {"numpy", "scipy"}
    fn = types.SimpleNamespace(__module__="m1lib.top", __qualname__="compute")
    memo = Memo(tmp_path / "memo")

    def key():
        M.code_closure.cache_clear()
        M.code_hash.cache_clear()
        return memo.key(fn, (1,), {})

    k0 = key()
    (pkg / "unrelated.py").write_text("U = 2\n")      # outside the closure: same key
    assert key() == k0
    (pkg / "leaf.py").write_text("import scipy.stats\nL = 2\n")   # two imports away
    k1 = key()
    assert k1 != k0
    (pkg / "sub" / "__init__.py").write_text("# a package's __init__ runs too\n")
    assert key() != k1
    M.code_closure.cache_clear()
    M.code_hash.cache_clear()


def test_the_closure_of_the_real_analyses_reaches_stats():
    mods, libs = M.code_closure("m1lib.analyses.correlations")
    assert {"analyses.correlations", "stats.correlations", "stats.resampling", "analyses._common"} <= set(mods)
    assert {"numpy", "scipy", "pandas"} <= set(libs)


# ----------------------------------------------------------------------------- values
def test_cached_and_uncached_power_tables_are_byte_identical(tmp_path):
    participants, meas = _tables()
    kw = dict(measures=["thickness_mm", "intensity"], kinds=["group"], patient_group="ALS", control_group="HS",
              n_boot=200, seed=3)
    grid = dict(n_grid=[6, 10], n_sim=100, alpha=0.05, seed=3)
    plain = power.power_curves(power.plan_endpoints(participants, meas, **kw), **grid)
    memo = Memo(tmp_path)
    runs = [memo(power.power_curves, memo(power.plan_endpoints, participants, meas, **kw), **grid)
            for _ in range(2)]
    assert (memo.hits, memo.misses) == (2, 2)
    assert _csv(runs[0]) == _csv(runs[1]) == _csv(plain)


def test_a_disabled_memo_computes_every_call_and_writes_nothing(tmp_path):
    memo = Memo(None)
    calls = []
    assert memo(lambda x: calls.append(x) or x, 1) == 1 and memo(lambda x: calls.append(x) or x, 1) == 1
    assert calls == [1, 1] and (memo.hits, memo.misses) == (0, 2)
    assert not memo.enabled


def test_a_damaged_entry_is_recomputed(tmp_path):
    memo = Memo(tmp_path)
    assert memo(np.add, 1, 2) == 3
    (entry,) = tmp_path.rglob("*.pkl")
    entry.write_bytes(entry.read_bytes()[:10])
    assert memo(np.add, 1, 2) == 3 and memo.misses == 2


def _figure(values, title="t"):
    with figures.style():
        fig = matplotlib.figure.Figure(figsize=(3, 2), layout="constrained")
        ax = fig.add_subplot()
        ax.plot(values)
        ax.set_title(title)
        ax.set_xlabel("x label")
    return fig


def test_figures_from_the_memo_are_byte_identical_and_follow_settings(tmp_path):
    vals = np.array([0.0, 1.0, 0.5])
    plain = Recorder("x", tmp_path / "plain")
    plain.draw("f", _figure, vals)
    cached = [Recorder("x", tmp_path / f"r{i}", memo=Memo(tmp_path / "memo")) for i in range(2)]
    for rec in cached:
        img = rec.draw("f", _figure, vals)
        assert img.data.startswith(b"\x89PNG")
    assert [r.memo.hits for r in cached] == [0, 1]
    assert tree_digest(tmp_path / "plain") == tree_digest(tmp_path / "r0") == tree_digest(tmp_path / "r1")
    again = Recorder("x", tmp_path / "r2", memo=Memo(tmp_path / "memo"))
    again.draw("f", _figure, vals, title="other")           # an argument
    with matplotlib.rc_context({"lines.linewidth": 3.0}):   # a setting drawing reads
        again.draw("g", _figure, vals)
    assert (again.memo.hits, again.memo.misses) == (0, 2)


def test_render_matches_savefig_and_shows_the_same_layout(tmp_path):
    fig = _figure(np.arange(4.0))
    out = figures.render(fig, ("png", "pdf"))
    with matplotlib.rc_context(figures.STYLE):
        import io

        buf = io.BytesIO()
        _figure(np.arange(4.0)).savefig(buf, format="png", dpi=300, metadata={"Software": None},
                                        bbox_inches=None)
    assert out["png"] == buf.getvalue()                     # the PNG matplotlib writes
    assert out["pdf"].startswith(b"%PDF") and out["display"].startswith(b"\x89PNG")
    assert fig.get_layout_engine() is not None              # the figure's own engine is back
    from PIL import Image
    import io

    big, small = (Image.open(io.BytesIO(out[k])) for k in ("png", "display"))
    assert (big.size[0] // 2, big.size[1] // 2) == small.size


@pytest.mark.slow
def test_report_tables_with_and_without_the_memo_are_identical(measured_report, tmp_path):
    """The shared report ran with its memo; the same notebooks from the memo and with
    --no-cache give the same bytes."""
    from m1lib import report

    manifest, out = measured_report
    runs = {}
    for name, no_cache in (("hit", False), ("none", True)):
        target = tmp_path / name
        assert report.run_report(manifest, target, only=["04", "08"], jobs=2, no_cache=no_cache,
                                 log=lambda *a: None) == 0
        runs[name] = target
    prov = __import__("json").loads((runs["hit"] / "provenance.json").read_text())
    assert prov["notebooks"]["04_correlations"]["memo"]["misses"] == 0
    assert prov["notebooks"]["04_correlations"]["memo"]["hits"] >= 3
    none = __import__("json").loads((runs["none"] / "provenance.json").read_text())
    assert none["memo"] is None and none["notebooks"]["08_power"]["memo"]["hits"] == 0
    for stem in ("correlations", "limb_correlations", "power_curves", "power_sample_sizes"):
        ref = (out / "tables" / f"{stem}.csv").read_bytes()
        assert (runs["hit"] / "tables" / f"{stem}.csv").read_bytes() == ref
        assert (runs["none"] / "tables" / f"{stem}.csv").read_bytes() == ref
    for fig in ("fig2_correlations.png", "fig2_correlations.pdf", "power_curves.pdf"):
        ref = (out / "figures" / fig).read_bytes()
        assert (runs["hit"] / "figures" / fig).read_bytes() == (runs["none"] / "figures" / fig).read_bytes() == ref
    shutil.rmtree(tmp_path, ignore_errors=True)
