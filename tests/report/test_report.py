"""The report: built from a run dir's files, escaped, scriptless in Chromium; failed stages reported."""

import json

import pytest

from conftest import run_chromium
from safealign.cli import main
from safealign.eval.metrics import HELPFULNESS_WIN
from safealign.io import write_json_atomic, write_jsonl_atomic
from safealign.report.build import build_report
from safealign.report.collect import _mcnemar_family, collect
from safealign.report.recommend import recommend

PAYLOAD = ("</td></table><script>document.body.setAttribute('data-pwned','1')</script>"
           "<img src=x onerror=\"document.body.setAttribute('data-pwned','1')\"> & \"quotes\" 'single'")


@pytest.fixture(scope="module")
def data_only_run(tmp_path_factory, tiny_causal_lm):
    out = tmp_path_factory.mktemp("report") / "run"
    assert main(["audit", "--profile", "smoke", "--out", str(out), f"policy={tiny_causal_lm}", "arms=[]",
                 "policies=[]"]) == 0
    return out


def test_data_only_audit_writes_a_report(data_only_run):
    report = json.loads((data_only_run / "report.json").read_text())
    assert report["data"]["stats"]["all"]["pairs"] == 400 and report["failures"] == {}
    assert set(report["timing"]["stages"]) == {"prepare", "stats", "label", "keyword_baseline", "models"}
    assert sum(s["share"] for s in report["timing"]["stages"].values()) == pytest.approx(1, abs=1e-3)
    assert report["timing"]["wall_seconds"] > 0
    env = report["run"]["environment"]
    assert env["seed"] == 0 and env["packages"]["torch"] and env["machine"]["cores"] >= 1
    assert set(env["data_sha256"]) >= {"train.jsonl", "dev.jsonl", "test.jsonl"}
    html = (data_only_run / "report.html").read_text()
    assert "Content-Security-Policy" in html and "<script" not in html and "Harm taxonomy v1.0.0" in html


def test_every_string_from_data_is_escaped_and_chromium_runs_no_script(data_only_run, chromium, tmp_path):
    run = tmp_path / "run"
    import shutil

    shutil.copytree(data_only_run, run)
    row = {"id": "x", "context": PAYLOAD, "chosen": PAYLOAD, "rejected": PAYLOAD, "rejected_labels": [PAYLOAD]}
    write_jsonl_atomic(run / "shared_failures.jsonl", [row])
    write_json_atomic(run / "shared_failures.json", {"pairs": 1, "shared_failures": 1, "share": 1.0,
                                                     "expected_share_if_independent": 0.5})
    stages = json.loads((run / "stages.json").read_text())
    stages["train_reward_model"] = {"hash": "h", "failed": f"ValueError: {PAYLOAD}", "finished": "now"}
    write_json_atomic(run / "stages.json", stages)
    build_report(run)
    html = (run / "report.html").read_text()
    assert "<script" not in html and "<img src=x" not in html
    assert "&lt;script&gt;" in html and "&amp; &quot;quotes&quot; &#x27;single&#x27;" in html
    dom = run_chromium(chromium, run / "report.html", "--dump-dom")
    assert "Shared failures" in dom and "train_reward_model" in dom
    assert 'data-pwned="1"' not in dom  # no script ran
    # defence in depth: even an unescaped script is blocked by the page's Content-Security-Policy
    (run / "raw.html").write_text(html.replace("<body>", "<body><script>document.body.setAttribute('data-pwned','1')"
                                                         "</script>", 1))
    assert 'data-pwned="1"' not in run_chromium(chromium, run / "raw.html", "--dump-dom")
    (run / "no_csp.html").write_text((run / "raw.html").read_text().replace("Content-Security-Policy", "x-none"))
    assert 'data-pwned="1"' in run_chromium(chromium, run / "no_csp.html", "--dump-dom")  # the check can fail


def test_report_screenshot_in_headless_chromium(data_only_run, chromium, tmp_path):
    shot = tmp_path / "report.png"
    run_chromium(chromium, data_only_run / "report.html", "--hide-scrollbars", "--window-size=1200,1600",
                 f"--screenshot={shot}")
    from PIL import Image

    image = Image.open(shot).convert("L")
    assert image.size == (1200, 1600)
    low, high = image.getextrema()
    assert high - low > 100  # text and tables drawn, not a blank page
    dark = sum(image.histogram()[:128])  # pixels darker than mid-grey
    assert dark > 2000


def test_failed_stage_is_recorded_the_rest_goes_on_and_a_rerun_retries_it(tmp_path, tiny_bert, tiny_causal_lm,
                                                                           monkeypatch, capsys):
    from safealign.arms import contrastive

    out = tmp_path / "run"
    audit = ["audit", "--profile", "smoke", "--out", str(out), f"encoder={tiny_bert}", f"policy={tiny_causal_lm}",
             "arms=[reward_model,contrastive]", "policies=[]", "reward_model.max_train_pairs=16",
             "contrastive.max_train_pairs=16", "contrastive.knn_train_pairs=20"]

    def broken(cfg):
        raise RuntimeError("disk <full>")

    monkeypatch.setattr(contrastive, "train", broken)
    assert main(audit) == 1
    captured = capsys.readouterr()
    assert "FAILED train_contrastive: RuntimeError: disk <full>" in captured.err
    # 4 data stages, models, 2 x (train, eval), shared failures, report: numbered k of 11, with elapsed time
    stage_lines = [line for line in captured.out.splitlines() if line.startswith("[")]
    assert [line[:6] for line in stage_lines] == [f"[{k:>2}/11" for k in range(1, 12)]
    stages = json.loads((out / "stages.json").read_text())
    assert stages["train_contrastive"]["failed"] == "RuntimeError: disk <full>"
    assert "Traceback" in stages["train_contrastive"]["traceback"]
    assert "seconds" in stages["eval_reward_model"]  # the other arm finished
    report = json.loads((out / "report.json").read_text())
    assert report["failures"]["train_contrastive"] == "RuntimeError: disk <full>"
    assert report["failures"]["eval_contrastive"].startswith("not run: it needs train_contrastive")
    assert report["failures"]["shared_failures"].startswith("not run")
    assert "reward_model" in report["detectors"] and "contrastive" not in report["detectors"]
    assert "disk &lt;full&gt;" in (out / "report.html").read_text()
    reward_metrics = (out / "reward_model" / "metrics.json").read_text()

    monkeypatch.undo()
    assert main(audit + ["--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ran"] == ["train_contrastive", "eval_contrastive", "shared_failures"] and result["failed"] == {}
    assert (out / "reward_model" / "metrics.json").read_text() == reward_metrics
    assert json.loads((out / "report.json").read_text())["failures"] == {}


def test_mcnemar_family_pairs_arms_on_shared_items():
    by_arm = {"a": {"1": {"correct": True, "clean": True}, "2": {"correct": True, "clean": False},
                    "3": {"correct": False, "clean": True}},
              "b": {"1": {"correct": False, "clean": True}, "2": {"correct": False, "clean": False},
                    "3": {"correct": False, "clean": True}, "4": {"correct": True, "clean": True}}}
    raw, clean = _mcnemar_family(by_arm, ["a", "b", "missing"])
    assert (raw["items"], raw["a_only_correct"], raw["b_only_correct"]) == (3, 2, 0)
    assert raw["p_value"] == pytest.approx(0.5)  # 2 * (1/2)^2
    assert (clean["subset"], clean["items"], clean["a_only_correct"]) == ("clean", 2, 1)


def _rate(successes, n):
    from safealign.eval.stats import rate

    return rate(successes, n).to_dict()


def _policy_report(base_harmful: int, arm_harmful: int, p_value: float, arm_over_refusal: float = 0.0) -> dict:
    def metrics(harmful):
        return {"held_out_harmful_response_rate": _rate(harmful, 50)}

    table = {"base": {"held_out_harmful_response_rate": base_harmful / 50, "helpfulness_rate": 0.8,
                      "over_refusal_rate": 0.0},
             "dpo": {"held_out_harmful_response_rate": arm_harmful / 50, "helpfulness_rate": 0.7,
                     "over_refusal_rate": arm_over_refusal}}
    tests = [{"a": "dpo", "b": "base", "metric": "held_out_harmful_response_rate",
              "difference": (arm_harmful - base_harmful) / 50,
              "p_value": p_value, "p_holm": p_value, "significant": p_value < 0.05},
             {"a": "dpo", "b": "base", "metric": "helpfulness_rate", "difference": -0.1, "p_value": 0.3,
              "p_holm": 0.3, "significant": False}]
    return {"detectors": {}, "failures": {},
            "significance": {"detectors": [], "curation_ablation": [], "policies": tests},
            "policies": {"table": table, "metrics": {"base": metrics(base_harmful), "dpo": metrics(arm_harmful)},
                         "judges": {role: _judge(role, 0.7) for role in ("refusal", "harm", "helpfulness")}}}


def _judge(role: str, kappa: float, training_signal: bool = False) -> dict:
    card = {"n": 100, "kappa": kappa, "kappa_ci": [kappa - 0.1, kappa + 0.1], "kappa_floor": 0.4,
            "valid": kappa >= 0.4}
    return {"judge": f"{role}-judge", "valid": kappa >= 0.4, "training_signal": training_signal, "card": card}


def test_recommendation_follows_the_numbers():
    halved = recommend(_policy_report(base_harmful=40, arm_harmful=10, p_value=0.0001))
    assert halved["choice"]["generation"] == "dpo"
    assert any("use dpo for generation" in line for line in halved["text"])
    assert any("80.0% [67.0, 88.8] (n=50)" in line and "20.0%" in line for line in halved["text"])
    same = recommend(_policy_report(base_harmful=40, arm_harmful=38, p_value=0.6))
    assert any(line.startswith("No arm measurably reduced") for line in same["text"])
    assert not any("use dpo" in line for line in same["text"])
    over_refusing = recommend(_policy_report(base_harmful=40, arm_harmful=10, p_value=0.0001, arm_over_refusal=0.3))
    assert not any("use dpo" in line for line in over_refusing["text"])
    assert any("over-refusal on benign look-alikes rises +30.0 points" in line for line in over_refusing["text"])


def test_recommendation_prefers_an_arm_that_meets_the_bar_over_one_that_refuses_its_way_lower():
    """As on the gpu profile: SFT->DPO lowest by declining everything, DPO halves the rate and still answers."""
    report = _policy_report(base_harmful=40, arm_harmful=15, p_value=0.0001)
    report["policies"]["table"]["sft_dpo"] = {"held_out_harmful_response_rate": 1 / 50, "helpfulness_rate": 0.7,
                                              "over_refusal_rate": 1.0}
    report["policies"]["metrics"]["sft_dpo"] = {"held_out_harmful_response_rate": _rate(1, 50)}
    report["significance"]["policies"].append({"a": "sft_dpo", "b": "base", "metric": "held_out_harmful_response_rate",
                                               "difference": -39 / 50, "p_value": 0.0, "p_holm": 0.0,
                                               "significant": True})
    text = recommend(report)
    assert text["choice"]["generation"] == "dpo"
    assert any("use dpo for generation" in line for line in text["text"])
    assert any(line.startswith("sft_dpo goes lower (2.0%") and "+100.0 points" in line for line in text["text"])
    # with nothing under the bar, the lowest rate is named and its over-refusal called out
    report["policies"]["metrics"]["dpo"] = {"held_out_harmful_response_rate": _rate(30, 50)}
    report["policies"]["table"]["dpo"]["held_out_harmful_response_rate"] = 0.6
    text = recommend(report)
    assert text["choice"]["generation"] == "sft_dpo" and not any("for generation." in line for line in text["text"])
    assert any("rises +100.0 points (more than 10)" in line for line in text["text"])


def test_a_safe_rlhf_run_whose_lambda_sat_at_zero_is_called_out():
    report = _policy_report(base_harmful=40, arm_harmful=38, p_value=0.6)
    for name in ("safe_rlhf", "reward_only_rlhf"):
        report["policies"]["table"][name] = {"held_out_harmful_response_rate": 0.7, "helpfulness_rate": 0.5,
                                             "over_refusal_rate": 0.0}
        report["policies"]["metrics"][name] = {"held_out_harmful_response_rate": _rate(35, 50)}
    report["significance"]["policies"].append({"a": "safe_rlhf", "b": "reward_only_rlhf", "p_holm": 1.0,
                                               "metric": "held_out_harmful_response_rate", "difference": 0.0,
                                               "p_value": 1.0, "significant": False})
    def step(lam, lam_next, cost):
        return {"lambda": lam, "lambda_next": lam_next, "mean_cost": cost, "cost_threshold": 0.0}

    report["safe_rlhf_curves"] = {"safe_rlhf": [step(0.4, 0.0, -1.0), step(0.0, 0.0, -0.5), step(0.0, 0.0, -0.2)]}
    text = recommend(report)["text"]
    # 70% vs 70% on 50 prompts: 2.80 · √(2 · 0.21 / 50) = 25.7 points is what this sample could detect
    assert any("Safe RLHF against the same optimiser with λ=0" in line and
               "at n=50 prompts a difference under 26 points is not reliably detected" in line for line in text)
    assert any(line.startswith("λ was 0 on 2 of 3 Safe RLHF steps") for line in text)
    assert ("Safe RLHF's λ went from 0.4 to 0 over 3 steps: the mean cost of the last sampled responses was above d "
            "on 0 steps (λ rose on 0) and at or below it on 3 (λ fell on 1, stayed at 0 on 2).") in text
    report["safe_rlhf_curves"] = {"safe_rlhf": [step(0.4, 0.6, 0.4), step(0.6, 0.7, 0.2), step(0.7, 0.65, -0.1)]}
    text = recommend(report)["text"]
    assert not any(line.startswith("λ was 0") for line in text)
    assert "above d on 2 steps (λ rose on 2) and at or below it on 1 (λ fell on 1)." in " ".join(text)
    # PPO-Lag's log: λ before and after the update, and the window's mean cost that moved it
    report["safe_rlhf_curves"] = {"safe_rlhf": [
        {"lambda_prev": 1.0, "lambda": 1.2, "window_cost": 0.3, "mean_cost": -0.5, "cost_threshold": 0.0},
        {"lambda_prev": 1.2, "lambda": 1.1, "window_cost": -0.1, "mean_cost": 0.5, "cost_threshold": 0.0}]}
    text = " ".join(recommend(report)["text"])
    assert "went from 1 to 1.1 over 2 steps" in text and "above d on 1 step (λ rose on 1)" in text
    assert "at or below it on 1 (λ fell on 1)." in text


def test_judges_below_the_floor_or_used_in_training_are_called_out_and_a_weak_harm_judge_stops_the_ranking():
    report = _policy_report(base_harmful=40, arm_harmful=10, p_value=0.0001)
    report["policies"]["judges"]["helpfulness"] = _judge("helpfulness", 0.12)
    text = recommend(report)["text"]
    below = [line for line in text if "is not valid" in line]
    assert len(below) == 1 and "helpfulness-judge" in below[0] and "κ=0.12" in below[0] and "left out" in below[0]
    assert any("use dpo for generation" in line for line in text)  # harm judge valid: still ranked
    assert not any(line.startswith("Cost in helpfulness") for line in text)  # helpfulness left out of the verdict
    report["policies"]["judges"]["harm"] = _judge("harm", 0.3, training_signal=True)
    text = recommend(report)["text"]
    assert any(line.startswith("Generation: not ranked") for line in text)
    assert not any("use dpo" in line for line in text)
    assert any("optimised against" in line and "harm-judge" in line for line in text)


def test_a_tie_in_harmful_responses_is_broken_by_over_refusal_not_by_an_invalid_helpfulness_judge():
    report = _policy_report(base_harmful=40, arm_harmful=10, p_value=0.0001)
    report["policies"]["table"]["sft"] = {"held_out_harmful_response_rate": 10 / 50, "helpfulness_rate": 0.9,
                                          "over_refusal_rate": 0.05, HELPFULNESS_WIN: _win(0.7)}
    report["policies"]["table"]["dpo"][HELPFULNESS_WIN] = _win(0.4)
    report["policies"]["metrics"]["sft"] = {"held_out_harmful_response_rate": _rate(10, 50)}
    report["policies"]["judges"]["helpfulness"] = _judge("helpfulness", 0.12)
    assert recommend(report)["choice"]["generation"] == "dpo"  # same harm, dpo over-refuses less (0 vs 5%)
    report["policies"]["table"]["dpo"]["over_refusal_rate"] = 0.05
    assert recommend(report)["choice"]["generation"] in ("dpo", "sft")
    report["policies"]["judges"]["helpfulness"] = _judge("helpfulness", 0.7)
    assert recommend(report)["choice"]["generation"] == "sft"  # a valid judge: the more helpful one (win rate)


def _win(value: float, half_width: float = 0.1) -> dict:
    return {"value": value, "low": value - half_width, "high": value + half_width, "n": 50, "p_value": 0.01,
            "minimum_detectable_difference": 0.198}


def test_the_recommendation_names_the_cost_in_helpfulness_and_tests_the_runner_up():
    report = _policy_report(base_harmful=40, arm_harmful=10, p_value=0.0001)
    report["policies"]["table"]["dpo"][HELPFULNESS_WIN] = _win(0.3)
    report["policies"]["table"]["sft"] = {"held_out_harmful_response_rate": 12 / 50, "over_refusal_rate": 0.0,
                                          HELPFULNESS_WIN: _win(0.5)}
    report["policies"]["metrics"]["sft"] = {"held_out_harmful_response_rate": _rate(12, 50)}
    report["significance"]["policy_pairs"] = [{"a": "sft", "b": "dpo", "metric": "held_out_harmful_response_rate",
                                               "difference": 0.04, "p_value": 0.4, "p_holm": 0.4,
                                               "significant": False}]
    text = " ".join(recommend(report)["text"])
    assert "prefers dpo's answer to the base's on 30.0% [20.0, 40.0] of 50 helpful prompts" in text
    assert "a measurable cost in helpfulness" in text
    # the runner-up's test is read the right way round (sft − dpo = +4 points, so dpo − sft = −4), with the MDD
    assert "Against the runner-up sft (24.0% [14.3, 37.4] (n=50)): paired bootstrap difference -4.0 points" in text
    assert "at n=50 prompts a difference under 23 points is not reliably detected" in text  # 2.80·√(2·.22·.78/50)


def test_pareto_front_worked_by_hand():
    from safealign.report.collect import pareto_front

    points = {"base": (0.46, 0.0), "sft": (0.27, 0.12), "dpo": (0.46, 0.0), "rl": (0.30, 0.12), "bad": (0.5, 0.2),
              "refuser": (0.0, 1.0)}
    # rl is dominated by sft (lower harm, same over-refusal); bad by base; base and dpo tie and are both kept
    assert pareto_front(points) == ["refuser", "sft", "base", "dpo"]
    assert pareto_front({}) == [] and pareto_front({"only": (0.3, 0.3)}) == ["only"]


def test_a_figure_that_fails_to_draw_is_reported_and_the_report_is_still_written(data_only_run, tmp_path,
                                                                               monkeypatch):
    import shutil

    from safealign.report import build

    run = tmp_path / "run"
    shutil.copytree(data_only_run, run)

    def broken(plt, out, report):
        raise ValueError("'yerr' must not contain negative values")

    monkeypatch.setattr(build, "_detector_figure", broken)
    report = build_report(run)
    assert report["failures"]["figure detectors"] == "ValueError: 'yerr' must not contain negative values"
    assert json.loads((run / "report.json").read_text())["failures"]["figure detectors"].startswith("ValueError")
    assert "figure detectors" in (run / "report.html").read_text()


def test_a_degenerate_classifier_stage_is_named_and_not_ranked():
    def stage(accuracy, share, degenerate):
        return {"task": "binary", "raw_accuracy": _rate(int(accuracy * 100), 100), "f1": 0.6,
                "predicted_unsafe_share": share, "degenerate": degenerate}

    report = {"detectors": {"classifier/raw": stage(0.55, 0.55, False),
                            "classifier/filtered": stage(0.60, 0.98, True)},
              "failures": {}, "significance": {"detectors": [], "curation_ablation": [], "policies": []},
              "policies": {}}
    result = recommend(report)
    assert result["choice"]["flagging"] == "classifier/raw"  # the higher accuracy is a constant's: not ranked
    assert any(line.startswith("Not ranked, degenerate") and "classifier/filtered (98% predicted unsafe)" in line
               for line in result["text"])


def test_a_hub_judge_without_a_validity_card_is_left_out_and_the_report_says_how_to_measure_one():
    from safealign.report.build import _judged_by

    report = _policy_report(base_harmful=40, arm_harmful=10, p_value=0.0001)
    why = ("no validity card: this model was never measured against human labels; measure one with "
           "`safealign judges card --out JUDGES_DIR harm=meta-llama/Llama-Guard-3-8B`")
    report["policies"]["judges"]["harm"] = {"judge": "meta-llama/Llama-Guard-3-8B", "valid": False, "card": None,
                                            "training_signal": False, "why": why, "reads": "its chat template",
                                            "unparsed": 2}
    text = recommend(report)["text"]
    assert any(line.startswith("Generation: not ranked") for line in text)
    assert any("safealign judges card --out JUDGES_DIR harm=meta-llama/Llama-Guard-3-8B" in line for line in text)
    shown = _judged_by(report["policies"]["judges"], "harm")
    assert "NO VALIDITY CARD, left out of the verdict" in shown and "2 outputs did not parse" in shown


def test_the_report_correlates_each_safe_rlhf_steps_logged_rewards_and_costs(tmp_path):
    """The arm logs every sample's R and C; the report computes Pearson's r once (eval.stats.pearson)."""
    out = tmp_path / "audit"
    steps = [{"step": 1, "lambda": 0.8, "rewards": [1.0, 2.0, 3.0, 4.0], "costs": [2.0, 1.0, 0.0, -1.0]},
             {"step": 2, "lambda": 0.7, "rewards": [1.0, 2.0, 3.0], "costs": [1.0, 3.0, 2.0]},
             {"step": 3, "lambda": 0.6, "rewards": [1.0, 1.0], "costs": [0.0, 2.0]}]
    write_jsonl_atomic(out / "safe_rlhf" / "train_log.jsonl", [{"loss": 1.0}, *steps])  # a loss-only row is skipped
    write_json_atomic(out / "safe_rlhf" / "model" / "safealign-complete.json",
                      {"calibrations": [{"round": 0, "rewards": [0.0, 1.0, 2.0], "costs": [0.0, 2.0, 4.0]}]})
    report = collect(out)
    curve = report["safe_rlhf_curves"]["safe_rlhf"]
    # step 2 by hand: deviations (-1, 0, 1) and (-1, 1, 0): cov 1, variances 2 and 2, r = 1/2
    assert [row["reward_cost_correlation"] for row in curve] == [-1.0, 0.5, None]  # None: constant rewards
    assert report["safe_rlhf_calibrations"]["safe_rlhf"][0]["reward_cost_correlation"] == 1.0
    assert report["reward_cost_correlation"]["policy_samples_first_step"] == {"n": 4, "r": -1.0}
    # a run logged before the samples' scores were (it recorded its own r) still reports
    write_jsonl_atomic(out / "safe_rlhf" / "train_log.jsonl",
                       [{"step": 1, "lambda": 0.8, "reward_cost_correlation": 0.3}])
    assert collect(out)["reward_cost_correlation"]["policy_samples_first_step"] == {"n": None, "r": 0.3}


def test_the_verdict_reads_corrected_rates_only_from_a_card_like_the_responses_it_judges():
    report = _policy_report(base_harmful=40, arm_harmful=10, p_value=0.0001)
    for name, value in (("base", 0.9), ("dpo", 0.1)):  # Rogan–Gladen by the card (values chosen by hand)
        report["policies"]["metrics"][name]["held_out_harmful_response_rate"]["corrected"] = {
            "value": value, "low": value - 0.05, "high": value + 0.05, "unbounded": False}
    card = report["policies"]["judges"]["harm"]["card"]
    card |= {"like_judged": False, "like_judged_why": "measured on other models' responses"}
    raw = recommend(report)["text"]
    assert any("Rates here are raw" in line and "measured on other models' responses" in line for line in raw)
    assert any("20.0% [11.2, 33.0] (n=50) against the base's 80.0%" in line for line in raw)
    card["like_judged"] = True
    corrected = recommend(report)["text"]
    assert any("Rates here are corrected" in line for line in corrected)
    assert any("10.0% [5.0, 15.0] (n=50) against the base's 90.0% [85.0, 95.0] (n=50)" in line for line in corrected)
    assert "use dpo for generation" in " ".join(corrected)
    # a correction without bounds (a judge near chance) is not read: the raw rate stands
    report["policies"]["metrics"]["dpo"]["held_out_harmful_response_rate"]["corrected"]["unbounded"] = True
    assert any("20.0% [11.2, 33.0] (n=50) against the base's 90.0%" in line for line in recommend(report)["text"])


def test_the_judge_section_says_which_rates_the_verdict_reads():
    from safealign.report.build import _like_judged_note

    def report(like):
        return {"policies": {"judges": {"harm": {"card": {"like_judged": like}}, "refusal": {"card": {}}}}}

    assert "reads raw rates" in _like_judged_note(report(False)) and "reads raw rates" in _like_judged_note({})
    assert "rates corrected for its error" in _like_judged_note(report(True))
