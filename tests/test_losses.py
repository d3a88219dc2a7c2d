import math

import pytest
import torch

from safealign.losses import bradley_terry, cost_loss, cosine_distance, triplet


def nll_sigmoid(x: float) -> float:
    return math.log1p(math.exp(-x))  # -log σ(x)


def test_bradley_terry_worked_by_hand():
    # pairs (r_c, r_r) = (2, 0) and (0, 0): -log σ(2) = 0.126928, -log σ(0) = log 2 = 0.693147; mean 0.410038
    loss = bradley_terry(torch.tensor([2.0, 0.0]), torch.tensor([0.0, 0.0]))
    assert loss.item() == pytest.approx((0.126928 + 0.693147) / 2, abs=1e-6)
    assert bradley_terry(torch.tensor([5.0]), torch.tensor([-5.0])) < bradley_terry(torch.tensor([-5.0]), torch.tensor([5.0]))


def test_bradley_terry_gradient_raises_chosen_and_lowers_rejected():
    chosen, rejected = torch.zeros(3, requires_grad=True), torch.zeros(3, requires_grad=True)
    bradley_terry(chosen, rejected).backward()
    # d/dr_c of -log σ(r_c - r_r) = -(1 - σ(0)) = -0.5, over a mean of 3 pairs: -1/6
    assert torch.allclose(chosen.grad, torch.full((3,), -1 / 6)) and torch.allclose(rejected.grad, torch.full((3,), 1 / 6))


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
    assert triplet(a, p, n, 0.5).item() == pytest.approx(theirs.compute_loss_from_embeddings([a, p, n], None).item(), abs=1e-6)
