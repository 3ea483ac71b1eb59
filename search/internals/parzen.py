"""The log density of Optuna's Parzen mixture, bit for bit as Optuna computes it, with fewer passes.

`_MixtureOfProductDistribution.log_pdf` evaluates every candidate against every kernel: at 5,000
finished trials that is 24 x 5,000 x (number of parameters) values, and it makes ~15 temporary
arrays of that size (a log per categorical value, the truncated normal's select and broadcasts).
This version takes the categorical logs once per kernel instead of once per candidate and kernel,
and evaluates the continuous terms in place, skipping the select when no candidate lies outside its
range. Every float operation and its order are Optuna's own, so the result is identical
(tests/test_parzen.py); anything it does not cover (a kernel of zero width, a candidate out of
range) is left to Optuna's code.

`ColumnParzen` builds the same estimators as Optuna's `_ParzenEstimator`, with each categorical
parameter's kernel weights computed once per choice and gathered, rather than once per observation,
and each numerical kernel's width put back in observation order by a scatter, not a second sort.
"""

from __future__ import annotations

import numpy as np
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers._tpe import _truncnorm
from optuna.samplers._tpe.parzen_estimator import EPS, _ParzenEstimator, _ParzenEstimatorParameters
from optuna.samplers._tpe.probability_distributions import (
    _BatchedCategoricalDistributions,
    _BatchedDiscreteTruncLogNormDistributions,
    _BatchedDiscreteTruncNormDistributions,
    _BatchedTruncLogNormDistributions,
    _BatchedTruncNormDistributions,
    _log_gauss_mass_unique,
    _MixtureOfProductDistribution,
    _unique_inverse_2d,
)


def mixture_log_pdf(mix: _MixtureOfProductDistribution, x: np.ndarray) -> np.ndarray:
    """log p(x) of each row of x (candidates x parameters, internal representation)."""
    out = np.zeros((len(x), len(mix.weights)), dtype=np.float64)
    cont = []
    for i, d in enumerate(mix.distributions):
        if isinstance(d, _BatchedCategoricalDistributions):
            log_w = np.ascontiguousarray(np.log(d.weights).T)  # choices x kernels
            out += log_w[x[:, i].astype(np.int64)]
        elif d.step == 0.0:
            cont.append(i)
        else:
            _add_discrete(out, d, x[:, i])
    if cont:
        out += _continuous([mix.distributions[i] for i in cont], x[:, cont])
    out += np.log(mix.weights[np.newaxis])
    max_ = out.max(axis=1)
    max_[np.isneginf(max_)] = 0  # as Optuna: no (-inf) - (-inf) where every kernel gives zero
    with np.errstate(divide="ignore"):
        return np.log(np.exp(out - max_[:, None]).sum(axis=1)) + max_


def _add_discrete(out: np.ndarray, d, xi: np.ndarray) -> None:
    """Optuna's own terms for a stepped parameter (it already works on unique values), added to
    `out` in Optuna's order: (out + mass of the step) - mass of the range."""
    xi_uniq, xi_inv = np.unique(xi, return_inverse=True)
    mu_uniq, sigma_uniq, mu_sigma_inv = _unique_inverse_2d(d.mu, d.sigma)
    step = d.step
    left = np.log(xi_uniq - step / 2) if d.is_log else (xi_uniq - step / 2)
    right = np.log(xi_uniq + step / 2) if d.is_log else (xi_uniq + step / 2)
    out += _log_gauss_mass_unique((left[:, np.newaxis] - mu_uniq) / sigma_uniq,
                                  (right[:, np.newaxis] - mu_uniq) / sigma_uniq)[np.ix_(xi_inv, mu_sigma_inv)]
    out -= _truncnorm._log_gauss_mass((d.adapted_low - mu_uniq) / sigma_uniq,
                                      (d.adapted_high - mu_uniq) / sigma_uniq)[mu_sigma_inv]


def _continuous(dists: list, x: np.ndarray) -> np.ndarray:
    """Sum over the continuous parameters of _truncnorm.logpdf, computed in place."""
    xc = np.stack([np.log(x[:, j]) if d.is_log else x[:, j] for j, d in enumerate(dists)], axis=1)
    low = np.asarray([d.adapted_low for d in dists])
    high = np.asarray([d.adapted_high for d in dists])
    mu = np.asarray([d.mu for d in dists]).T  # kernels x parameters
    sigma = np.asarray([d.sigma for d in dists]).T
    a, b = (low - mu) / sigma, (high - mu) / sigma
    # Rounding is monotone, so low <= x <= high gives a <= z <= b for every kernel: Optuna's select
    # would change nothing. A kernel with a == b (NaN there) or a candidate outside goes its way.
    if np.any(a == b) or np.any(xc < low) or np.any(xc > high):
        return _truncnorm.logpdf(xc[:, np.newaxis, :], a=a, b=b, loc=mu, scale=sigma).sum(axis=-1)
    z = np.subtract(xc[:, np.newaxis, :], mu)  # -(z ** 2) / 2 - logC - log_mass - log(sigma), in order
    z /= sigma
    np.multiply(z, z, out=z)
    z *= -0.5  # the same float as -(z * z) / 2: both are exact halvings, rounded alike
    z -= _truncnorm._norm_pdf_logC
    z -= _truncnorm._log_gauss_mass(a, b)
    z -= np.log(sigma)
    return z.sum(axis=-1)


class ColumnParzen(_ParzenEstimator):
    def _calculate_categorical_distributions(self, observations: np.ndarray, param_name: str,
                                             search_space: CategoricalDistribution,
                                             parameters: _ParzenEstimatorParameters):
        """Optuna's weights (prior / n_kernels everywhere, +1 at the observed choice, each row
        normalised): every observation's row is one of n_choices rows, so those are computed once,
        with the same operations, and gathered."""
        if len(observations) == 0:
            return super()._calculate_categorical_distributions(observations, param_name, search_space, parameters)
        n_choices = len(search_space.choices)
        table = np.full((n_choices + 1, n_choices), parameters.prior_weight / (len(observations) + 1))
        table[np.arange(n_choices), np.arange(n_choices)] += 1  # row c: an observation of choice c; last: the prior
        row_sums = table.sum(axis=1, keepdims=True)
        table /= np.where(row_sums == 0, 1, row_sums)
        return _BatchedCategoricalDistributions(table[np.append(observations.astype(int), n_choices)])

    def _calculate_numerical_distributions(self, observations: np.ndarray,
                                           search_space: FloatDistribution | IntDistribution,
                                           parameters: _ParzenEstimatorParameters):
        """Optuna's kernels: one per observation, as wide as the larger gap to its sorted neighbours
        (the range's ends included), clipped, plus a prior kernel over the whole range."""
        step, low, high = search_space.step, search_space.low, search_space.high
        if step is not None:
            low, high = low - step / 2, high + step / 2
        if search_space.log:
            observations, low, high = np.log(observations), np.log(low), np.log(high)
        order = np.argsort(observations)
        ends = np.concatenate([[low], observations[order], [high]])
        gaps = ends[1:] - ends[:-1]
        by_value = np.maximum(gaps[:-1], gaps[1:])
        if not parameters.consider_endpoints and len(ends) >= 4:
            by_value[0], by_value[-1] = ends[2] - ends[1], ends[-2] - ends[-3]
        sigmas = np.empty_like(by_value)
        sigmas[order] = by_value  # the same as by_value[argsort(order)]
        n_kernels = len(observations) + 1
        min_sigma = (high - low) / min(100.0, 1.0 + n_kernels) if parameters.consider_magic_clip else EPS
        sigmas = np.asarray(np.clip(sigmas, min_sigma, high - low))
        mus, sigmas = np.append(observations, [0.5 * (low + high)]), np.append(sigmas, [high - low])
        low, high = search_space.low, search_space.high
        if step is None:
            cls = _BatchedTruncLogNormDistributions if search_space.log else _BatchedTruncNormDistributions
            return cls(mus, sigmas, low, high)
        cls = _BatchedDiscreteTruncLogNormDistributions if search_space.log else _BatchedDiscreteTruncNormDistributions
        return cls(mus, sigmas, low, high, step)
