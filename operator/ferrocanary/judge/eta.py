"""Time to a decision: how long until a KPI's confidence sequence clears its target.

With V ~ s^2/n (s^2 = V_now n_now, n = candidate observations), delta = |d - t| and the
information rate lambda (candidate requests per second at the current weight), solve

    (m(n / s^2) + z_(power)) s / sqrt(n) = delta

for n with scipy.optimize.brentq; ETA = max(0, n - n_now) / lambda, floored at the blocks still
missing before J_min. ETA50 (power 0.5) is the median time if the estimate is the truth; ETA80
leaves room for noise. The multiplier is the claim's one-sided boundary at the look's rho (traffic
as the clock, confseq: I / rho grows like n from now on), with the same Student-t calibration as
the intervals (HAC degrees of freedom), with the number of blocks growing in proportion to n.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, special

from ferrocanary.judge import confseq, hac


def eta_seconds(
    *,
    delta: float,
    variance: float,
    n_now: float,
    rate: float,
    alpha: float,
    horizon_seconds: float,
    used_seconds: float,
    power: float,
    blocks_now: float = math.inf,
    floor_seconds: float = 0.0,
    rho: float | None = None,
) -> float:
    """Seconds until the interval is expected to clear the target (inf: not at this rate)."""
    if not (math.isfinite(variance) and variance > 0 and n_now > 0 and used_seconds > 0):
        return math.inf
    if delta <= 0 or rate <= 0:
        return math.inf
    s = math.sqrt(variance * n_now)
    if rho is None or not (math.isfinite(rho) and rho > 0):
        # no mixture fixed yet: the one the claim will fix, I_opt = I_now * horizon / t_used (confseq)
        rho = (1.0 / variance) * (horizon_seconds / used_seconds) / confseq.rho_scale(min(2.0 * alpha, 0.5))
    z = float(special.ndtri(power))

    def gap(n: float) -> float:
        m = confseq.one_sided_scalar(n / s**2, rho, alpha)
        if math.isfinite(blocks_now):  # the Student-t calibration, with blocks growing like n
            df = float(hac.degrees_of_freedom(np.array([blocks_now * n / n_now]))[0])
            m = confseq.student_scalar(m, df)
        return (m + z) * s / math.sqrt(n) - delta

    if gap(n_now) <= 0:
        return max(0.0, floor_seconds)
    high = n_now * 2.0
    for _ in range(80):
        if gap(high) < 0:
            break
        high *= 2.0
    else:
        return math.inf
    n_needed = float(optimize.brentq(gap, n_now, high, xtol=1e-6 * n_now, rtol=1e-6))
    return max((n_needed - n_now) / rate, floor_seconds)
