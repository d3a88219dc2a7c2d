import math

import pytest
import torch

from safealign import losses
from safealign.losses import bradley_terry, cosine_distance, cost_loss, triplet


def nll_sigmoid(x: float) -> float:
    return math.log1p(math.exp(-x))  # -log σ(x)


def test_bradley_terry_worked_by_hand():
    # pairs (r_c, r_r) = (2, 0) and (0, 0): -log σ(2) = 0.126928, -log σ(0) = log 2 = 0.693147; mean 0.410038
    loss = bradley_terry(torch.tensor([2.0, 0.0]), torch.tensor([0.0, 0.0]))
    assert loss.item() == pytest.approx((0.126928 + 0.693147) / 2, abs=1e-6)
    assert bradley_terry(torch.tensor([5.0]), torch.tensor([-5.0])) < bradley_terry(torch.tensor([-5.0]),
                                                                                    torch.tensor([5.0]))


def test_bradley_terry_gradient_raises_chosen_and_lowers_rejected():
    chosen, rejected = torch.zeros(3, requires_grad=True), torch.zeros(3, requires_grad=True)
    bradley_terry(chosen, rejected).backward()
    # d/dr_c of -log σ(r_c - r_r) = -(1 - σ(0)) = -0.5, over a mean of 3 pairs: -1/6
    assert torch.allclose(chosen.grad, torch.full((3,), -1 / 6)) and torch.allclose(rejected.grad,
                                                                                    torch.full((3,), 1 / 6))


def test_cost_loss_worked_by_hand():
    # one pair: chosen cost -1 (safe, s=-1), rejected cost +1 (unsafe, s=+1)
    # preference: -log σ(c_r - c_c) = -log σ(2) = 0.126928
    # sign term:  mean(-log σ(-1 * -1), -log σ(+1 * +1)) = -log σ(1) = 0.313262
    c_c, c_r = torch.tensor([-1.0]), torch.tensor([1.0])
    loss = cost_loss(c_c, c_r, torch.tensor([-1]), torch.tensor([1]))
    assert loss.item() == pytest.approx(nll_sigmoid(2) + nll_sigmoid(1), abs=1e-6)
    assert cost_loss(c_c, c_r, torch.tensor([-1]), torch.tensor([1]), sign_weight=0.5).item() == pytest.approx(
        nll_sigmoid(2) + 0.5 * nll_sigmoid(1), abs=1e-6)
    # an unknown sign (0) is left out of the sign term: only the rejected response's term remains
    assert cost_loss(c_c, c_r, torch.tensor([0]), torch.tensor([1])).item() == pytest.approx(
        nll_sigmoid(2) + nll_sigmoid(1), abs=1e-6)
    # no labelled response: preference term only
    assert cost_loss(c_c, c_r, torch.tensor([0]), torch.tensor([0])).item() == pytest.approx(nll_sigmoid(2), abs=1e-6)
    # a safe response with positive cost is penalised: s=-1, c=+2 -> -log σ(-2) = 2.126928
    assert cost_loss(torch.tensor([2.0]), torch.tensor([2.0]), torch.tensor([-1]), torch.tensor([0])).item() == \
        pytest.approx(nll_sigmoid(0) + nll_sigmoid(-2), abs=1e-6)


def test_cost_loss_weights_unsafe_sign_terms_by_hand():
    # two pairs, preference off; labelled costs: safe -1, safe +1, unsafe +1, unsafe... (rejected of pair 2 unknown)
    # terms -log σ(s c): safe -1 -> -log σ(1); safe +1 -> -log σ(-1); unsafe +1 -> -log σ(1)
    chosen, rejected = torch.tensor([-1.0, 1.0]), torch.tensor([1.0, 3.0])
    c_signs, r_signs, off = torch.tensor([-1, -1]), torch.tensor([1, 0]), torch.tensor([False, False])
    plain = (nll_sigmoid(1) + nll_sigmoid(-1) + nll_sigmoid(1)) / 3
    assert cost_loss(chosen, rejected, c_signs, r_signs, preference=off).item() == pytest.approx(plain, abs=1e-6)
    # unsafe_weight 2 (n_safe / n_unsafe = 2 / 1): (1·l_safe1 + 1·l_safe2 + 2·l_unsafe) / (1 + 1 + 2)
    balanced = (nll_sigmoid(1) + nll_sigmoid(-1) + 2 * nll_sigmoid(1)) / 4
    assert cost_loss(chosen, rejected, c_signs, r_signs, preference=off, unsafe_weight=2.0).item() == pytest.approx(
        balanced, abs=1e-6)
    # each class then carries half the weight: the gradient on the unsafe cost is 2/4 · -(1 - σ(1)) per unit
    costs = torch.tensor([-1.0, 1.0, 1.0, 3.0], requires_grad=True)
    cost_loss(costs[:2], costs[2:], c_signs, r_signs, preference=off, unsafe_weight=2.0).backward()
    sigma1 = 1 / (1 + math.exp(-1))
    assert costs.grad.tolist() == pytest.approx([(1 - sigma1) / 4, sigma1 / 4, -2 * (1 - sigma1) / 4, 0.0], abs=1e-6)


def test_triplet_worked_by_hand():
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # d(a, p) = 0, then 1
    n = torch.tensor([[0.0, 1.0], [2.0, 0.0]])  # d(a, n) = 1, then 0 (cosine ignores length)
    # max(0, 0 - 1 + 0.5) = 0 and max(0, 1 - 0 + 0.5) = 1.5: mean 0.75
    assert triplet(a, p, n, margin=0.5).item() == pytest.approx(0.75)
    assert cosine_distance(torch.tensor([1.0, 1.0]), torch.tensor([-1.0, -1.0])).item() == pytest.approx(2.0)


def test_triplet_matches_sentence_transformers():
    from sentence_transformers.sentence_transformer.losses import TripletDistanceMetric, TripletLoss

    torch.manual_seed(0)
    a, p, n = torch.randn(3, 8, 16).unbind(0)
    theirs = TripletLoss(model=None, distance_metric=TripletDistanceMetric.COSINE, triplet_margin=0.5)
    assert triplet(a, p, n, 0.5).item() == pytest.approx(theirs.compute_loss_from_embeddings([a, p, n], None).item(),
                                                         abs=1e-6)


# --------------------------------------------------------------------------- policies


def test_token_logprobs_equals_log_softmax_gather():
    logits = torch.tensor([[[1.0, 2.0, 0.5], [0.0, 0.0, 3.0]]])  # (1, 2, 3)
    targets = torch.tensor([[1, 2]])
    # position 0: 2 − log(e^1 + e^2 + e^0.5); position 1: 3 − log(2 + e^3)
    expected = [2 - math.log(math.e + math.e ** 2 + math.e ** 0.5), 3 - math.log(2 + math.e ** 3)]
    assert losses.token_logprobs(logits, targets)[0].tolist() == pytest.approx(expected, abs=1e-6)


def test_next_token_nll_worked_by_hand():
    logprobs = torch.tensor([math.log(0.5), math.log(0.25)])  # two scored tokens
    # −(log ½ + log ¼) = 3 log 2, over the 2 tokens scored; over a batch-wide count of 6 under accumulation
    assert losses.next_token_nll(logprobs).item() == pytest.approx(1.5 * math.log(2))
    assert losses.next_token_nll(logprobs, 6).item() == pytest.approx(0.5 * math.log(2))
    assert losses.next_token_nll(torch.zeros(0)).item() == 0.0  # no token scored: 0, not 0/0


def test_dpo_margin_and_loss_worked_by_hand():
    # log π/ρ of chosen: −1 − (−2) = 1; of rejected: −3 − (−2.5) = −0.5; margin = 0.1 · 1.5 = 0.15
    margin = losses.dpo_margin(torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]), torch.tensor([-2.5]),
                               0.1)
    assert margin.item() == pytest.approx(0.15)
    assert losses.dpo_loss(margin).item() == pytest.approx(math.log(1 + math.exp(-0.15)))
    assert losses.dpo_loss(torch.zeros(3)).item() == pytest.approx(math.log(2))  # π = ρ: log 2


def test_safe_rlhf_score_is_the_scaled_lagrangian():
    r, c = torch.tensor([2.0, 0.0]), torch.tensor([1.0, -1.0])
    assert losses.safe_rlhf_score(r, c, 0.0).tolist() == [2.0, 0.0]  # λ = 0: the reward alone
    assert losses.safe_rlhf_score(r, c, 1.0).tolist() == pytest.approx([0.5, 0.5])  # (2 − 1)/2, (0 + 1)/2
    assert losses.safe_rlhf_score(r, c, 3.0).tolist() == pytest.approx([-0.25, 0.75])  # (2 − 3)/4, (0 + 3)/4
    # λ → ∞: −C alone, not a score that grows with λ
    assert losses.safe_rlhf_score(r, c, 1e9).tolist() == pytest.approx([-1.0, 1.0], abs=1e-6)


def test_leave_one_out_baseline_worked_by_hand():
    a = losses.leave_one_out(torch.tensor([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]]))
    # 1 − (2+3)/2 = −1.5; 2 − (1+3)/2 = 0; 3 − (1+2)/2 = 1.5; equal scores: no advantage
    assert a.tolist() == [[-1.5, 0.0, 1.5], [0.0, 0.0, 0.0]]


def _categorical(theta):
    return torch.log_softmax(theta, -1)


def test_policy_gradient_loss_is_an_unbiased_gradient_of_the_expected_advantage():
    """Σ_y π(y) ∇[−A(y) log π(y)] (samples from π, π itself not differentiated) = −∇ Σ_y π(y) A(y)."""
    theta = torch.tensor([0.2, -0.4, 1.0], requires_grad=True)
    advantages = torch.tensor([1.0, -2.0, 0.5])
    logp = _categorical(theta)
    expected_grad = torch.autograd.grad(-(logp.exp() * advantages).sum(), theta)[0]
    weights = logp.exp().detach()
    per_outcome = [torch.autograd.grad(losses.policy_gradient_loss(advantages[y:y + 1], _categorical(theta)[y:y + 1]),
                                       theta)[0] for y in range(3)]
    estimate = sum(w * g for w, g in zip(weights, per_outcome))
    assert estimate.tolist() == pytest.approx(expected_grad.tolist(), abs=1e-6)


def test_kl_penalty_gradients_by_hand():
    """On samples from π: k2 = ½(log π − log ρ)² has the gradient of KL(π‖ρ); k3 = e^x − x − 1 that of KL(ρ‖π)."""
    theta = torch.tensor([0.3, -0.2, 0.9], requires_grad=True)
    ref = _categorical(torch.tensor([0.0, 0.5, -0.5]))
    pi = _categorical(theta)
    forward = torch.autograd.grad((pi.exp() * (pi - ref)).sum(), theta)[0]  # ∇ KL(π‖ρ)
    reverse = torch.autograd.grad((ref.exp() * (ref - _categorical(theta))).sum(), theta)[0]  # ∇ KL(ρ‖π)
    weights = pi.exp().detach()
    one = torch.ones(1, 1)
    for estimator, expected in (("k2", forward), ("k3", reverse)):
        grads = [torch.autograd.grad(losses.kl_penalty(_categorical(theta)[y].view(1, 1), ref[y].view(1, 1), one,
                                                       estimator).sum(), theta)[0] for y in range(3)]
        assert sum(w * g for w, g in zip(weights, grads)).tolist() == pytest.approx(expected.tolist(), abs=1e-6)
    assert not torch.allclose(forward, reverse)  # the two directions differ here, so the test tells them apart


def test_kl_estimate_is_unbiased_and_masks_padding():
    pi, ref = _categorical(torch.tensor([0.3, -0.2, 0.9])), _categorical(torch.tensor([0.0, 0.5, -0.5]))
    exact = float((pi.exp() * (pi - ref)).sum())
    per_outcome = losses.kl_estimate(pi.view(3, 1), ref.view(3, 1), torch.ones(3, 1))
    assert float((pi.exp() * per_outcome).sum()) == pytest.approx(exact, abs=1e-6)
    assert (per_outcome >= 0).all()
    two_tokens = losses.kl_estimate(pi[:2].view(1, 2), ref[:2].view(1, 2), torch.tensor([[1.0, 0.0]]))
    assert two_tokens.item() == pytest.approx(per_outcome[0].item())  # the padded token adds nothing


def test_log_lambda_update_worked_by_hand():
    """PPO-Lag: SGD on −(J_C − d)·e^{log λ} w.r.t. log λ, so log λ += η (J_C − d) λ; clamped at log λ_max."""
    assert losses.log_lambda_update(0.0, window_cost=0.5, threshold=0.0, lr=0.1, log_lambda_max=None) \
        == pytest.approx(0.05)  # λ = 1: 0 + 0.1 · 0.5 · 1
    assert losses.log_lambda_update(math.log(2.0), -1.0, 0.0, 0.1, None) == pytest.approx(math.log(2.0) - 0.2)
    assert losses.log_lambda_update(math.log(4.0), 10.0, 0.0, 0.1, math.log(5.0)) == pytest.approx(math.log(5.0))
    log_lam, trace = 0.0, []
    for cost in (2.0, 1.5, 1.0, 0.5, 0.0):  # d = 1: violated, violated, met exactly, then held
        log_lam = losses.log_lambda_update(log_lam, cost, 1.0, 0.5, None)
        trace.append(math.exp(log_lam))
    rose, held = trace[1] > trace[0] > 1.0, trace[2] == trace[1]
    assert rose and held and trace[4] < trace[3] < trace[2] and min(trace) > 0  # never 0, unlike λ + η(J − d)
    # the same step as autograd on PPO-Lag's loss
    log_lambda = torch.tensor(0.3, requires_grad=True)
    (-(0.7 - 0.2) * log_lambda.exp()).backward()
    assert losses.log_lambda_update(0.3, 0.7, 0.2, 0.1, None) == pytest.approx(0.3 - 0.1 * log_lambda.grad.item())


def test_kl_shaped_scores_worked_by_hand():
    scores = torch.tensor([1.0, 2.0])
    logp = torch.tensor([[-1.0, -2.0, -5.0], [-0.5, -0.5, -0.5]])
    ref = torch.tensor([[-1.5, -1.0, 0.0], [-0.5, -1.5, -0.5]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])  # the first response's third token is padding
    # Σ_t log π/ρ = (0.5 − 1.0) = −0.5 and (0 + 1 + 0) = 1; β = 0.1
    assert losses.kl_shaped_scores(scores, logp, ref, mask, 0.1).tolist() == pytest.approx([1.05, 1.9])


def test_sequence_kl_gradient_by_hand():
    """A 2-token policy over {0, 1}: π(y1) = softmax(θ1), π(y2|y1) = softmax(θ2[y1]); ρ fixed likewise.
    The sequence KL's gradient ∇ Σ_y π(y) log π(y)/ρ(y) equals the policy gradient of the KL-shaped score
    −β Σ_t log π/ρ (β = 1, no other reward), summed exactly over the 4 sequences; the per-token k2 loss, which
    drops the second token's log-ratio from the first token's gradient, does not."""
    theta1 = torch.tensor([0.4, -0.3], requires_grad=True)
    theta2 = torch.tensor([[0.2, 0.9], [-0.7, 0.1]], requires_grad=True)
    rho1, rho2 = torch.log_softmax(torch.tensor([0.0, 0.5]),
                                   -1), torch.log_softmax(torch.tensor([[0.3, -0.3], [0.0, 1.0]]), -1)
    sequences = [(a, b) for a in (0, 1) for b in (0, 1)]

    def token_logps(a, b):  # (1, 2) log π of each token
        return torch.stack([torch.log_softmax(theta1, -1)[a], torch.log_softmax(theta2, -1)[a, b]]).view(1, 2)

    ref = {(a, b): torch.stack([rho1[a], rho2[a, b]]).view(1, 2) for a, b in sequences}
    seq_kl = sum(token_logps(a, b).sum().exp() * (token_logps(a, b) - ref[a, b]).sum() for a, b in sequences)
    exact = torch.autograd.grad(seq_kl, (theta1, theta2))
    one = torch.ones(1, 2)
    shaped, per_token = [torch.zeros(2), torch.zeros(2, 2)], [torch.zeros(2), torch.zeros(2, 2)]
    for a, b in sequences:
        weight = token_logps(a, b).sum().exp().detach()
        logp = token_logps(a, b)
        score = losses.kl_shaped_scores(torch.zeros(1), logp.detach(), ref[a, b], one, beta=1.0)
        g = torch.autograd.grad(losses.policy_gradient_loss(score, logp.sum(-1)), (theta1, theta2))
        k2 = torch.autograd.grad(losses.kl_penalty(token_logps(a, b), ref[a, b], one, "k2").sum(), (theta1, theta2))
        for total, grad in ((shaped, g), (per_token, k2)):
            total[0] += weight * grad[0]
            total[1] += weight * grad[1]
    assert shaped[0].tolist() == pytest.approx(exact[0].tolist(), abs=1e-6)
    assert shaped[1].flatten().tolist() == pytest.approx(exact[1].flatten().tolist(), abs=1e-6)
    assert per_token[1].flatten().tolist() == pytest.approx(exact[1].flatten().tolist(),
                                                            abs=1e-6)  # the last token: same
    assert not torch.allclose(per_token[0], exact[0], atol=1e-4)  # the first token misses the later KL


def test_cost_loss_preference_mask_keeps_sign_only_pairs_out_of_the_preference_term():
    chosen, rejected = torch.tensor([0.0, 2.0]), torch.tensor([1.0, 0.0])
    none = torch.zeros(2)
    # pair 1 alone in the preference term: −log σ(1 − 0); pair 2 (preference False) feeds the sign term only
    masked = cost_loss(chosen, rejected, none, none, preference=torch.tensor([True, False]))
    assert masked.item() == pytest.approx(nll_sigmoid(1.0))
    signs = torch.tensor([-1.0, -1.0])  # both chosen responses labelled safe: −log σ(−c) on c = 0 and c = 2
    with_sign = cost_loss(chosen, rejected, signs, none, preference=torch.tensor([False, False]))
    assert with_sign.item() == pytest.approx((nll_sigmoid(0.0) + nll_sigmoid(-2.0)) / 2)


def test_the_cost_trainer_reads_chosen_then_rejected_as_its_collator_stacks_them():
    """The collator stacks chosen rows first, then rejected: the trainer's chunk(2) must read them in that order,
    so the rejected (more harmful) response is the one pushed to cost more."""
    from safealign.arms.cost_model import CostCollator

    rows = [{"chosen_ids": [1, 2], "rejected_ids": [3, 4, 5], "chosen_sign": -1, "rejected_sign": 1,
             "preference": True},
            {"chosen_ids": [6], "rejected_ids": [7, 8], "chosen_sign": 0, "rejected_sign": 1, "preference": False}]
    batch = CostCollator(pad_id=0)(rows)
    first_tokens = batch["input_ids"][:, 0].tolist()  # right-padded: each row starts with its own first token
    assert first_tokens == [1, 6, 3, 7]  # (2B, T): chosen 1, chosen 2, rejected 1, rejected 2
    costs = torch.tensor([0.0, 0.0, 5.0, 5.0])  # the rejected rows cost more: a low preference loss
    chosen, rejected = costs.chunk(2)
    good = cost_loss(chosen, rejected, batch["chosen_sign"], batch["rejected_sign"], preference=batch["preference"])
    swapped = cost_loss(rejected, chosen, batch["chosen_sign"], batch["rejected_sign"], preference=batch["preference"])
    assert good < swapped and batch["preference"].tolist() == [True, False]
