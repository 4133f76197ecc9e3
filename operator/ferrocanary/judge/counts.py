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

Over-dispersion. Real errors come in bursts per arm (one bad pod, one bad minute), so given a
block's total the candidate's share varies more than a binomial: at 100 rps, equal error rates with
a per-minute gamma factor of CV 1 made the plain e-process roll back 20% of healthy canaries. Each
block's log likelihood ratio is therefore divided by a dispersion factor phi_j estimated from the
blocks *before* j only (``dispersion``: the mean squared Pearson residual of the split around the
rate ratio fitted so far, started from a cautious prior, floored at 1). A predictable phi_j keeps
the product structure: for phi >= 1 a tempered binomial likelihood ratio LR^(1/phi) has expectation
<= 1 under the binomial null (Jensen), and it is the quasi-likelihood e-value under an
over-dispersed one. This is an approximation, not a proof: with per-arm bursts and unequal traffic
the split given the block's total is also shifted toward 50/50 (a burst in one arm makes the total
large), which no dispersion factor can undo; tests/unit/test_judge_dispersion.py measures what
remains. Poisson data give phi near 1, so little is lost where bursts are absent.

The error guard uses a per-block factor instead (``burst_dispersion``): the burst size (the squared
CV c of a per-block factor on each arm's rate) is estimated from earlier blocks, and block j is
tempered by the split's variance inflation that this burst size implies at block j's expected
counts. One factor pooled over all blocks is set by the small blocks of the 5% step and
under-tempers the 50% step, where each arm expects several times more events per block; per block,
the harm e-process's null crossings under bursts fell from 5.4% to 1.9% in the unit test's
setting, and to 0.8% with the burst size below. The sample-ratio check keeps ``dispersion``
(request counts are large and bursts there are rare).

The burst size is a posterior mean over a grid (``CV2_GRID``, prior ``PRIOR_CV2_HIGH``) given each
arm's spread of counts around its rate so far, so blocks weigh what they are worth: a block's moment
of c has variance about 2 (c + 1/mu)^2, so at 60 events a block with no bursts pins c to a few
hundredths (quiet blocks drop phi to about 1 within three or four blocks), while at one event a
block says almost nothing and the prior holds, as before. An estimate shrunk toward c = 1 with a
fixed weight of three blocks (issue 13) kept phi at 14 after ten quiet blocks of 60 events, and its
rate, with a whole first block of pseudo-exposure, also inflated the early estimates. Validity: any
phi_j >= 1 computed from blocks < j (and block j's exposure) keeps the tempered e-process a test
supermartingale under the binomial null, as above; the estimator only decides how much evidence a
block may give. What it costs: block 0 is tempered by the prior at half an expected event (nothing
is known of the rates before it), as before, so with bursts from the very first judged block at
high counts a burst there can still cross (tests/unit/test_judge_dispersion.py measures it); and
each look evaluates a likelihood at each of the grid's 15 points for every prefix, O(blocks x 15)
array work (about 0.3 ms at 120 blocks against 0.1 ms before on the shared bench machine, one
pass for all looks).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy import special

Float = NDArray[np.float64]

#: Alternatives above r0 (one-sided harm tests); the two-sided grid adds their reciprocals.
GRID: tuple[float, ...] = (1.25, 1.5, 2.0, 3.0, 5.0, 10.0)

#: The dispersion estimate starts from PRIOR_BLOCKS pseudo-blocks at PRIOR_PHI: cautious while there
#: are too few blocks to tell bursts from a real difference (the running maximum makes an early
#: excursion final), outweighed by the data after a few tens of blocks. Chosen on the bench's
#: error-bursts cell (docs/recording.md): prior 1 rolled back 12% of healthy canaries at 100 rps, 3 5%.
PRIOR_BLOCKS = 3.0
PRIOR_PHI = 3.0


def _before(x: Float) -> Float:
    """Running sums over blocks 0..j-1 (0 at j = 0)."""
    return np.concatenate(([0.0], np.cumsum(x)[:-1]))


def dispersion(k_c: Float, k_b: Float, exposure_c: Float, exposure_b: Float) -> Float:
    """phi_j per block from blocks 0..j-1 only: the mean squared Pearson residual of the candidate's
    share of each block's events around the rate ratio fitted on those blocks, shrunk toward
    PRIOR_PHI with PRIOR_BLOCKS pseudo-blocks, floored at 1 (never sharper than the binomial)."""
    total = k_c + k_b
    usable = (exposure_c > 0) & (exposure_b > 0) & (total > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        cum_kc, cum_kb = np.cumsum(np.where(usable, k_c, 0.0)), np.cumsum(np.where(usable, k_b, 0.0))
        cum_ec = np.cumsum(np.where(usable, exposure_c, 0.0))
        cum_eb = np.cumsum(np.where(usable, exposure_b, 0.0))
        ratio = (cum_kc / cum_ec) / (cum_kb / cum_eb)
        ratio = np.where(np.isfinite(ratio) & (ratio > 0), ratio, 1.0)
        pi = ratio * exposure_c / (ratio * exposure_c + exposure_b)
        residual2 = (k_c - pi * total) ** 2 / (total * pi * (1.0 - pi))
    residual2 = np.where(usable & np.isfinite(residual2), residual2, 0.0)
    # block j may only see blocks < j: shift the running sums by one
    seen = _before(usable.astype(np.float64))
    squares = _before(residual2)
    return np.maximum(1.0, (squares + PRIOR_PHI * PRIOR_BLOCKS) / (seen + PRIOR_BLOCKS))


#: Burst sizes the error guard weighs (squared CV c of a per-block factor on an arm's error rate):
#: 0, powers of two from 1/256 to 1/2, and half powers of two from 1/sqrt(2) to 4 (finer where the
#: tempering is large).
CV2_GRID: tuple[float, ...] = (
    0.0,
    *(2.0**e for e in range(-8, 0)),
    *(2.0 ** (e / 2) for e in range(-1, 5)),
)
#: Prior on CV2_GRID: PRIOR_CV2_HIGH of its mass on bursts at least as large as CV 1 (c >= 1), the
#: rest on smaller ones, even over the grid's points within each part. Even odds: before the data
#: say otherwise a burst as large as the error-bursts stressor's is as likely as none (prior mean
#: 1.2), cautious while an early excursion would be final; how fast the data move it depends on
#: what they are worth (module docstring).
PRIOR_CV2_HIGH = 0.5


def _cv2_prior() -> tuple[Float, Float]:
    """(grid, log prior) of the burst size, as column vectors."""
    grid = np.asarray(CV2_GRID, dtype=np.float64)
    high = grid >= 1.0
    prior = np.where(high, PRIOR_CV2_HIGH / high.sum(), (1.0 - PRIOR_CV2_HIGH) / (~high).sum())
    return grid[:, None], np.log(prior)[:, None]


def _arm_log_likelihood(k: Float, n: Float, grid: Float) -> tuple[Float, Float]:
    """(log L[g, j], mu_j) of one arm: the log likelihood of each burst size grid[g] given blocks
    0..j-1 only, and block j's expected count mu_j = n_j (events + 1/2) / exposure so far (half an
    event, so it is never 0; half an event before any exposure).

    The data enter through S_j = sum_i (k_i - n_i r_j)^2 around the rate so far r_j = K / N. With
    block i's count of mean m_i = n_i r and variance v_i = m_i (1 + c m_i) (Poisson with a per-block
    factor of mean 1 and squared CV c), S has mean (1 - 2 p_i) v_i + P2 v_i summed over blocks and
    variance about 2 (1 - P2) sum v_i^2 (p_i = n_i / N, P2 = sum p_i^2; with equal blocks S is
    v chi-squared with j - 1 degrees of freedom: one block says nothing about c). S is taken as gamma
    with that mean and variance, m_i as n_i r_j. Every term is a running sum of block quantities
    (k, n, k^2, k n, n^2, n^3, n^4) evaluated per grid point: all looks cost one pass."""
    sum_n, sum_k = _before(n), _before(k)
    sum_kk, sum_kn, sum_n2 = _before(k * k), _before(k * n), _before(n * n)
    sum_n3, sum_n4 = _before(n**3), _before(n**4)
    informative = (sum_k > 0) & (sum_n2 < sum_n**2)  # some events, and more than one block
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(informative, sum_k / sum_n, 0.0)
        p2 = np.where(informative, sum_n2 / sum_n**2, 0.0)
        spread = np.maximum(sum_kk - 2.0 * r * sum_kn + r * r * sum_n2, 1e-9 * sum_k)
        poisson = sum_k * (1.0 + p2) - 2.0 * r * sum_n2 / np.where(informative, sum_n, 1.0)
        bursts = r * r * (sum_n2 * (1.0 + p2) - 2.0 * sum_n3 / np.where(informative, sum_n, 1.0))
        mean = poisson + grid * bursts
        var = 2.0 * (1.0 - p2) * (r**2 * sum_n2 + 2.0 * grid * r**3 * sum_n3 + grid**2 * r**4 * sum_n4)
        shape, scale = mean**2 / var, var / mean
        log_lik = (shape - 1.0) * np.log(spread) - spread / scale - shape * np.log(scale)
        log_lik = log_lik - special.gammaln(shape)
        mu = np.where(sum_n > 0, n * (sum_k + 0.5) / sum_n, np.where(n > 0, 0.5, 0.0))
    return np.where(informative, log_lik, 0.0), mu


def burst_dispersion(k_c: Float, k_b: Float, exposure_c: Float, exposure_b: Float) -> Float:
    """phi_j per block for the split of block j's events, from the burst size seen so far.

    If each arm's events are Poisson with a per-block factor of mean 1 and squared CV c_a on its rate
    (bursts), its count has variance mu (1 + c_a mu) = mu phi_a, and the candidate's share of a
    block's events has variance (1 - pi) phi_c + pi phi_b times the binomial one (pi the candidate's
    share of the expected events), which is 1 + pi (1 - pi) (mu_c + mu_b) (c_c + c_b): only the sum
    of the two burst sizes matters, so one c is estimated from both arms' counts (twice the data of
    one arm; when only one build bursts it lands between the two, near their mean).
    Unlike one pooled factor for all blocks, this grows with the block's expected counts: bursts
    matter more when an arm serves more traffic (a 50% step at 100 rps needs several times the
    tempering of a 5% step). c is the posterior mean over CV2_GRID given blocks 0..j-1 only
    (``_arm_log_likelihood`` of each arm, PRIOR_CV2_HIGH), so phi_j is predictable; floored at 1."""
    usable = (exposure_c > 0) & (exposure_b > 0)
    kc, kb = np.where(usable, k_c, 0.0), np.where(usable, k_b, 0.0)
    nc, nb = np.where(usable, exposure_c, 0.0), np.where(usable, exposure_b, 0.0)
    grid, log_prior = _cv2_prior()
    log_lik_c, mu_c = _arm_log_likelihood(kc, nc, grid)
    log_lik_b, mu_b = _arm_log_likelihood(kb, nb, grid)
    log_post = log_prior + log_lik_c + log_lik_b
    post = np.exp(log_post - log_post.max(axis=0))
    cv2 = (post * grid).sum(axis=0) / post.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        pi = np.where(mu_c + mu_b > 0, mu_c / (mu_c + mu_b), 0.5)
    phi = 1.0 + cv2 * ((1.0 - pi) * mu_c + pi * mu_b)
    return np.asarray(np.maximum(1.0, phi), dtype=np.float64)


def log_e_path(
    k_c: Float,
    k_b: Float,
    exposure_c: Float,
    exposure_b: Float,
    r0: float = 1.0,
    *,
    two_sided: bool = False,
    phi: Float | None = None,
    centre: float | None = None,
) -> Float:
    """log E of the rate-ratio test after each block (not maximised; see ``log_e_process``).

    The grid's weights are equal unless ``centre`` is given: then alternative r0 x g gets weight
    proportional to exp(-(ln g - ln centre)^2 / (2 CENTRE_SD^2)), fixed before any data (a function
    of r0 and centre only), so the mixture spends its prior where the claim expects the truth."""
    multipliers = np.array(GRID + (tuple(1.0 / g for g in GRID) if two_sided else ()), dtype=np.float64)
    log_w = grid_log_weights(multipliers, centre)
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
    if phi is not None:
        terms = terms / phi[None, :]
    if terms.shape[1] == 0:
        return np.zeros(0)
    return logsumexp_rows(np.cumsum(terms, axis=1) + log_w[:, None])


#: Spread (natural-log units) of the grid's weights around ``centre`` when one is given.
CENTRE_SD = 0.35


def grid_log_weights(multipliers: Float, centre: float | None) -> Float:
    """log w_g of the grid: equal, or concentrated around the multiplier ``centre`` (normalised)."""
    if centre is None:
        return np.full(multipliers.size, -math.log(multipliers.size))
    logits = -((np.log(multipliers) - math.log(centre)) ** 2) / (2.0 * CENTRE_SD**2)
    return np.asarray(logits - logsumexp_rows(logits[:, None])[0], dtype=np.float64)


def log_e_process(
    k_c: Float,
    k_b: Float,
    exposure_c: Float,
    exposure_b: Float,
    r0: float = 1.0,
    *,
    two_sided: bool = False,
    phi: Float | None = None,
) -> Float:
    """Running maximum of log E over blocks (one value per prefix); ``phi`` (predictable, >= 1) divides
    each block's log likelihood ratio (see ``dispersion``)."""
    log_e = log_e_path(k_c, k_b, exposure_c, exposure_b, r0, two_sided=two_sided, phi=phi)
    return running_max(log_e)


def running_max(log_e: Float) -> Float:
    """The running maximum of a log e-process, floored at 0 (E = 1 before any evidence)."""
    return np.maximum.accumulate(np.maximum(log_e, 0.0)) if log_e.size else np.zeros(0)


#: Alternatives of the rate-floor test, as fractions of the floor delta (0: no errors at all).
FLOOR_GRID: tuple[float, ...] = (0.0, 0.25, 0.5)


def rate_dispersion(k: Float, n: Float, floor: float) -> Float:
    """phi_j for one arm's counts from blocks 0..j-1 only: the mean squared Pearson residual of k_j
    around n_j x the rate so far (half an event at the floor's rate added, so it starts at the floor
    and is never 0), shrunk toward PRIOR_PHI with PRIOR_BLOCKS pseudo-blocks, floored at 1. Blocks
    without events count (residual near 0), so a clean service earns phi -> 1 after a few blocks
    however large its blocks are; any predictable phi >= 1 keeps the e-process valid."""
    usable = n > 0
    kk, nn = np.where(usable, k, 0.0), np.where(usable, n, 0.0)
    seen_k = _before(kk)
    seen_n = _before(nn)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = (seen_k + 0.5) / (seen_n + 0.5 / floor)  # starts at the floor, then the observed rate
        residual2 = (kk - nn * rate) ** 2 / (nn * rate * (1.0 - rate))
    residual2 = np.where(usable & np.isfinite(residual2), residual2, 0.0)
    seen = _before(usable.astype(np.float64))
    squares = _before(residual2)
    return np.maximum(1.0, (squares + PRIOR_PHI * PRIOR_BLOCKS) / (seen + PRIOR_BLOCKS))


def log_e_rate_below(k: Float, n: Float, floor: float, *, phi: Float | None = None) -> Float:
    """log E (not maximised) against "the arm's event rate is at least ``floor``": a mixture over
    FLOOR_GRID x floor of binomial likelihood ratios, sum_j k_j ln(q/floor) + (n_j - k_j) ln((1-q)/(1-floor)),
    optionally tempered by a predictable ``phi`` >= 1 (Jensen keeps E[LR^(1/phi)] <= 1).

    For every rate p >= floor each alternative q < floor has a likelihood ratio with expectation <= 1
    (monotone likelihood ratio), so E is a test supermartingale for the whole null and
    {p : E_p < 1/alpha at every look} is a time-uniform upper confidence sequence for the rate. With no
    events E grows as (1 - floor)^(-n): about ln(3/alpha)/floor requests show the rate below the floor.
    """
    q = np.asarray(FLOOR_GRID, dtype=np.float64)[:, None] * floor
    kk, nn = np.where(n > 0, k, 0.0)[None, :], np.where(n > 0, n, 0.0)[None, :]
    terms = special.xlogy(kk, q / floor) + (nn - kk) * (np.log1p(-q) - math.log1p(-floor))
    if phi is not None:
        terms = terms / phi[None, :]
    if terms.shape[1] == 0:
        return np.zeros(0)
    return logsumexp_rows(np.cumsum(terms, axis=1) - math.log(q.shape[0]))


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
    phi = dispersion(k_c, k_b, share_c, share_b)
    up = log_e_process(k_c, k_b, share_c, share_b, edge, phi=phi)
    down = log_e_process(k_b, k_c, share_b, share_c, edge, phi=phi)
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
