"""Anytime-valid tests on event counts (errors, requests per arm) and the zero-event upper bound.

Per block j, candidate events k_cj and baseline events k_bj with exposures R_cj, R_bj (requests,
or configured traffic shares). Conditional on k_cj + k_bj, k_cj is binomial with
pi_j(r) = r R_cj / (r R_cj + R_bj) where r is the rate ratio. For the null r <= r0 the mixture of
likelihood ratios over a grid of alternatives

    log E_t = logsumexp_g [ ln w_g
                            + sum_j ( k_cj ln(pi_j(r_g)/pi_j(r0)) + k_bj ln((1-pi_j(r_g))/(1-pi_j(r0))) ) ]

is a test supermartingale (Lindon and Malek, NeurIPS 2022, with exposures that change per block,
so traffic steps are allowed). Rejecting the first time E >= 1/alpha keeps the error at alpha
(Ville's inequality); the running maximum of E is therefore what a look compares.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy import special

Float = NDArray[np.float64]

#: Alternatives above r0 (one-sided harm tests); the two-sided grid adds their reciprocals.
GRID: tuple[float, ...] = (1.25, 1.5, 2.0, 3.0, 5.0, 10.0)


def log_e_process(
    k_c: Float, k_b: Float, exposure_c: Float, exposure_b: Float, r0: float = 1.0, *, two_sided: bool = False
) -> Float:
    """Running maximum of log E over blocks (one value per prefix)."""
    multipliers = np.array(GRID + (tuple(1.0 / g for g in GRID) if two_sided else ()), dtype=np.float64)
    log_w = -math.log(multipliers.size)
    usable = (exposure_c > 0) & (exposure_b > 0)
    ec = np.where(usable, exposure_c, 1.0)
    eb = np.where(usable, exposure_b, 1.0)
    r = r0 * multipliers[:, None]
    pi0 = r0 * ec / (r0 * ec + eb)
    pig = r * ec[None, :] / (r * ec[None, :] + eb[None, :])
    terms = k_c[None, :] * (np.log(pig) - np.log(pi0)[None, :]) + k_b[None, :] * (
        np.log1p(-pig) - np.log1p(-pi0)[None, :]
    )
    terms = np.where(usable[None, :], terms, 0.0)
    if terms.shape[1] == 0:
        return np.zeros(0)
    log_e = logsumexp_rows(np.cumsum(terms, axis=1) + log_w)
    return np.maximum.accumulate(np.maximum(log_e, 0.0))


def log_e_split_deviation(
    k_c: Float, k_b: Float, share_c: Float, share_b: Float, tolerance: float = 0.0
) -> Float:
    """Running maximum of log E against "each arm gets its configured share, within ``tolerance``".

    The null is a band: the candidate's requests per unit of configured share are within a factor
    (1 + tolerance) of the baseline's, either way. Each side is a one-sided e-process at its edge of
    the band (valid for every ratio on its side of the edge, binomial likelihood ratios being
    monotone), and the two are joined by a union bound: max(E_up, E_down) / 2. With tolerance 0 this
    is the exact two-sided sample-ratio check. A tolerance lets data planes that split by connection
    rather than by request (kube-proxy behind a replica ratio, keep-alive clients) pass without an
    alarm while a route that is not applied, or a backend that is not reached, still fails fast.
    """
    edge = 1.0 + tolerance
    up = log_e_process(k_c, k_b, share_c, share_b, edge)
    down = log_e_process(k_b, k_c, share_b, share_c, edge)
    return np.maximum(np.maximum(up, down) - math.log(2.0), 0.0)


def logsumexp_rows(values: Float) -> Float:
    """log(sum(exp(values), axis=0)), stable; scipy.special.logsumexp without its per-call overhead
    (it dominated the benchmark's profile); the unit tests pin the two together."""
    top = values.max(axis=0)
    return np.asarray(top + np.log(np.exp(values - top[None, :]).sum(axis=0)), dtype=np.float64)


def poisson_upper(events: float, exposure: float, alpha: float) -> float:
    """One-sided (1 - alpha) upper bound of a Poisson rate: chi2.ppf(1-alpha, 2k+2) / (2E).

    With no events this is -ln(alpha)/E (about 3/E at 95%): "none seen" is not "none possible".
    """
    if exposure <= 0:
        return math.inf
    # chdtri(v, alpha) is chi2.ppf(1 - alpha, v) without scipy.stats' per-call overhead.
    return float(special.chdtri(2.0 * events + 2.0, alpha)) / (2.0 * exposure)
