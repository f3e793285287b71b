"""The layered edge model (error-function edges with levels), its analytic Jacobian, the
unconstrained parametrisation Levenberg-Marquardt works on, and the grid search that starts it."""
from __future__ import annotations

import numpy as np
from scipy import special

__all__ = ["edge_model", "edge_model_jacobian"]


_SQRT2 = np.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)


def _phi(x):
    return 0.5 * (1.0 + special.erf(x / _SQRT2))


def edge_model(r, edges, levels, sigma):
    """Piecewise-constant levels separated at ``edges``, blurred by a Gaussian.

    ``f(r) = L0 + sum_k (L_{k+1} - L_k) * Phi((r - e_k) / sigma_k)`` (``sigma`` one
    width or one per edge).

    Examples
    --------
    >>> round(float(edge_model(0.0, [0.0], [1.0, 3.0], 0.1)), 6)
    2.0
    """
    r = np.asarray(r, dtype=float)
    sig = np.broadcast_to(np.asarray(sigma, dtype=float), (len(edges),))
    out = np.full(r.shape, float(levels[0]))
    for k, e in enumerate(edges):
        out = out + (levels[k + 1] - levels[k]) * _phi((r - e) / sig[k])
    return out



def edge_model_jacobian(r, edges, levels, sigma) -> np.ndarray:
    """Derivatives of :func:`edge_model` with respect to each edge position.

    ``d f / d e_k = -(L_{k+1} - L_k) * phi((r - e_k) / sigma_k) / sigma_k``, one column
    per edge (the levels and widths held fixed).

    Examples
    --------
    Against central differences:

    >>> r, lev, sig, h = np.linspace(-1, 1, 9), [1.0, 3.0, 2.0], [0.2, 0.3], 1e-6
    >>> f = lambda e: edge_model(r, e, lev, sig)
    >>> num = np.column_stack([(f([-0.2 + h, 0.4]) - f([-0.2 - h, 0.4])) / (2 * h),
    ...                        (f([-0.2, 0.4 + h]) - f([-0.2, 0.4 - h])) / (2 * h)])
    >>> bool(np.allclose(edge_model_jacobian(r, [-0.2, 0.4], lev, sig), num, atol=1e-6))
    True
    """
    r = np.asarray(r, dtype=float)[:, None]
    e = np.asarray(edges, dtype=float)[None, :]
    sig = np.broadcast_to(np.asarray(sigma, dtype=float), (e.shape[1],))[None, :]
    step = np.diff(np.asarray(levels, dtype=float)[: e.shape[1] + 1])[None, :]
    z = (r - e) / sig
    return -step * _INV_SQRT_2PI * np.exp(-0.5 * z * z) / sig


class _Model:
    """The layered model on all samples of all echoes, with its analytic Jacobian.

    Parameters ``x = [e_outer, t, (u), sigma, (angle), (gap), L_0 .. L_K per echo]``
    where the edges are ``[e_outer - gap], e_outer, e_outer + t, [e_outer + t + u]``
    and ``L`` the tissue levels (bounded below by 0: magnitude images). Without a
    U-fibre line (``with_u`` False) the deep layer meets white matter directly.
    """

    def __init__(self, s, o, y, with_csf: bool, fit_angle: bool, with_u: bool = True,
                 outer_width: bool = False):
        self.s, self.o, self.y = s, o, y            # y: (n_echo, n)
        self.n_e = y.shape[0]
        self.with_csf = with_csf
        self.fit_angle = fit_angle
        self.with_u = with_u
        self.i_u = 2 if with_u else None
        self.i_sigma = 2 + int(with_u)
        self.outer_width = outer_width
        self.i_sigma_outer = self.i_sigma + int(outer_width)
        nxt = self.i_sigma_outer + 1
        self.i_angle = nxt if fit_angle else None
        self.i_gap = nxt + int(fit_angle) if with_csf else None
        self.n_geo = nxt + int(fit_angle) + int(with_csf)
        self.i_outer_edge = 1 if with_csf else 0
        self.n_edges = 2 + int(with_u) + int(with_csf)

    def unpack(self, x):
        e_outer, t = float(x[0]), float(x[1])
        sigma = np.full(self.n_edges, float(x[self.i_sigma]))
        sigma[self.i_outer_edge] = float(x[self.i_sigma_outer])
        angle = float(x[self.i_angle]) if self.fit_angle else 0.0
        edges = [e_outer, e_outer + t]
        if self.with_u:
            edges.append(e_outer + t + float(x[self.i_u]))
        if self.with_csf:
            edges = [e_outer - float(x[self.i_gap])] + edges
        lev = np.reshape(x[self.n_geo:], (self.n_e, self.n_edges + 1))
        coef = lev.copy()                                         # level, then jumps
        coef[:, 1:] -= lev[:, :-1]
        return edges, sigma, angle, coef

    def r(self, angle):
        return self.s * np.cos(angle) + self.o * np.sin(angle)

    def basis(self, edges, sigma, angle):
        key = (tuple(edges), tuple(sigma), angle)
        if getattr(self, "_key", None) == key:        # resid and jac share x
            return self._basis
        r = self.r(angle)
        z = (r[None, :] - np.asarray(edges)[:, None]) / sigma[:, None]   # (K, n)
        self._key, self._basis = key, (r, z, _phi(z))
        return self._basis

    def resid(self, x):
        edges, sigma, angle, coef = self.unpack(x)
        _, _, P = self.basis(edges, sigma, angle)
        f = coef[:, :1] + coef[:, 1:] @ P                          # (n_e, n)
        return (f - self.y).ravel()

    def jac(self, x):
        edges, sigma, angle, coef = self.unpack(x)
        r, z, P = self.basis(edges, sigma, angle)
        g = np.exp(-0.5 * z * z) * (_INV_SQRT_2PI / sigma[:, None])  # dPhi/dr, (K, n)
        n = r.size
        J = np.zeros((self.n_e, n, len(x)))
        # d f / d e_k = -c_k g_k
        de = -coef[:, 1:, None] * g[None]                           # (n_e, K, n)
        off = 1 if self.with_csf else 0
        J[:, :, 0] = de.sum(axis=1)                                 # every edge moves with e_outer
        J[:, :, 1] = de[:, off + 1:].sum(axis=1)                    # t moves the inner edges
        if self.with_u:
            J[:, :, self.i_u] = de[:, off + 2]
        dz = de * z[None]                                           # d/d sigma_k = -c g z
        if self.outer_width:
            J[:, :, self.i_sigma] = dz.sum(axis=1) - dz[:, self.i_outer_edge]
            J[:, :, self.i_sigma_outer] = dz[:, self.i_outer_edge]
        else:
            J[:, :, self.i_sigma] = dz.sum(axis=1)
        if self.fit_angle:
            drda = -self.s * np.sin(angle) + self.o * np.cos(angle)
            J[:, :, self.i_angle] = -(de.sum(axis=1)) * drda[None]
        if self.with_csf:
            J[:, :, self.i_gap] = -de[:, 0]
        # d f / d L_j = Phi_{j-1} - Phi_j  (Phi_{-1} = 1, Phi_K = 0)
        ext = np.vstack([np.ones((1, n)), P, np.zeros((1, n))])
        dl = (ext[:-1] - ext[1:]).T                                 # (n, K + 1)
        for e in range(self.n_e):
            c0 = self.n_geo + e * (self.n_edges + 1)
            J[e, :, c0:c0 + self.n_edges + 1] = dl
        return J.reshape(self.n_e * n, len(x))


def _softplus(z):
    return np.logaddexp(0.0, z)


def _softplus_inv(x):
    x = np.maximum(x, 1e-9)
    return x + np.log(-np.expm1(-x))


class _Transformed:
    """Unconstrained parameters ``z`` for Levenberg-Marquardt: ``u = umin + (umax -
    umin) expit(z_u)``, ``sigma = exp(z_sigma)``, ``gap = gmin + softplus(z_gap)``."""

    def __init__(self, model: _Model, umin: float, gmin: float, umax: float = 0.6):
        self.m, self.umin, self.gmin, self.umax = model, umin, gmin, umax
        self.i_u, self.i_gap = model.i_u, model.i_gap
        self.i_s = sorted({model.i_sigma, model.i_sigma_outer})

    def to_x(self, z):
        x = np.array(z, dtype=float)
        if self.i_u is not None:
            x[self.i_u] = self.umin + (self.umax - self.umin) * special.expit(z[self.i_u])
        x[self.i_s] = np.exp(np.asarray(z)[self.i_s])
        if self.i_gap is not None:
            x[self.i_gap] = self.gmin + _softplus(z[self.i_gap])
        return x

    def to_z(self, x):
        z = np.array(x, dtype=float)
        if self.i_u is not None:
            f = np.clip((x[self.i_u] - self.umin) / (self.umax - self.umin), 1e-6, 1 - 1e-6)
            z[self.i_u] = special.logit(f)
        z[self.i_s] = np.log(np.asarray(x)[self.i_s])
        if self.i_gap is not None:
            z[self.i_gap] = _softplus_inv(x[self.i_gap] - self.gmin)
        return z

    def resid(self, z):
        return self.m.resid(self.to_x(z))

    def jac(self, z):
        J = self.m.jac(self.to_x(z))
        if self.i_u is not None:
            e = special.expit(z[self.i_u])
            J[:, self.i_u] *= (self.umax - self.umin) * e * (1 - e)
        J[:, self.i_s] *= np.exp(np.asarray(z)[self.i_s])[None, :]
        if self.i_gap is not None:
            J[:, self.i_gap] *= special.expit(z[self.i_gap])
        return J


def _grid_init(s, Y, length, search, sigma, step=0.15, min_gap=0.3,
               widths=(0.2, 0.4, 0.7)):
    """Starting edges from an exhaustive search on the line-averaged profiles.

    For edges on a grid (outer within ``search`` of 0, inner within ``search`` of
    ``length``, a few U-fibre line widths and, optionally, a CSF edge at least
    ``min_gap`` outside the outer one) the levels of every echo are solved by
    least squares (batched normal equations); the candidate with the smallest
    residual whose contrasts have the expected signs in every echo (superficial >
    deep > U-fibre < white matter; CSF edge the strongest) wins.

    Without a U-fibre line the deep layer meets white matter directly, and that
    contrast may have either sign (white matter brighter or darker than the deep
    layer) but must be the same in every echo.

    Returns ``{(with_csf, with_u): (rss, n_params, (e_outer, t, u, gap), levels)}``.
    """
    good = np.all(np.isfinite(Y), axis=0)
    s, Y = s[good], Y[:, good]
    h = step / 2
    grid = np.arange(s[0] - h, s[-1] + h + 1e-9, h)
    P = np.c_[np.ones_like(s), _phi((s[:, None] - grid[None, :]) / sigma)]   # (n, 1+G)
    S = P.T @ P
    Q = P.T @ Y.T                                                            # (1+G, n_e)
    yy = (Y * Y).sum(axis=1)

    def gi(e):
        return np.clip(np.rint((e - grid[0]) / h).astype(int), 0, len(grid) - 1) + 1

    eo = np.arange(-search, search + 1e-9, step)
    ei = length + np.arange(-search, search + 1e-9, step)
    out = {}
    for with_u in (True, False):
        EO, EI, UU = (a.ravel() for a in np.meshgrid(
            eo, ei, np.asarray(widths) if with_u else np.zeros(1), indexing="ij"))
        keep = EI - EO > 0.1
        EO, EI, UU = EO[keep], EI[keep], UU[keep]
        inner_cols = [gi(EI)] + ([gi(EI + UU)] if with_u else [])
        for with_csf in (False, True):
            if with_csf:
                gaps = np.arange(min_gap, max(min_gap, EO.max() - s[0]) + 1e-9, 2 * step)
                EO2, G2 = np.repeat(EO, len(gaps)), np.tile(gaps, len(EO))
                EI2, UU2 = np.repeat(EI, len(gaps)), np.repeat(UU, len(gaps))
                ok = EO2 - G2 > s[0] + step
                if not ok.any():
                    continue
                EO2, G2, EI2, UU2 = EO2[ok], G2[ok], EI2[ok], UU2[ok]
                cols = [gi(EO2 - G2), gi(EO2), gi(EI2)] + ([gi(EI2 + UU2)] if with_u else [])
                idx = np.c_[np.zeros(len(EO2), int), np.column_stack(cols)]
                params = np.c_[EO2, EI2 - EO2, UU2, G2]
            else:
                idx = np.c_[np.zeros(len(EO), int), gi(EO), np.column_stack(inner_cols)]
                params = np.c_[EO, EI - EO, UU, np.full(len(EO), np.nan)]
            off = 1 if with_csf else 0
            A = S[idx[:, :, None], idx[:, None, :]] + 1e-9 * np.eye(idx.shape[1])
            B = Q[idx]                                                       # (N, m, n_e)
            coef = np.linalg.solve(A, B)                                     # (N, m, n_e)
            rss = (yy[None, :] - np.einsum("imk,imk->ik", coef, B)).sum(axis=1)
            signs = np.all(coef[:, off + 1] < 0, axis=1)
            if with_u:
                signs &= np.all((coef[:, off + 2] < 0) & (coef[:, off + 3] > 0), axis=1)
            else:
                signs &= np.all(coef[:, off + 2] > 0, axis=1) | np.all(coef[:, off + 2] < 0, axis=1)
            if with_csf:
                signs &= np.all(np.abs(coef[:, 1]) >= np.abs(coef[:, off + 1]), axis=1)
            if signs.any():
                rss = np.where(signs, rss, np.inf)
            j = int(np.argmin(rss))
            n_geo = 2 + int(with_u) + off
            out[(with_csf, with_u)] = (float(rss[j]), idx.shape[1] * Y.shape[0] + n_geo,
                                       tuple(float(v) for v in params[j]),
                                       np.maximum(np.cumsum(coef[j].T, axis=1), 0.0))
    return out

