"""Losses of the discriminative arms, as small pure functions over score tensors.

    bradley_terry(r_c, r_r)        = mean( -log σ(r_c - r_r) )                          (reward model)
    cost_loss(c_c, c_r, s_c, s_r)  = mean( -log σ(c_r - c_c) )
                                     + w · mean_{labelled} ( -log σ(s · c) )          (Safe RLHF cost model)
    triplet(a, p, n, margin)       = mean( max(0, d(a, p) - d(a, n) + margin) ),  d = 1 - cos   (contrastive)

In the cost loss the rejected response is the more harmful one, and s is the safety sign of a response:
+1 unsafe, -1 safe, 0 unknown (left out of the sign term). The sign term makes c > 0 mean unsafe and
c < 0 mean safe, as in Safe RLHF (Dai et al., 2023, eq. 6).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry(chosen_scores: torch.Tensor, rejected_scores: torch.Tensor) -> torch.Tensor:
    """-log P(chosen ≻ rejected) under Bradley–Terry, averaged over pairs. Shapes (B,), (B,) -> ()."""
    return -F.logsigmoid(chosen_scores - rejected_scores).mean()


def cost_loss(chosen_costs: torch.Tensor, rejected_costs: torch.Tensor, chosen_signs: torch.Tensor,
              rejected_signs: torch.Tensor, sign_weight: float = 1.0) -> torch.Tensor:
    """Bradley–Terry on costs (rejected costs more) + the safety-sign term over labelled responses."""
    preference = -F.logsigmoid(rejected_costs - chosen_costs).mean()
    costs = torch.cat([chosen_costs, rejected_costs])  # (2B,)
    signs = torch.cat([chosen_signs, rejected_signs]).to(costs.dtype)  # (2B,) in {-1, 0, +1}
    labelled = signs != 0
    if not labelled.any():
        return preference
    sign_term = -F.logsigmoid(signs[labelled] * costs[labelled]).mean()
    return preference + sign_weight * sign_term


def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return 1 - F.cosine_similarity(a, b, dim=-1)


def triplet(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float = 0.5) -> torch.Tensor:
    """Triplet loss with cosine distance. Shapes (B, D) x3 -> ()."""
    return F.relu(cosine_distance(anchor, positive) - cosine_distance(anchor, negative) + margin).mean()
