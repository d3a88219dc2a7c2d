"""Every loss that trains, as small pure functions over tensors (their maths worked by hand in tests/test_losses.py).

Discriminative arms:
    bradley_terry(r_c, r_r)        = mean( -log σ(r_c - r_r) )                          (reward model)
    cost_loss(c_c, c_r, s_c, s_r)  = mean_{preference pairs}( -log σ(c_r - c_c) )
                                     + w · mean_{labelled} ( -log σ(s · c) )          (Safe RLHF cost model)
    triplet(a, p, n, margin)       = mean( max(0, d(a, p) - d(a, n) + margin) ),  d = 1 - cos   (contrastive)

Policies:
    token_logprobs(logits, y)      = log softmax(logits)[y], per token                  (every policy loss)
    next_token_nll(log p, n)       = −Σ_t log p(y_t) / n,  n = the tokens scored         (SFT)
    dpo_margin(πc, πr, ρc, ρr, β)  = β [(log πc − log ρc) − (log πr − log ρr)];  dpo_loss = mean(−log σ(margin))
    safe_rlhf_score(r, c, λ)       = (r − λ c) / (1 + λ)                                 (Safe RLHF, eq. 11 scaled)
    leave_one_out(s)               = s_i − mean_{j≠i} s_j over the K samples of a prompt
    policy_gradient_loss(A, log π) = −mean( A · log π(y|x) )                             (REINFORCE / RLOO)
    kl_shaped_scores(s, log π, log ρ, β) = s − β Σ_t (log π − log ρ)   (sequence KL folded into the score, RLOO's way)
    kl_penalty(log π, log ρ)       = Σ_t ½ (log π − log ρ)²   ("k2", per token: ∇ of the per-token KLs only)
                                   | Σ_t (e^x − x − 1), x = log ρ − log π   ("k3": its gradient is ∇ KL(ρ‖π))
    kl_estimate(log π, log ρ)      = Σ_t (e^x − x − 1): unbiased, ≥ 0 estimate of the value KL(π‖ρ) (logged)
    log_lambda_update(log λ, J_C, d, η, log λ_max)
                                   = min(log λ_max, log λ + η (J_C − d) λ)              (PPO-Lag's multiplier)

The KL term. Safe RLHF penalises the sequence-level KL(π‖ρ) = E_{y~π}[Σ_t log π(y_t|y_<t)/ρ(y_t|y_<t)]. Its
gradient is E_π[(Σ_t log π/ρ) ∇ log π(y)] (the score-function identity; E_π[∇ log π] = 0): the log-ratio of the
*whole* sequence weights every token's ∇ log π, so a token is also charged for the KL of the tokens that follow
it. Folding −β Σ_t log π/ρ into each sample's score before the leave-one-out baseline (kl_shaped_scores, the
RLOO convention) gives exactly that gradient (test_sequence_kl_gradient_by_hand works a 2-token case out). The
per-token ½(log π − log ρ)² ("k2") has E_π[Σ_t (log π/ρ)(y_t) ∇ log π(y_t|y_<t)], which drops the later tokens'
terms; differentiating k3 gives the reverse KL's gradient (as GRPO does). Both are kept as options.

In the cost loss the rejected response is the more harmful one, and s is the safety sign of a response:
+1 unsafe, -1 safe, 0 unknown (left out of the sign term). The sign term makes c > 0 mean unsafe and
c < 0 mean safe, as in Safe RLHF (Dai et al., 2023, eq. 6).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def bradley_terry(chosen_scores: torch.Tensor, rejected_scores: torch.Tensor) -> torch.Tensor:
    """-log P(chosen ≻ rejected) under Bradley–Terry, averaged over pairs. Shapes (B,), (B,) -> ()."""
    return -F.logsigmoid(chosen_scores - rejected_scores).mean()


def cost_loss(chosen_costs: torch.Tensor, rejected_costs: torch.Tensor, chosen_signs: torch.Tensor,
              rejected_signs: torch.Tensor, sign_weight: float = 1.0,
              preference: torch.Tensor | None = None, unsafe_weight: float = 1.0) -> torch.Tensor:
    """Bradley–Terry on costs (rejected costs more) over the pairs marked `preference` (all when None) + the
    safety-sign term over every labelled response, each unsafe one (s = +1) weighted `unsafe_weight` against a
    safe one's 1 (a weighted mean; n_safe / n_unsafe balances the classes, so that C = 0 is not pushed below
    the rarer class). Shapes (B,) x4, preference (B,) bool -> ()."""
    chosen_pref = preference if preference is not None else torch.ones_like(chosen_costs, dtype=torch.bool)
    terms = -F.logsigmoid(rejected_costs - chosen_costs)[chosen_pref]
    total = terms.mean() if terms.numel() else chosen_costs.sum() * 0
    costs = torch.cat([chosen_costs, rejected_costs])  # (2B,)
    signs = torch.cat([chosen_signs, rejected_signs]).to(costs.dtype)  # (2B,) in {-1, 0, +1}
    labelled = signs != 0
    if not labelled.any():
        return total
    signs, costs = signs[labelled], costs[labelled]
    weights = torch.where(signs > 0, unsafe_weight, 1.0).to(costs.dtype)
    sign_term = (weights * -F.logsigmoid(signs * costs)).sum() / weights.sum()
    return total + sign_weight * sign_term


def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return 1 - F.cosine_similarity(a, b, dim=-1)


def triplet(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float = 0.5) -> torch.Tensor:
    """Triplet loss with cosine distance. Shapes (B, D) x3 -> ()."""
    return F.relu(cosine_distance(anchor, positive) - cosine_distance(anchor, negative) + margin).mean()


# --------------------------------------------------------------------------- policies


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[target] for every position, without materialising the log-softmax of the whole
    vocabulary a second time. Shapes (N, T, V), (N, T) -> (N, T)."""
    logits = logits.float()
    return logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def next_token_nll(logprobs: torch.Tensor, normaliser: torch.Tensor | int | None = None) -> torch.Tensor:
    """−Σ log p(y_t) over the scored tokens / `normaliser` (their count when None; a Trainer's num_items_in_batch
    under gradient accumulation): the SFT loss. (N,) -> ()."""
    total = -logprobs.sum()
    return total / (max(logprobs.numel(), 1) if normaliser is None else normaliser)


def dpo_margin(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, reference_chosen: torch.Tensor,
               reference_rejected: torch.Tensor, beta: float) -> torch.Tensor:
    """DPO's implicit reward margin β[(log π/ρ)(y_c) − (log π/ρ)(y_r)], per pair.
    Sequence log-probs (B,) x4 -> (B,)."""
    return beta * ((policy_chosen - reference_chosen) - (policy_rejected - reference_rejected))


def dpo_loss(margins: torch.Tensor) -> torch.Tensor:
    """−log σ(margin), averaged over pairs (Rafailov et al., 2023, eq. 7). (B,) -> ()."""
    return -F.logsigmoid(margins).mean()


def safe_rlhf_score(rewards: torch.Tensor, costs: torch.Tensor, lam: float) -> torch.Tensor:
    """(R − λC) / (1 + λ): the Lagrangian, scaled so that its size does not grow with λ (Safe RLHF's PPO-Lag)."""
    return (rewards - lam * costs) / (1 + lam)


def leave_one_out(scores: torch.Tensor) -> torch.Tensor:
    """A_i = s_i − mean of the other K−1 scores of the same prompt. (B, K) -> (B, K)."""
    k = scores.shape[-1]
    return scores - (scores.sum(-1, keepdim=True) - scores) / (k - 1)


def policy_gradient_loss(advantages: torch.Tensor, sequence_logprobs: torch.Tensor) -> torch.Tensor:
    """−mean(A · log π(y|x)): the score-function estimator of −∇E[A]; A carries no gradient. (N,), (N,) -> ()."""
    return -(advantages.detach() * sequence_logprobs).mean()


def kl_penalty(logprobs: torch.Tensor, reference_logprobs: torch.Tensor, mask: torch.Tensor,
               estimator: str = "k2") -> torch.Tensor:
    """Per-sequence KL loss over response tokens (see the module docstring for which KL each one's gradient is).
    (N, T) x3 -> (N,)."""
    x = reference_logprobs - logprobs  # log ρ/π
    if estimator == "k2":
        per_token = 0.5 * x ** 2
    elif estimator == "k3":
        per_token = x.exp() - x - 1
    else:
        raise ValueError(f"unknown KL estimator '{estimator}' (k2 or k3)")
    return (per_token * mask).sum(-1)


def kl_estimate(logprobs: torch.Tensor, reference_logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """k3 = e^x − x − 1, x = log ρ/π, summed over response tokens: E_{y~π}[k3] = KL(π‖ρ), and k3 >= 0. -> (N,)."""
    with torch.no_grad():
        x = reference_logprobs - logprobs
        return ((x.exp() - x - 1) * mask).sum(-1)


def kl_shaped_scores(scores: torch.Tensor, logprobs: torch.Tensor, reference_logprobs: torch.Tensor,
                     mask: torch.Tensor, beta: float) -> torch.Tensor:
    """s − β Σ_t (log π − log ρ) over response tokens, no gradient through the penalty. (N,), (N, T) x3 -> (N,)."""
    with torch.no_grad():
        return scores - beta * ((logprobs - reference_logprobs) * mask).sum(-1)


def log_lambda_update(log_lambda: float, window_cost: float, threshold: float, lr: float,
                      log_lambda_max: float | None) -> float:
    """One SGD step on PPO-Lag's multiplier loss −(J_C − d)·e^{log λ} w.r.t. log λ: log λ rises while the mean
    episode cost J_C is above d and falls once it holds; λ = e^{log λ} is never 0; clamped at log λ_max."""
    raised = log_lambda + lr * (window_cost - threshold) * math.exp(log_lambda)
    return raised if log_lambda_max is None else min(raised, log_lambda_max)
