"""Benchmark of the resampling in m1lib.stats, against plain Python loops.

Run:  .venv/bin/python benchmarks/bench_stats.py [--n-boot 10000] [--repeat 3]

Each vectorized computation is timed (best of ``--repeat``) beside the same
computation written as a plain Python loop over resamples (one scipy.stats.spearmanr
call per resample), drawing the same resamples from the same seed, so the two give
the same interval; the table shows both intervals and the speed-up. Targets (from
issue 5): BCa CI of Spearman's rho, n = 18, 10,000 resamples, under 0.2 s; cluster
bootstrap of the pooled per-limb rho, 18 patients x 6 limbs, 10,000 resamples,
under 1 s. Timings are printed, never asserted (tests do not time anything).
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import scipy
from scipy import stats as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from m1lib import stats  # noqa: E402

SEED = 20160301


def best_of(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def data(seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=18)                       # per-subject values, n = 18
    y = -0.5 * x + rng.normal(size=18)
    umn = np.repeat(rng.integers(0, 9, (18, 2)), 3, axis=1).astype(float)  # 18 x 6 limbs
    meas = 2.0 - 0.06 * umn + rng.normal(0, 0.15, (18, 1)) + rng.normal(0, 0.1, umn.shape)
    return x, y, meas.ravel(), umn.ravel(), np.repeat(np.arange(18), 6)


# ----------------------------------------------------------------- plain loops
def loop_spearman_bca(x, y, n_boot, seed):
    rng = np.random.default_rng(seed)
    n = len(x)
    idx = rng.integers(0, n, size=(n_boot, n))   # the same draws as stats.spearman
    boot = []
    for b in range(n_boot):
        i = idx[b]
        if np.unique(x[i]).size > 1 and np.unique(y[i]).size > 1:
            boot.append(st.spearmanr(x[i], y[i]).statistic)
    jack = [st.spearmanr(np.delete(x, i), np.delete(y, i)).statistic for i in range(n)]
    lo, hi, _ = stats.bca_interval(st.spearmanr(x, y).statistic, boot, jack)
    return lo, hi


def loop_cluster_bca(v, u, cl, n_boot, seed):
    rng = np.random.default_rng(seed)
    groups = np.unique(cl)
    g = groups.size
    members = [np.nonzero(cl == k)[0] for k in groups]
    draws = rng.integers(0, g, size=(n_boot, g))  # the same draws as spearman_clustered
    boot = []
    for b in range(n_boot):
        i = np.concatenate([members[k] for k in draws[b]])
        if np.unique(v[i]).size > 1 and np.unique(u[i]).size > 1:
            boot.append(st.spearmanr(v[i], u[i]).statistic)
    jack = []
    for k in range(g):
        i = np.concatenate([members[j] for j in range(g) if j != k])
        jack.append(st.spearmanr(v[i], u[i]).statistic)
    lo, hi, _ = stats.bca_interval(st.spearmanr(v, u).statistic, boot, jack)
    return lo, hi


def loop_cluster_perm(v, u, cl, n_perm, seed):
    rng = np.random.default_rng(seed)
    g = np.unique(cl).size
    V = v.reshape(g, -1)
    U = u.reshape(g, -1)
    rho = st.spearmanr(v, u).statistic
    perms = rng.permuted(np.tile(np.arange(g), (n_perm, 1)), axis=1)
    hits = 0
    for b in range(n_perm):
        hits += abs(st.spearmanr(V.ravel(), U[perms[b]].ravel()).statistic) >= abs(rho) - 1e-12
    return (1 + hits) / (1 + n_perm)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-boot", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    B = args.n_boot
    x, y, v, u, cl = data()

    rows = []
    t_vec, r = best_of(lambda: stats.spearman(x, y, n_boot=B, seed=SEED).iloc[0], args.repeat)
    t0 = time.perf_counter()
    lo, hi = loop_spearman_bca(x, y, B, SEED)
    t_loop = time.perf_counter() - t0
    rows.append(("BCa CI of Spearman rho, n=18", 0.2, t_vec, t_loop,
                 f"[{r.ci_low:.4f}, {r.ci_high:.4f}]", f"[{lo:.4f}, {hi:.4f}]"))

    t_vec, r = best_of(lambda: stats.spearman_clustered(v, u, cl, n_boot=B, n_perm=0,
                                                        seed=SEED).iloc[0], args.repeat)
    t0 = time.perf_counter()
    lo, hi = loop_cluster_bca(v, u, cl, B, SEED)
    t_loop = time.perf_counter() - t0
    rows.append(("cluster bootstrap BCa, 18 patients x 6 limbs", 1.0, t_vec, t_loop,
                 f"[{r.cluster_ci_low:.4f}, {r.cluster_ci_high:.4f}]", f"[{lo:.4f}, {hi:.4f}]"))

    t_vec, r = best_of(lambda: stats.spearman_clustered(v, u, cl, n_boot=0, n_perm=B,
                                                        seed=SEED).iloc[0], args.repeat)
    t0 = time.perf_counter()
    p = loop_cluster_perm(v, u, cl, B, SEED)
    t_loop = time.perf_counter() - t0
    rows.append(("cluster permutation P, 18 patients x 6 limbs", None, t_vec, t_loop,
                 f"{r.cluster_p_value:.4f}", f"{p:.4f}"))

    print(f"m1lib.stats resampling benchmark: {B} resamples, best of {args.repeat}; "
          f"Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}")
    head = f"{'computation':<46} {'vectorized s':>12} {'target s':>8} {'loop s':>8} {'ratio':>7}  {'vectorized result':<18} {'loop result':<18}"
    print(head)
    print("-" * len(head))
    for name, target, tv, tl, rv, rl in rows:
        tgt = f"{target:.1f}" if target else "-"
        ok = "" if target is None else (" ok" if tv < target else " SLOW")
        print(f"{name:<46} {tv:>12.4f} {tgt:>8} {tl:>8.3f} {tl / tv:>6.0f}x  {rv:<18} {rl:<18}{ok}")


if __name__ == "__main__":
    main()
