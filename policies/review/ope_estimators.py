r"""Off-policy estimators: what a target policy would have earned, estimated from decisions another policy logged.

The log holds, for each decision :math:`i = 1..n`: the context features :math:`x_i`, the action :math:`a_i` the
behaviour policy :math:`\mu` took, its probability :math:`p_i = \mu(a_i \mid x_i)` (the propensity), the reward
:math:`r_i`, and optionally the mask of allowed actions. The target policy :math:`\pi` gives its action
probabilities :math:`\pi(a \mid x_i)` on every logged context. With the importance weight
:math:`w_i = \pi(a_i \mid x_i) / p_i` (optionally clipped at :math:`M`: :math:`\min(w_i, M)`) and a reward model
:math:`\hat q(x, a)` fitted on the log (:func:`fit_reward_model`: ridge regression per action, cross-fitted; fraud-aware
when the log says which payments were fraud, see below), and :math:`\hat v_i = \sum_a \pi(a \mid x_i)\, \hat q(x_i, a)`:

==================  ===============================================================================================
estimator           value per decision
==================  ===============================================================================================
``ips``             :math:`\frac1n \sum_i w_i r_i` — unbiased when propensities are right and :math:`\mu` covers
                    :math:`\pi`; variance grows with the weights.
``snips``           :math:`\sum_i w_i r_i \,/\, \sum_i w_i` — self-normalised: slightly biased, far less variance.
``dm``              :math:`\frac1n \sum_i \hat v_i` — direct method: low variance, biased as far as the model is.
``dr``              :math:`\frac1n \sum_i [\hat v_i + w_i (r_i - \hat q(x_i, a_i))]` — doubly robust: unbiased if
                    either the propensities or the reward model are right.
``sndr``            :math:`\frac1n \sum_i \hat v_i + \sum_i w_i (r_i - \hat q(x_i, a_i)) \,/\, \sum_i w_i`
                    — DR with a self-normalised correction.
``switch_dr``       :math:`\frac1n \sum_i [\hat v_i + w_i (r_i - \hat q(x_i, a_i))\, 1\{w_i \le \tau\}]` — DR where the
                    weight is small, the model alone where the weight exceeds :math:`\tau` (Wang et al., 2017).
==================  ===============================================================================================

**Fraud-aware reward model.** Fraud is a few payments in ten thousand and its losses are heavy-tailed, thousands
of times a routing margin: the few fraud payments decide a policy's value, and a log rarely shows the target's
choice for them (an epsilon-greedy logger explores each route for a fraud payment with probability about
:math:`\epsilon / k`). No estimator can learn "what fraud costs on this route" from payments that never went
there; a model can, if it shares what routes have in common. With :class:`FraudLabels` (which payments were
fraud, which were sent, their amounts, the fraud loss inside each reward, and each action's loss class: cards,
irrevocable rails, revocable rails) the model is

.. math::

    \hat q(x, a) = \beta_a^\top z(x) + b_a \;-\; 1\{\text{fraud}\}\,\text{amount}\;\hat p_a(x)\;\hat s_{g(a)},
    \qquad \hat s_g = \frac{L_g + k \bar s \bar A}{A_g + k \bar A}

with the ridge part fitted on the rewards without their fraud losses; :math:`\hat p_a(x)` the probability that
action :math:`a` sends the payment (its money moves: approved, not expired; a ridge model per action on the
0/1 outcome of every logged payment, clipped to [0, 1]); and :math:`\hat s_g` the share of a sent fraud's
amount that class :math:`g` lost (:math:`L_g` losses over :math:`A_g` amounts of the logged frauds sent that
way), shrunk towards the share over all classes :math:`\bar s` by :math:`k` = :data:`FRAUD_PRIOR_PAYMENTS`
payments of the mean fraud amount :math:`\bar A`. Whether a payment is fraud is settled before it is routed
and no route changes it, so it is context like any other (known by the time the losses are); DR stays unbiased
whatever the model, and the model carries what fraud costs to the routes the log never tried with it.

The evaluation with intervals and diagnostics is :func:`payroute.policies.review.ope.evaluate_policy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from payroute.errors import PayrouteError
from payroute.policies.logs.reading import MIN_PROPENSITY, FraudLabels

PROB_SUM_TOL = 1e-4  # target probabilities from float32 softmaxes sum to 1 within this
MASKED_PROB_TOL = 1e-6
MAX_ABS_REWARD = 1e18
"""Largest reward magnitude accepted: with weights below 1 / MIN_PROPENSITY every sum stays finite."""
ESTIMATORS = ("ips", "snips", "dm", "dr", "sndr", "switch_dr")
MODEL_ESTIMATORS = ("dm", "dr", "sndr", "switch_dr")
FRAUD_PRIOR_PAYMENTS = 3.0
"""Shrinkage of a loss class's fraud-loss share towards the pooled share, in payments of the mean fraud amount."""

# columns of the per-decision term matrix whose sums every estimator is a function of
_ONE, _WR, _W, _V, _WRES, _SWITCH, _R = range(7)


# ====================================================================== reward model
@dataclass(frozen=True)
class RidgeRewardModel:
    r"""Per-action linear reward model :math:`\hat q(x, a) = \beta_a^\top z(x) + b_a` on standardised features
    :math:`z`, fitted by ridge regression (penalty ``alpha`` on :math:`\beta_a`, none on the intercept). An action
    never logged predicts the mean logged reward."""

    coef: np.ndarray  # (n_actions, d)
    intercept: np.ndarray  # (n_actions,)
    feature_mean: np.ndarray
    feature_scale: np.ndarray

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Predicted reward of every action, ``(n, n_actions)``."""
        z = (np.asarray(features, dtype=np.float64) - self.feature_mean) / self.feature_scale
        return z @ self.coef.T + self.intercept


def fit_ridge(
    features: np.ndarray, actions: np.ndarray, rewards: np.ndarray, n_actions: int, alpha: float = 1.0
) -> RidgeRewardModel:
    r"""Ridge regression per action: :math:`\beta_a = (Z_a^\top Z_a + \alpha I)^{-1} Z_a^\top (r_a - \bar r_a)`
    on the centred rows that took action :math:`a`, intercept :math:`b_a = \bar r_a - \beta_a^\top \bar z_a`."""
    x = np.asarray(features, dtype=np.float64)
    n, d = x.shape
    mean = x.mean(axis=0) if n else np.zeros(d)
    scale = x.std(axis=0) if n else np.ones(d)
    scale = np.where(scale > 0, scale, 1.0)
    z = (x - mean) / scale
    overall = float(rewards.mean()) if n else 0.0
    coef = np.zeros((n_actions, d))
    intercept = np.full(n_actions, overall)
    order = np.argsort(actions, kind="stable")
    bounds = np.searchsorted(actions[order], np.arange(n_actions + 1))
    for a in range(n_actions):
        rows = order[bounds[a] : bounds[a + 1]]
        if rows.size == 0:
            continue
        za, ra = z[rows], rewards[rows]
        zbar, rbar = za.mean(axis=0), float(ra.mean())
        zc = za - zbar
        beta = np.linalg.solve(zc.T @ zc + alpha * np.eye(d), zc.T @ (ra - rbar)) if d else np.zeros(0)
        coef[a] = beta
        intercept[a] = rbar - beta @ zbar
    return RidgeRewardModel(coef, intercept, mean, scale)


def fraud_loss_shares(labels: FraudLabels, actions: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    r"""The share of a sent fraud's amount lost on each loss class, :math:`\hat s_g` (module docstring), from
    ``rows``."""
    rows = np.arange(actions.shape[0]) if rows is None else rows
    fraud = rows[labels.is_fraud[rows] & labels.sent[rows]]
    n_groups = int(labels.action_groups.max()) + 1
    if fraud.size == 0:
        return np.zeros(n_groups)
    group = labels.action_groups[actions[fraud]]
    amount, loss = labels.amounts[fraud], labels.losses[fraud]
    pooled = loss.sum() / amount.sum() if amount.sum() > 0 else 0.0
    prior = FRAUD_PRIOR_PAYMENTS * amount.mean()
    lost = np.bincount(group, weights=loss, minlength=n_groups)
    sent = np.bincount(group, weights=amount, minlength=n_groups)
    return (lost + prior * pooled) / (sent + prior) if prior > 0 else np.full(n_groups, pooled)


def _fit_predict(
    x: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    n_actions: int,
    alpha: float,
    fraud: FraudLabels | None,
    train: np.ndarray,
    test: np.ndarray,
) -> np.ndarray:
    if fraud is None:
        return fit_ridge(x[train], actions[train], rewards[train], n_actions, alpha).predict(x[test])
    rest = rewards + np.where(fraud.is_fraud, fraud.losses, 0.0)  # the reward without its fraud loss
    q = fit_ridge(x[train], actions[train], rest[train], n_actions, alpha).predict(x[test])
    sent = fit_ridge(x[train], actions[train], fraud.sent[train].astype(np.float64), n_actions, alpha)
    p_sent = np.clip(sent.predict(x[test]), 0.0, 1.0)
    share = fraud_loss_shares(fraud, actions, train)[fraud.action_groups]
    exposed = np.where(fraud.is_fraud[test], fraud.amounts[test], 0.0)
    return q - exposed[:, None] * p_sent * share[None, :]


def fit_reward_model(
    features: np.ndarray | None,
    actions: np.ndarray,
    rewards: np.ndarray,
    n_actions: int,
    *,
    alpha: float = 1.0,
    folds: int = 2,
    seed: int = 0,
    fraud: FraudLabels | None = None,
) -> np.ndarray:
    r"""Cross-fitted reward estimates :math:`\hat q(x_i, a)` for every logged decision and action, ``(n, A)``.

    The log is split into ``folds`` random parts; each part is predicted by a :func:`fit_ridge` model fitted on the
    others, so no decision's own reward enters its estimate (``folds=1`` fits and predicts on the whole log).
    ``features=None`` gives the per-action mean reward. With ``fraud`` labels the model is fraud-aware (module
    docstring): the ridge part on the rewards without their fraud losses, minus each fraud's expected loss on
    each action: the probability that the action sends it times its loss class's share of the amount.
    """
    actions = np.asarray(actions, dtype=np.int64)
    rewards = np.asarray(rewards, dtype=np.float64)
    n = actions.shape[0]
    x = np.zeros((n, 0)) if features is None else np.asarray(features, dtype=np.float64)
    if fraud is not None:
        fraud = fraud.checked(n, n_actions)
    if folds < 1:
        raise PayrouteError(f"folds must be >= 1, got {folds}")
    everything = np.arange(n)
    if folds == 1 or n < 2 * folds:
        return _fit_predict(x, actions, rewards, n_actions, alpha, fraud, everything, everything)
    part = np.empty(n, dtype=np.int64)
    part[np.random.default_rng(seed).permutation(n)] = np.arange(n) % folds
    out = np.empty((n, n_actions))
    for k in range(folds):
        test = part == k
        out[test] = _fit_predict(
            x, actions, rewards, n_actions, alpha, fraud, everything[~test], everything[test]
        )
    return out


# ====================================================================== point estimators
def importance_weights(actions: np.ndarray, propensities: np.ndarray, target_probs: np.ndarray) -> np.ndarray:
    r""":math:`w_i = \pi(a_i \mid x_i) / \mu(a_i \mid x_i)`."""
    return target_probs[np.arange(actions.shape[0]), actions] / propensities


def _clip(w: np.ndarray, max_weight: float | None) -> np.ndarray:
    return w if max_weight is None else np.minimum(w, max_weight)


def ips(rewards, actions, propensities, target_probs, *, max_weight: float | None = None) -> float:
    r"""Inverse propensity scoring: :math:`\frac1n \sum_i w_i r_i`."""
    r, a, p, pi, _ = validate_logged_arrays(rewards, actions, propensities, target_probs)
    return float(np.mean(_clip(importance_weights(a, p, pi), max_weight) * r))


def snips(rewards, actions, propensities, target_probs, *, max_weight: float | None = None) -> float:
    r"""Self-normalised IPS: :math:`\sum_i w_i r_i / \sum_i w_i` (NaN when every weight is 0)."""
    r, a, p, pi, _ = validate_logged_arrays(rewards, actions, propensities, target_probs)
    w = _clip(importance_weights(a, p, pi), max_weight)
    return _ratio(np.sum(w * r), np.sum(w))


def dm(target_probs, reward_estimates) -> float:
    r"""Direct method: :math:`\frac1n \sum_i \sum_a \pi(a \mid x_i)\, \hat q(x_i, a)`."""
    pi = np.asarray(target_probs, dtype=np.float64)
    q = _reward_estimates(reward_estimates, pi.shape)
    return float(np.mean(np.sum(pi * q, axis=1)))


def dr(
    rewards, actions, propensities, target_probs, reward_estimates, *, max_weight: float | None = None
) -> float:
    r"""Doubly robust: :math:`\frac1n \sum_i [\hat v_i + w_i (r_i - \hat q(x_i, a_i))]`."""
    t = _checked_terms(rewards, actions, propensities, target_probs, reward_estimates, max_weight, np.inf)
    return float(np.mean(t[:, _V] + t[:, _WRES]))


def sndr(
    rewards, actions, propensities, target_probs, reward_estimates, *, max_weight: float | None = None
) -> float:
    r"""Self-normalised DR: :math:`\frac1n \sum_i \hat v_i + \sum_i w_i (r_i - \hat q(x_i, a_i)) / \sum_i w_i`."""
    t = _checked_terms(rewards, actions, propensities, target_probs, reward_estimates, max_weight, np.inf)
    return float(np.mean(t[:, _V])) + _ratio(float(t[:, _WRES].sum()), float(t[:, _W].sum()))


def switch_dr(rewards, actions, propensities, target_probs, reward_estimates, *, tau: float = 10.0) -> float:
    r"""Switch-DR: :math:`\frac1n \sum_i [\hat v_i + w_i (r_i - \hat q(x_i, a_i)) 1\{w_i \le \tau\}]`."""
    t = _checked_terms(rewards, actions, propensities, target_probs, reward_estimates, None, tau)
    return float(np.mean(t[:, _V] + t[:, _SWITCH]))


def _ratio(num: Any, den: Any) -> Any:
    """num / den, NaN where den is 0 (a self-normalised estimator when every weight is 0)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den != 0, num / den, np.nan)
    return out if out.ndim else float(out)


def _reward_estimates(reward_estimates: Any, shape: tuple[int, ...]) -> np.ndarray:
    q = np.asarray(reward_estimates, dtype=np.float64)
    if q.shape != shape or not np.isfinite(q).all():
        raise PayrouteError(
            f"reward_estimates must be a finite {shape} array like target_probs, got shape {q.shape}"
        )
    return q


def _checked_terms(
    rewards: Any,
    actions: Any,
    propensities: Any,
    target_probs: Any,
    reward_estimates: Any,
    max_weight: Any,
    tau: float,
) -> np.ndarray:
    r, a, p, pi, _ = validate_logged_arrays(rewards, actions, propensities, target_probs)
    return _terms(r, a, p, pi, _reward_estimates(reward_estimates, pi.shape), max_weight, tau)


def _terms(
    rewards: np.ndarray,
    actions: np.ndarray,
    propensities: np.ndarray,
    target_probs: np.ndarray,
    reward_estimates: np.ndarray | None,
    max_weight: float | None,
    tau: float,
) -> np.ndarray:
    """Per-decision terms, one column each: 1, w r, w, v_hat, w (r - q_hat), switch correction, r."""
    n = rewards.shape[0]
    raw = importance_weights(actions, propensities, target_probs)
    w = _clip(raw, max_weight)
    t = np.empty((n, 7))
    t[:, _ONE] = 1.0
    t[:, _WR] = w * rewards
    t[:, _W] = w
    t[:, _R] = rewards
    if reward_estimates is None:
        t[:, _V] = t[:, _WRES] = t[:, _SWITCH] = np.nan
        return t
    t[:, _V] = np.einsum("ij,ij->i", target_probs, reward_estimates)
    residual = rewards - reward_estimates[np.arange(n), actions]
    t[:, _WRES] = w * residual
    t[:, _SWITCH] = np.where(raw <= tau, raw * residual, 0.0)
    return t


def _estimates_from_sums(s: np.ndarray) -> dict[str, np.ndarray]:
    """Every estimator (and the logged mean) from the column sums of the term matrix; ``s`` is ``(..., 7)``."""
    n = s[..., _ONE]
    return {
        "ips": s[..., _WR] / n,
        "snips": _ratio(s[..., _WR], s[..., _W]),
        "dm": s[..., _V] / n,
        "dr": (s[..., _V] + s[..., _WRES]) / n,
        "sndr": s[..., _V] / n + _ratio(s[..., _WRES], s[..., _W]),
        "switch_dr": (s[..., _V] + s[..., _SWITCH]) / n,
        "logged_mean": s[..., _R] / n,
    }


def validate_logged_arrays(
    rewards: Any, actions: Any, propensities: Any, target_probs: Any, masks: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Check and convert OPE inputs; a problem raises :class:`PayrouteError` naming the argument and the first row."""
    pi = np.asarray(target_probs, dtype=np.float64)
    if pi.ndim != 2 or pi.shape[0] == 0 or pi.shape[1] < 1:
        raise PayrouteError(f"target_probs must be an (n, n_actions) array with n > 0, got shape {pi.shape}")
    n, n_actions = pi.shape
    r = np.asarray(rewards, dtype=np.float64)
    p = np.asarray(propensities, dtype=np.float64)
    a_raw = np.asarray(actions)
    for name, arr in (("rewards", r), ("actions", a_raw), ("propensities", p)):
        if arr.shape != (n,):
            raise PayrouteError(f"{name} must have shape ({n},) like target_probs' rows, got {arr.shape}")
    if not np.issubdtype(a_raw.dtype, np.integer):
        raise PayrouteError(f"actions must be integers, got dtype {a_raw.dtype}")
    a = a_raw.astype(np.int64)
    _first_bad("rewards", ~np.isfinite(r), r, "is not finite")
    _first_bad("rewards", np.abs(r) > MAX_ABS_REWARD, r, f"exceeds {MAX_ABS_REWARD:g} in magnitude")
    _first_bad("actions", (a < 0) | (a >= n_actions), a, f"is outside 0..{n_actions - 1}")
    ok = (p >= MIN_PROPENSITY) & (p <= 1)  # a tinier one gives weights that overflow the diagnostics
    _first_bad("propensities", ~ok, p, f"is outside [{MIN_PROPENSITY:g}, 1]")
    _first_bad(
        "target_probs", ~np.isfinite(pi).all(axis=1) | (pi < 0).any(axis=1), pi, "has a negative or NaN entry"
    )
    _first_bad("target_probs", np.abs(pi.sum(axis=1) - 1) > PROB_SUM_TOL, pi, "does not sum to 1")
    m = None
    if masks is not None:
        m = np.asarray(masks)
        if m.shape != (n, n_actions):
            raise PayrouteError(f"masks must have shape {(n, n_actions)}, got {m.shape}")
        m = m.astype(bool)
        _first_bad("masks", ~m[np.arange(n), a], a, "does not allow the logged action")
        _first_bad(
            "target_probs", (pi * ~m).sum(axis=1) > MASKED_PROB_TOL, pi, "puts probability on a masked action"
        )
    return r, a, p, pi, m


def _first_bad(name: str, bad: np.ndarray, values: np.ndarray, problem: str) -> None:
    if bad.any():
        i = int(np.argmax(bad))
        raise PayrouteError(
            f"{name}: {int(bad.sum())} row(s) where the value {problem} (first: row {i}, {values[i].tolist()!r})"
        )
