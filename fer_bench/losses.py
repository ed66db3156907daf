"""Losses more than one method uses: one home, imported by the method files."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rank_regularization(
    weights: torch.Tensor, beta: float, margin: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """RR-loss and a mask of the low-importance group, for one batch of weights ``(B,)``."""
    n = weights.shape[0]
    if n < 2:  # no ranking in a batch of one
        return weights.sum() * 0, torch.zeros(n, dtype=torch.bool, device=weights.device)
    n_high = min(max(int(n * beta), 1), n - 1)
    order = torch.argsort(weights, descending=True)
    ranked = weights[order]
    loss = (margin - (ranked[:n_high].mean() - ranked[n_high:].mean())).clamp(min=0)
    low = torch.zeros(n, dtype=torch.bool, device=weights.device)
    low[order[n_high:]] = True
    return loss, low


def class_balanced_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-sample weights summing to one, every class present in the batch weighing the same."""
    # one_hot + sum rather than bincount: CUDA's bincount reads its size back to the host.
    counts = F.one_hot(labels, num_classes).sum(0).float()
    w = 1.0 / counts[labels]
    return w / w.sum()


def masked_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    known = ~torch.isnan(targets)
    loss = F.binary_cross_entropy_with_logits(logits, torch.nan_to_num(targets), reduction="none")
    return (loss * known).sum() / known.sum().clamp(min=1)


def masked_mse(pred: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    known = ~torch.isnan(targets)
    err = (pred - torch.nan_to_num(targets)) ** 2
    return (err * known).sum() / known.sum().clamp(min=1)


_LOG_2PI = 1.8378770664093453  # log(2 pi)


def _gmm_m_step(
    x: torch.Tensor, resp: torch.Tensor, reg_covar: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weights, means and variances of a 1-D Gaussian mixture from responsibilities ``(N, K)``
    (scikit-learn's estimates: counts padded by 10 eps, ``reg_covar`` added to each variance)."""
    counts = resp.sum(0) + 10 * torch.finfo(resp.dtype).eps
    means = (resp * x[:, None]).sum(0) / counts
    variances = (resp * (x[:, None] - means) ** 2).sum(0) / counts + reg_covar
    return counts / counts.sum(), means, variances


def _gmm_e_step(
    x: torch.Tensor, weights: torch.Tensor, means: torch.Tensor, variances: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample log-likelihood ``(N,)`` and log-responsibilities ``(N, K)``."""
    log_joint = weights.log() - 0.5 * (
        _LOG_2PI + variances.log() + (x[:, None] - means) ** 2 / variances
    )
    log_norm = torch.logsumexp(log_joint, dim=1)
    return log_norm, log_joint - log_norm[:, None]


def two_means_split(x: torch.Tensor) -> torch.Tensor:
    """Which of ``x`` (1-D, at least two values) fall in the upper of the two clusters that
    minimise the within-cluster sum of squares: the exact 1-D 2-means, from sorted prefix sums."""
    xs = torch.sort(x).values
    s1, s2 = torch.cumsum(xs, 0), torch.cumsum(xs * xs, 0)
    n_left = torch.arange(1, len(xs), device=x.device, dtype=x.dtype)
    left1, left2 = s1[:-1], s2[:-1]
    right1, right2 = s1[-1] - left1, s2[-1] - left2
    sse = left2 - left1**2 / n_left + right2 - right1**2 / (len(xs) - n_left)
    return x > xs.gather(0, torch.argmin(sse).view(1))  # gather: no host read of the index


def fit_gmm_1d(
    x: torch.Tensor, max_iter: int = 10, tol: float = 1e-2, reg_covar: float = 5e-4
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two-component 1-D Gaussian mixture fitted by EM on the device, without a host sync.

    Follows scikit-learn's ``GaussianMixture(n_components=2, max_iter, tol, reg_covar)`` (as
    DivideMix's official code calls it): parameters initialised from a hard 2-means split, then
    EM; EM stops once the mean log-likelihood moves less than ``tol`` between iterations, which
    here freezes the parameters with ``torch.where`` instead of leaving the loop, so the loop
    length never depends on tensor values. scikit-learn's k-means initialisation is random
    (k-means++ seeding, then Lloyd); this one is the exact 2-means split, deterministic.

    Returns weights ``(2,)``, means ``(2,)``, variances ``(2,)`` and the posterior ``(N, 2)``
    under the final parameters, all in float64.
    """
    x = x.detach().double().flatten()
    upper = two_means_split(x)
    resp = torch.stack([~upper, upper], dim=1).double()
    weights, means, variances = _gmm_m_step(x, resp, reg_covar)
    bound = x.new_full((), float("-inf"))
    done = torch.zeros((), dtype=torch.bool, device=x.device)
    for _ in range(max_iter):
        log_norm, log_resp = _gmm_e_step(x, weights, means, variances)
        new_weights, new_means, new_variances = _gmm_m_step(x, log_resp.exp(), reg_covar)
        new_bound = log_norm.mean()
        weights = torch.where(done, weights, new_weights)
        means = torch.where(done, means, new_means)
        variances = torch.where(done, variances, new_variances)
        converged = (new_bound - bound).abs() < tol
        bound = torch.where(done, bound, new_bound)
        done = done | converged
    _, log_resp = _gmm_e_step(x, weights, means, variances)
    return weights, means, variances, log_resp.exp()


def gmm_clean_probability(
    losses: torch.Tensor, max_iter: int = 10, tol: float = 1e-2, reg_covar: float = 5e-4
) -> torch.Tensor:
    """Posterior of the lower-mean component of a two-component GMM on min-max normalised
    per-sample ``losses`` (DivideMix's clean probability), float32 ``(N,)`` on their device."""
    x = losses.detach().double().flatten()
    if x.numel() < 2:  # nothing to divide
        return torch.ones_like(x, dtype=torch.float32)
    x = (x - x.min()) / (x.max() - x.min()).clamp(min=torch.finfo(x.dtype).tiny)
    _, means, _, posterior = fit_gmm_1d(x, max_iter, tol, reg_covar)
    clean = torch.argmin(means).expand(len(x), 1)
    return posterior.gather(1, clean).squeeze(1).float()


def generalized_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, q: float) -> torch.Tensor:
    """Per-sample GCE ``(1 - p_y^q) / q`` (Zhang & Sabuncu, NeurIPS 2018), ``(B,)``.

    Written as ``-expm1(q log p_y) / q``: the same value, exact where ``p_y`` underflows to 0
    (``p ** q`` would give an infinite gradient times zero, NaN) and accurate for small ``q``,
    where it tends to the cross-entropy ``-log p_y``."""
    log_p = logits.log_softmax(1).gather(1, labels[:, None]).squeeze(1)
    return -torch.expm1(q * log_p) / q
