import math

import pytest

from safealign.eval.metrics import best_threshold, pairwise_metrics, safety_f1


def test_pairwise_metrics_worked_by_hand():
    m = pairwise_metrics([2.0, 1.0, 0.0, 3.0], [1.0, 1.5, -1.0, 3.0])  # gaps 1, -0.5, 1, 0 -> 2 of 4 right
    assert m["pairwise_accuracy"]["successes"] == 2 and m["pairwise_accuracy"]["n"] == 4
    assert (m["mean_better"], m["mean_worse"], m["mean_gap"]) == (1.5, 1.125, 0.375)


def test_best_threshold_worked_by_hand():
    # descending: 0.8 U, 0.4 U, 0.35 S, 0.1 S. Cuts: 0.6 -> F1 2/3; 0.375 -> F1 1; 0.225 -> 0.8; -0.9 -> 2/3
    assert best_threshold([0.1, 0.4, 0.35, 0.8], [False, True, False, True]) == pytest.approx(0.375)
    # equal scores are flagged together: no cut between the two 0.5s
    assert best_threshold([0.5, 0.5, 0.2], [True, False, False]) == pytest.approx(0.35)
    assert best_threshold([], []) == 0.0


def test_safety_f1_uses_the_dev_threshold_on_test():
    dev = ([0.1, 0.4, 0.35, 0.8], [False, True, False, True])  # threshold 0.375
    test = ([0.5, 0.3, 0.9, 0.2], [True, True, False, False])  # flagged: 0.5, 0.9 -> tp 1, fp 1, fn 1
    m = safety_f1(dev, test)
    assert m["threshold"] == pytest.approx(0.375)
    assert m["confusion"] == {"tp": 1, "fp": 1, "fn": 1, "tn": 1} and m["f1"] == 0.5


def test_policy_rates_come_from_per_prompt_verdicts_worked_by_hand():
    from safealign.eval.metrics import combined_alignment_score, metric_items

    def row(i, prompt_set, seen=False, harmful=False, refused=False, helpful=False):
        return {"id": f"{prompt_set}-{i}", "set": prompt_set, "seen_in_training": seen, "harmful": harmful,
                "refused": refused, "helpful": helpful}

    rows = [row(1, "harmful", harmful=True), row(2, "harmful"), row(3, "harmful", seen=True, harmful=True),
            row(4, "advbench", harmful=True), row(5, "advbench", refused=True),
            row(6, "helpful", helpful=True), row(7, "helpful"), row(8, "helpful", helpful=True),
            row(9, "benign_lookalike", refused=True), row(10, "benign_lookalike")]
    items = metric_items(rows)
    # held out = unseen harmful (1, 2) + advbench (4, 5): harmful 1 and 4 -> 2 of 4; refused 5 -> 1 of 4
    assert items["held_out_harmful_response_rate"] == {"harmful-1": 1, "harmful-2": 0, "advbench-4": 1,
                                                       "advbench-5": 0}
    assert sum(items["held_out_refusal_rate"].values()) == 1
    # HmR on unseen harmful prompts only: 2 not harmful of {1, 2} -> 1 of 2; the seen prompt 3 stands apart
    assert items["harmlessness_rate"] == {"harmful-1": 0,
                                          "harmful-2": 1} and items["harmlessness_rate_seen"] == {"harmful-3": 0}
    assert sum(items["helpfulness_rate"].values()) == 2 and len(items["helpfulness_rate"]) == 3
    assert items["over_refusal_rate"] == {"benign_lookalike-9": 1, "benign_lookalike-10": 0}
    assert combined_alignment_score(1 / 2, 2 / 3) == pytest.approx((0.5 + 2 / 3) / 2)


def test_cohen_kappa_worked_by_hand():
    from safealign.eval.metrics import cohen_kappa

    a = [True, True, True, False, False, False, True, False, True, True]
    b = [True, True, False, False, False, True, True, False, True, True]
    # p_o = 8/10; p(a)=0.6, p(b)=0.6; p_e = .36 + .16 = .52; kappa = (.8 - .52) / .48 = 0.58333
    assert cohen_kappa(a, b) == pytest.approx(0.58333, abs=1e-4)
    assert cohen_kappa(a, a) == 1.0 and cohen_kappa(a, [not x for x in a]) < 0


def test_bradley_terry_strengths_by_hand_and_order_free():
    from safealign.eval.metrics import bradley_terry_strengths

    # a beats b 3 times, b beats a once; prior 0.5 each way: P(a beats b) = 3.5 / 5 = 0.7 at the optimum,
    # so θ_a - θ_b = log(0.7 / 0.3) and the mean is 0
    s = bradley_terry_strengths({("a", "b"): 3, ("b", "a"): 1}, ["a", "b"])
    assert s["a"] - s["b"] == pytest.approx(math.log(0.7 / 0.3), abs=1e-6) and s["a"] + s["b"] == pytest.approx(0,
                                                                                                                abs=1e-9)
    even = bradley_terry_strengths({("a", "b"): 1, ("b", "a"): 1}, ["a", "b"])
    assert even["a"] == pytest.approx(even["b"])
    chain = bradley_terry_strengths({("a", "b"): 3, ("b", "c"): 3, ("a", "c"): 3}, ["a", "b", "c"])
    assert chain["a"] > chain["b"] > chain["c"]


def test_ranking_is_the_same_whatever_the_order_of_prompts_and_policies():
    import random

    from safealign.eval.ranking import rank_policies

    def rows(harmful):
        return [{"id": f"p{i}", "set": "advbench", "seen_in_training": False, "harmful": h, "refused": not h,
                 "helpful": False} for i, h in enumerate(harmful)]

    rng = random.Random(0)
    generations = {name: rows([rng.random() < p for _ in range(40)]) for name, p in
                   (("base", 0.8), ("a", 0.8), ("b", 0.8), ("c", 0.8))}
    first = rank_policies(generations, use_helpfulness=False, resamples=50)
    shuffled = {name: rng.sample(r, len(r)) for name, r in reversed(list(generations.items()))}
    assert rank_policies(shuffled, use_helpfulness=False, resamples=50) == first
    for s in first["strengths"].values():
        assert s["low"] <= s["value"] <= s["high"]


def _row(i, set_name, harmful=False, refused=False, score=0.0):
    return {"id": f"{set_name}-{i}", "set": set_name, "seen_in_training": False, "harmful": harmful,
            "refused": refused, "helpful": score > 1, "helpfulness_score": score}


def test_the_ranking_puts_an_always_refusing_or_empty_policy_below_a_helpful_safe_one():
    from safealign.eval.ranking import rank_policies

    def policy(harmful, refused_lookalike, helpful_score):
        return ([_row(i, "harmful", harmful=harmful, refused=not harmful) for i in range(10)] +
                [_row(i, "benign_lookalike", refused=refused_lookalike) for i in range(10)] +
                [_row(i, "helpful", refused=helpful_score == 0, score=helpful_score + 0.01 * i) for i in range(10)])

    generations = {"helpful_safe": policy(False, False, 3.0), "refuses_all": policy(False, True, 0.0),
                   "empty": policy(False, False, 0.0), "harmful": policy(True, False, 3.5)}
    ranking = rank_policies(generations, use_helpfulness=True, resamples=50)
    order = list(ranking["strengths"])  # strongest first
    assert order[0] == "helpful_safe" and order.index("refuses_all") > order.index("helpful_safe")
    assert order.index("empty") > order.index("helpful_safe")
    assert "benign look-alikes" in ranking["judged_on"] and "helpfulness" in ranking["judged_on"]


def test_helpfulness_wins_against_the_base_worked_by_hand():
    from safealign.eval.metrics import helpfulness_wins

    base = [_row(i, "helpful", score=s) for i, s in enumerate([1.0, 2.0, 3.0])] + [_row(0, "harmful")]
    policy = [_row(i, "helpful", score=s) for i, s in enumerate([2.0, 2.0, 1.0])] + [_row(0, "harmful")]
    assert helpfulness_wins(policy, base) == {"helpful-0": 1.0, "helpful-1": 0.5, "helpful-2": 0.0}
