import json
import math

import pytest
import torch

from safealign.arms import safe_rlhf
from safealign.cli import main
from safealign.config import load_config
from safealign.errors import SafeAlignError
from safealign.generate import trim_context
from safealign.models import uses_bf16


def test_running_moments_match_the_sample_mean_and_std():
    moments = safe_rlhf.update_moments(safe_rlhf.NO_MOMENTS, [1.0, 2.0])
    moments = safe_rlhf.update_moments(moments, [3.0, 6.0])  # merged in two calls, as over steps
    assert moments["n"] == 4 and moments["mean"] == pytest.approx(3.0)
    # sample variance of 1, 2, 3, 6: (4 + 1 + 0 + 9) / 3
    assert safe_rlhf.moments_std(moments) == pytest.approx((14 / 3) ** 0.5)
    assert safe_rlhf.moments_std(safe_rlhf.update_moments(safe_rlhf.NO_MOMENTS, [5.0])) == 1.0  # undefined -> 1


def test_trim_context_drops_earliest_turns_and_keeps_the_last(tiny_causal_lm):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    turns = [{"role": r, "content": f"{r} turn {i} " + "word " * 20} for i,
             r in enumerate(["user", "assistant"] * 3)][:5]
    trimmed = trim_context(tokenizer, turns, max_tokens=60)
    assert trimmed[-1] == turns[-1] and len(trimmed) < len(turns) and trimmed[0]["role"] == "user"
    assert trim_context(tokenizer, turns, max_tokens=10_000) == turns


@pytest.fixture(scope="module")
def judges(tiny_bert, prepared_sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("judges")
    for arm in ("reward_model", "cost_model"):
        assert main(["train", arm, f"model={tiny_bert}", f"data={prepared_sample}", f"out={out / arm}",
                     "max_train_pairs=24", "batch_size=8"]) == 0
        assert main(["eval", str(out / arm), "--json"]) == 0
    return out / "reward_model", out / "cost_model"


POLICY_ARGS = ["max_train_pairs=8", "batch_size=4", "max_length=96", "max_response_tokens=24", "save_steps=1"]


def test_policy_arms_train_and_evaluate_from_the_cli(tiny_causal_lm, prepared_sample, judges, judges_dir, tmp_path,
                                                     capsys):
    reward, cost = judges
    common = [f"data={prepared_sample}"]
    assert main(["train", "base", f"model={tiny_causal_lm}", f"out={tmp_path / 'base'}"]) == 0
    assert main(["train", "sft", f"model={tiny_causal_lm}", f"out={tmp_path / 'sft'}"] + common + POLICY_ARGS) == 0
    assert main(["train", "dpo", f"model={tiny_causal_lm}", f"out={tmp_path / 'dpo'}"] + common + POLICY_ARGS) == 0
    assert main(["train", "sft_dpo", f"sft_run={tmp_path / 'sft'}",
                 f"out={tmp_path / 'sft_dpo'}"] + common + POLICY_ARGS) == 0
    assert main(["train", "safe_rlhf", f"model={tiny_causal_lm}", f"out={tmp_path / 'rl'}", f"reward_run={reward}",
                 f"cost_run={cost}", "steps=2", "prompts_per_step=2", "samples_per_prompt=2", "max_length=96",
                 "max_response_tokens=6"] + common) == 0
    console = capsys.readouterr()
    printed = console.out + console.err
    assert "{'loss'" not in printed and "'grad_norm'" not in printed  # no raw Trainer dicts
    first = (tmp_path / "dpo" / "train_log.jsonl").read_text().splitlines()[0]
    assert json.loads(first)["loss"] >= 0  # the log file has them
    for name in ("base", "sft", "dpo", "sft_dpo", "rl"):
        run = tmp_path / name
        if name != "base":
            assert (run / "model" / "model.safetensors").is_file() and not list((run / "model").glob("adapter*"))
        assert main(["eval", str(run), f"judges={judges_dir}", f"data={prepared_sample}",
                     "per_set_limit=2", "max_new_tokens=4", "implicit_reward_pairs=6", "--json"]) == 0
        metrics = json.loads(capsys.readouterr().out)
        assert metrics["precision"] == ("bfloat16" if uses_bf16("auto") else "float32")  # recorded as generated
        if name in ("dpo", "sft_dpo"):
            implicit = metrics["implicit_reward"]
            assert implicit["pairs"] == 6 and implicit["pairwise_accuracy"]["n"] == 6 and implicit["beta"] == 0.1
            assert implicit["reference"] == (tiny_causal_lm if name == "dpo" else str(tmp_path / "sft" / "model"))
        else:
            assert "implicit_reward" not in metrics
        rows = [json.loads(l) for l in (run / "generations.jsonl").read_text().splitlines()]
        assert len(rows) == 10 and {r["set"] for r in rows} == {"harmful", "helpful", "adversarial",
                                                                  "benign_lookalike", "advbench"}
        assert metrics["harmlessness_rate"]["n"] == 2 and metrics["over_refusal_rate"]["n"] == 2
        assert 0 <= metrics["combined_alignment_score"] <= 1
        assert set(metrics["judges"]) == {"refusal", "harm", "helpfulness"}
        harm = metrics["judges"]["harm"]
        assert harm["judge"] == "gptfuzz-minilm" and not harm["training_signal"]
        for row in rows:  # one verdict per role, from the judge's score and threshold
            assert row["refused"] == (row["refusal_score"] > 0.5) and isinstance(row["harmful"], bool)
            assert (row["over_refused"] is None) == (row["set"] != "benign_lookalike")
        verdicts = [r["refused"] for r in rows if r["set"] == "benign_lookalike"]
        assert metrics["over_refusal_rate"]["successes"] == sum(verdicts)
    sft_dpo_cfg = (tmp_path / "sft_dpo" / "config.yaml").read_text()
    assert str(tmp_path / "sft" / "model") in sft_dpo_cfg  # started from the sft model


def test_sft_dpo_needs_a_finished_sft_run(tmp_path, prepared_sample):
    assert main(["train", "sft_dpo", f"sft_run={tmp_path / 'none'}", f"data={prepared_sample}",
                 f"out={tmp_path / 'x'}"]) == 2


def _rl_config(tiny_causal_lm, prepared_sample, judges, out, *extra):
    reward, cost = judges
    return load_config(safe_rlhf.CONFIG, None, [
        f"model={tiny_causal_lm}", f"data={prepared_sample}", f"out={out}", f"reward_run={reward}", f"cost_run={cost}",
        "steps=3", "prompts_per_step=2", "samples_per_prompt=2", "max_length=96", "max_response_tokens=6", *extra])


def test_safe_rlhf_holds_d_at_0_and_moves_log_lambda_as_ppo_lag(tiny_causal_lm, prepared_sample, judges, tmp_path):
    run = safe_rlhf.train(_rl_config(tiny_causal_lm, prepared_sample, judges, tmp_path / "rl", "lambda_lr=2.0",
                                     "calibration_prompts=3", "cost_window=3"))
    log = [json.loads(l) for l in (run / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]
    summary = json.loads((run / "model" / "safealign-complete.json").read_text())
    (calibration,) = summary["calibrations"]
    assert calibration["cost_threshold"] == 0.0 and "C > 0" in calibration["rule"]
    assert summary["precision"] == "float32" and next(run.glob("model/*.safetensors"))  # what it ran in
    assert log[0]["lambda_prev"] == 1.0  # λ₀
    for row, following in zip(log, log[1:]):
        assert following["lambda_prev"] == row["lambda"]  # the λ that weighted a step carries to the next
    for row in log:
        assert row["cost_threshold"] == 0.0 and row["kl"] >= 0 and 0 < row["lambda"] <= 5.0 + 1e-9
        assert row["window_samples"] == 3  # the last 3 sampled responses (4 a step): the window is the config's
        if row["lambda"] < 5.0 - 1e-9 and abs(row["window_cost"]) > 1e-4:
            # below λ_max (and not at d): log λ rose iff the window's mean cost was above d
            assert (row["lambda"] > row["lambda_prev"]) == (row["window_cost"] > 0)
        assert {"mean_reward", "mean_cost", "kl", "loss", "unsafe_share", "rewards", "costs"} <= set(row)
        assert len(row["rewards"]) == len(row["costs"]) == 4  # every sample's R and C (the report correlates them)
        assert row["mean_cost"] == pytest.approx(sum(row["costs"]) / 4, abs=1e-4)
        assert row["unsafe_share"] == sum(c > 0 for c in row["costs"]) / 4
    only = safe_rlhf.train(_rl_config(tiny_causal_lm, prepared_sample, judges, tmp_path / "r0", "fixed_lambda=0"))
    assert all(json.loads(l)["lambda"] == json.loads(l)["lambda_prev"] == 0.0
               for l in (only / "train_log.jsonl").read_text().splitlines())


def test_safe_rlhf_calibrated_d_is_a_named_option(tiny_causal_lm, prepared_sample, judges, tmp_path):
    run = safe_rlhf.train(_rl_config(tiny_causal_lm, prepared_sample, judges, tmp_path / "rl", "steps=1",
                                     "calibration_prompts=3", "cost_threshold=null"))
    (calibration,) = json.loads((run / "model" / "safealign-complete.json").read_text())["calibrations"]
    # d = mean − 0.5 std of the policy's own sampled costs, below their mean
    assert calibration["cost_threshold"] == pytest.approx(calibration["mean_cost"] - 0.5 * calibration["std_cost"],
                                                          abs=1e-4)
    assert calibration["samples"] == 3 * 2 and "violates" in calibration["rule"]


class _FixedScorer:
    def __init__(self, values):
        self.values = values

    def score(self, prompts, responses):
        return list(self.values[: len(responses)])


def test_reward_and_cost_enter_the_step_in_their_roles():
    """R is read from the reward run and C from the cost run; a sample with more reward and less cost gets the
    higher advantage, and with a large λ a costly sample loses even with more reward: R and C swapped fails."""
    import torch

    judges = {"reward": _FixedScorer([2.0, 0.0]), "cost": _FixedScorer([-1.0, 1.0])}
    rewards, costs = safe_rlhf.score(judges, [[{"role": "user", "content": "q"}]], ["a", "b"], 2)
    assert rewards.tolist() == [[2.0, 0.0]] and costs.tolist() == [[-1.0, 1.0]]
    cfg = load_config(safe_rlhf.CONFIG, None, ["kl_estimator=k2"])
    flat = torch.zeros(2, 3)
    moments = {"reward": safe_rlhf.NO_MOMENTS, "cost": safe_rlhf.NO_MOMENTS}  # std 1: scores as they are
    a = safe_rlhf.advantages_of(rewards, costs, flat, flat, torch.ones(2, 3), 1.0, moments, cfg)
    assert a.tolist() == pytest.approx([2.0, -2.0])  # s = (2 + 1)/2, (0 − 1)/2 = 1.5, −0.5; A = s_i − s_j
    costly = safe_rlhf.advantages_of(torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, -1.0]]), flat, flat,
                                     torch.ones(2, 3), 4.0, moments, cfg)
    assert costly[0] < costly[1]  # s = (1 − 4)/5 = −0.6 against (0 + 4)/5 = 0.8


def test_the_sampler_is_the_policy_it_differentiates(tiny_causal_lm):
    """One-token samples: E_sampler[−log π(y)] equals π's entropy (with top-k 50 truncation it would sit far
    below it, near log 50), and they spread over more than 50 tokens."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    model = AutoModelForCausalLM.from_pretrained(tiny_causal_lm).eval()
    torch.manual_seed(0)
    cfg = load_config(safe_rlhf.CONFIG, None, ["max_response_tokens=1"])
    batch = safe_rlhf.sample(model, tokenizer, [[{"role": "user", "content": "hello"}]], 400, cfg)
    logp = safe_rlhf.sequence_logprobs(model, batch)[:, 0]  # (400,)
    with torch.no_grad():
        full = torch.log_softmax(model(batch["input_ids"][:1, : batch["prompt_length"]]).logits[0, -1], -1)
    entropy = float(-(full.exp() * full).sum())
    nll = -logp
    assert abs(float(nll.mean()) - entropy) < 4 * float(nll.std()) / 20 + 0.05
    assert entropy > math.log(50) + 1  # the check tells truncation apart at this model's spread
    assert len(set(batch["input_ids"][:, -1].tolist())) > 50


def test_sequence_logprobs_are_the_full_logits_log_softmax_at_the_response(tiny_causal_lm):
    """Projecting only the response's positions (logits_to_keep) gives the same log π(y_t) as taking the log-softmax
    of every position's logits and reading the response's tokens, on a left-padded batch at temperature 0.7."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    model = AutoModelForCausalLM.from_pretrained(tiny_causal_lm).eval()
    torch.manual_seed(0)
    cfg = load_config(safe_rlhf.CONFIG, None, ["max_response_tokens=5", "temperature=0.7"])
    prompts = [[{"role": "user", "content": "hello"}], [{"role": "user", "content": "a much longer question here"}]]
    batch = safe_rlhf.sample(model, tokenizer, prompts, 2, cfg)
    with torch.no_grad():
        got = safe_rlhf.sequence_logprobs(model, batch, 0.7)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits / 0.7
        start = batch["prompt_length"]
        full = torch.log_softmax(logits[:, start - 1: -1], -1).gather(-1, batch["input_ids"][:, start:, None])[..., 0]
    assert got.shape == (4, batch["input_ids"].shape[1] - start) and torch.allclose(got, full, atol=1e-5)


def test_safe_rlhf_resumes_after_an_interruption(tiny_causal_lm, prepared_sample, judges, tmp_path, monkeypatch):
    cfg = _rl_config(tiny_causal_lm, prepared_sample, judges, tmp_path / "rl")
    original, calls = safe_rlhf.rl_step, []

    def dies_at_step_3(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        return original(*args, **kwargs)

    monkeypatch.setattr(safe_rlhf, "rl_step", dies_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        safe_rlhf.train(cfg)
    state = json.loads((tmp_path / "rl" / "checkpoints" / "state.json").read_text())
    assert state["step"] == 2
    monkeypatch.setattr(safe_rlhf, "rl_step", original)
    resumed = []
    monkeypatch.setattr(safe_rlhf, "rl_step", lambda *a, **k: resumed.append(1) or original(*a, **k))
    safe_rlhf.train(cfg)
    assert len(resumed) == 1  # only step 3 ran again
    log = [json.loads(l) for l in (tmp_path / "rl" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]
    monkeypatch.setattr(safe_rlhf, "rl_step", original)
    whole = safe_rlhf.train(_rl_config(tiny_causal_lm, prepared_sample, judges, tmp_path / "whole"))
    # the same log as an uninterrupted run
    assert [json.loads(l) for l in (whole / "train_log.jsonl").read_text().splitlines()] == log


def test_bad_policy_configs():
    with pytest.raises(SafeAlignError, match="samples_per_prompt must be >= 2"):
        load_config(safe_rlhf.CONFIG, None, ["samples_per_prompt=1"])
    with pytest.raises(SafeAlignError, match="needs lora=true"):
        load_config(safe_rlhf.CONFIG, None, ["load_in_4bit=true", "lora=false"])
    with pytest.raises(SafeAlignError, match="must be one of sequence, k2, k3"):
        load_config(safe_rlhf.CONFIG, None, ["kl_estimator=k1"])
    with pytest.raises(SafeAlignError, match="train_on. must be one of all, clean"):
        load_config(safe_rlhf.CONFIG, None, ["train_on=some"])
    with pytest.raises(SafeAlignError, match="the RL arms run in float32"):  # not silently ignored
        load_config(safe_rlhf.CONFIG, None, ["precision=bfloat16"])
    assert load_config(safe_rlhf.CONFIG, None, ["precision=auto"]).precision == "auto"
    assert load_config(safe_rlhf.CONFIG, None, []).precision == "float32"


def test_safe_rlhf_with_a_changed_config_starts_over(tiny_causal_lm, prepared_sample, judges, tmp_path):
    safe_rlhf.train(_rl_config(tiny_causal_lm, prepared_sample, judges, tmp_path / "rl", "steps=2"))
    run = safe_rlhf.train(_rl_config(tiny_causal_lm, prepared_sample, judges, tmp_path / "rl", "steps=2",
                                     "cost_threshold=5.0"))
    summary = json.loads((run / "model" / "safealign-complete.json").read_text())
    assert summary["cost_threshold"] == 5.0  # the new config's state, not the old run's resumed
    assert not (run / "checkpoints").exists()  # a finished run keeps no checkpoint


def test_response_logprobs_sum_the_response_tokens_by_hand(tiny_causal_lm):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from safealign.eval.implicit_reward import response_logprobs

    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    model = AutoModelForCausalLM.from_pretrained(tiny_causal_lm).eval()
    prompts = [[{"role": "user", "content": "how do I bake bread"}],
               [{"role": "user", "content": "a much longer question about many different things to pad the batch"}]]
    responses = ["knead the dough", "no"]
    batched = response_logprobs(model, tokenizer, prompts, responses, batch_size=2)
    for messages, response, value in zip(prompts, responses, batched):
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                               return_dict=True)["input_ids"]
        full = tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": response}], tokenize=True,
                                             return_dict=True)["input_ids"]
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([full])).logits[0], dim=-1)  # (T, V)
        by_hand = sum(float(logp[t - 1, full[t]]) for t in range(len(prompt), len(full)))
        assert value == pytest.approx(by_hand, abs=1e-4)


def test_implicit_reward_of_an_untrained_policy_is_zero(tiny_causal_lm, prepared_sample, tmp_path):
    """π = π_ref: every margin is exactly 0, so no pair counts as correct."""
    import shutil

    from safealign.arms.common import MODEL_DIR
    from safealign.eval.implicit_reward import implicit_reward_accuracy

    run = tmp_path / "dpo"
    shutil.copytree(tiny_causal_lm, run / MODEL_DIR)
    (run / "config.yaml").write_text(f"arm: dpo\nconfig: {{model: {tiny_causal_lm}, beta: 0.5}}\n")
    result = implicit_reward_accuracy(run, prepared_sample, pairs=5)
    assert result["mean_margin"] == 0.0 and result["pairwise_accuracy"]["successes"] == 0
    assert result["pairs"] == 5 and result["beta"] == 0.5


def test_merge_adapter_rebuilds_the_trained_model_from_the_saved_adapter(tiny_causal_lm, tmp_path):
    """finish_run merges from the adapter file on a fresh base (ZeRO-3 / FSDP hold the trained model in shards):
    the merged folder computes what the in-memory LoRA model computes, and it is a plain causal LM folder."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from safealign.arms.policy import PolicyConfig, merge_adapter

    cfg = PolicyConfig(model=tiny_causal_lm, lora_targets=["q_proj", "v_proj"])
    torch.manual_seed(0)
    peft = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_causal_lm),
                          LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft.save_pretrained(tmp_path / "adapter")
    merge_adapter(cfg)(tmp_path / "adapter", tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    ids = torch.tensor([[5, 9, 13, 2, 7]])
    with torch.no_grad():
        expected, got = peft(input_ids=ids).logits, merged(input_ids=ids).logits
        base = AutoModelForCausalLM.from_pretrained(tiny_causal_lm)(input_ids=ids).logits
    assert torch.allclose(expected, got, atol=1e-5) and not torch.allclose(base, got, atol=1e-3)
    assert not list((tmp_path / "merged").glob("adapter_*"))
    assert merge_adapter(PolicyConfig(model=tiny_causal_lm, lora=False)) is None


def test_dpo_loss_matches_trl_dpo_trainer_on_a_tiny_model(tiny_causal_lm, tmp_path):
    """losses.dpo_loss over sequence log-probs from the shared helper = the loss trl's DPOTrainer computes
    (random LoRA weights, so π ≠ π_ref and the margin is not 0)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from safealign import losses
    from safealign.eval.implicit_reward import response_logprobs

    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    torch.manual_seed(0)
    rows = [{"prompt": [{"role": "user", "content": q}], "chosen": [{"role": "assistant", "content": c}],
             "rejected": [{"role": "assistant", "content": r}]}
            for q, c, r in (("how do I bake bread", "knead the dough", "no"),
                            ("tell me a joke please", "why did the chicken", "go away now"))]
    args = DPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=2, beta=0.3, report_to=[], max_length=64,
                     use_cpu=True, remove_unused_columns=False)
    trainer = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_causal_lm), ref_model=None, args=args,
                         train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                         peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                lora_dropout=0.0,
                                                init_lora_weights=False, task_type="CAUSAL_LM"))
    model = trainer.model.eval()
    with torch.no_grad():
        trl_loss = trainer.compute_loss(model, next(iter(trainer.get_train_dataloader())))
    prompts = [r["prompt"] for r in rows]
    chosen, rejected = ([r[k][0]["content"] for r in rows] for k in ("chosen", "rejected"))
    policy = [torch.tensor(response_logprobs(model, tokenizer, prompts, texts)) for texts in (chosen, rejected)]
    with model.disable_adapter():
        reference = [torch.tensor(response_logprobs(model, tokenizer, prompts, texts)) for texts in (chosen, rejected)]
    margins = losses.dpo_margin(policy[0], policy[1], reference[0], reference[1], 0.3)
    assert margins.abs().min() > 1e-3
    assert losses.dpo_loss(margins).item() == pytest.approx(trl_loss.item(), abs=1e-5)


def test_safe_rlhf_rounds_retrain_the_judges_on_every_earlier_rounds_pairs_and_recalibrate_d(
        tiny_causal_lm, prepared_sample, judges, tmp_path):
    run = safe_rlhf.train(_rl_config(tiny_causal_lm, prepared_sample, judges, tmp_path / "rl", "rounds=3", "steps=1",
                                     "relabel_prompts=6", "calibration_prompts=2"))
    summary = json.loads((run / "model" / "safealign-complete.json").read_text())
    assert [c["round"] for c in summary["calibrations"]] == [0, 1,
                                                             2]  # d calibrated again for each retrained cost model
    assert summary["cost_run"] == str(run / "round_2" / "cost_model")  # the last round optimised the newest judges
    original = len((prepared_sample / "train.jsonl").read_text().splitlines())
    first, second = ((run / f"round_{r}" / "relabelled_pairs.jsonl").read_text().splitlines() for r in (1, 2))
    pairs = [(run / f"round_{r}" / "train_pairs.jsonl").read_text().splitlines() for r in (1, 2)]
    assert first and len(pairs[0]) == original + len(first)
    assert pairs[1] == pairs[0] + second  # round 2 keeps round 1's pairs, the original ones and its own
    log = [json.loads(l) for l in (run / "train_log.jsonl").read_text().splitlines()]
    assert [r["round"] for r in log] == [0, 1, 2]
    assert [r["cost_threshold"] for r in log] == [c["cost_threshold"] for c in summary["calibrations"]]


def test_train_on_clean_takes_only_the_clean_pairs(prepared_sample):
    from safealign.arms.common import load_split
    from safealign.arms.policy import train_pairs
    from safealign.arms.sft import SFTArmConfig

    clean_ids = {p.id for p, _ in load_split(prepared_sample, "train", part="clean")}
    every = train_pairs(prepared_sample, SFTArmConfig(max_train_pairs=None))
    clean = train_pairs(prepared_sample, SFTArmConfig(max_train_pairs=None, train_on="clean"))
    assert 0 < len(clean) < len(every) and {p.id for p, _ in clean} == clean_ids
    assert all(row["rejected_labels"] and "S8" not in row["rejected_labels"] for _, row in clean)
    assert len(train_pairs(prepared_sample, SFTArmConfig(max_train_pairs=3, train_on="clean"))) == 3


def test_sft_loss_reads_the_response_tokens_only(tiny_causal_lm, tmp_path):
    """The SFT arm's trainer masks the prompt: a batch's labels are -100 on every prompt token and the token
    ids on the response's (the chat template's assistant turn), so the loss is on the response only."""
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from safealign.arms import sft
    from safealign.arms.common import training_arguments

    cfg = load_config(sft.CONFIG, None, [f"model={tiny_causal_lm}", f"out={tmp_path}", "max_length=96"])
    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    prompts = [[{"role": "user", "content": "how do I bake bread"}], [{"role": "user", "content": "say hi"}]]
    responses = ["knead the dough and bake it", "hi"]
    rows = [{"prompt": p, "completion": [{"role": "assistant", "content": r}]} for p, r in zip(prompts, responses)]
    model, tokenizer = sft.load_policy(tiny_causal_lm, cfg)
    args = training_arguments(SFTConfig, cfg, tmp_path, max_length=96, completion_only_loss=True,
                              remove_unused_columns=True, train_sampling_strategy="sequential")
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    batch = next(iter(trainer.get_train_dataloader()))
    for row, (messages, response) in enumerate(zip(prompts, responses)):
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                               return_dict=True)["input_ids"]
        labels, ids = batch["labels"][row], batch["input_ids"][row]
        kept = (labels != -100).nonzero().flatten().tolist()
        assert kept and min(kept) >= len(prompt)  # nothing of the prompt is learned
        assert all(labels[i] == ids[i] for i in kept)
        learned = tokenizer.decode(ids[kept])
        assert response in learned  # the response's tokens are


def _lora(init_random=True):
    from peft import LoraConfig

    return LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0,
                      init_lora_weights=not init_random, task_type="CAUSAL_LM")


def _outputs_and_grads(trainer, batch, num_items=None):
    trainer.model.zero_grad()
    out = trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"],
                        fused_lm_head=True, num_items_in_batch=num_items)
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    return out, grads


@pytest.mark.parametrize("num_items", [None, 7])
def test_the_response_only_head_gives_trls_outputs_and_gradients(tiny_causal_lm, tmp_path, num_items):
    """project_response_tokens_only: the same log-probs (zero off the response), loss, entropy, mean logit,
    top-1, log Σp² and LoRA gradients as trl's fused head that projects every position; the trainer's own
    compute_loss (metrics included) gives the same loss through it."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from safealign.arms.policy import project_response_tokens_only

    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    rows = [{"prompt": [{"role": "user", "content": q}], "completion": [{"role": "assistant", "content": a}]}
            for q, a in (("how do I bake bread at home", "knead the dough"), ("hi", "hello there, how can I help"))]
    torch.manual_seed(0)
    args = SFTConfig(output_dir=str(tmp_path), per_device_train_batch_size=2, report_to=[], max_length=64,
                     use_cpu=True, completion_only_loss=True)
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_causal_lm), args=args,
                         train_dataset=Dataset.from_list(rows), processing_class=tokenizer, peft_config=_lora())
    trainer.model.eval()
    batch = next(iter(trainer.get_train_dataloader()))
    assert (batch["labels"] == -100).any() and (batch["labels"] != -100).any()
    expected, expected_grads = _outputs_and_grads(trainer, batch, num_items)
    expected_loss = trainer.compute_loss(trainer.model, dict(batch)).item()
    assert project_response_tokens_only(trainer)
    got, got_grads = _outputs_and_grads(trainer, batch, num_items)
    assert torch.equal(got.label_mask, expected.label_mask)
    for name in ("log_probs", "entropy"):  # trl's SFT head computes these two (and top-1) of the optional outputs
        assert torch.allclose(getattr(got, name), getattr(expected, name), atol=1e-5), name
    assert torch.equal(got.is_top1, expected.is_top1)
    assert got.loss.item() == pytest.approx(expected.loss.item(), rel=1e-6)
    assert expected_grads and all(torch.allclose(got_grads[n], g, atol=1e-6) for n, g in expected_grads.items())
    assert trainer.compute_loss(trainer.model, dict(batch)).item() == pytest.approx(expected_loss, rel=1e-6)


def test_the_dpo_trainer_gives_the_same_loss_through_the_response_only_head(tiny_causal_lm, tmp_path):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from safealign.arms.policy import project_response_tokens_only

    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    rows = [{"prompt": [{"role": "user", "content": q}], "chosen": [{"role": "assistant", "content": c}],
             "rejected": [{"role": "assistant", "content": r}]}
            for q, c, r in (("how do I bake bread", "knead the dough", "no"),
                            ("tell me a joke please", "why did the chicken", "go away now"))]
    torch.manual_seed(0)
    args = DPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=2, beta=0.3, report_to=[], max_length=64,
                     use_cpu=True, remove_unused_columns=False)
    trainer = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_causal_lm), ref_model=None, args=args,
                         train_dataset=Dataset.from_list(rows), processing_class=tokenizer, peft_config=_lora())
    trainer.model.eval()
    batch = next(iter(trainer.get_train_dataloader()))
    labelled = {**batch, "labels": batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)}
    expected, (expected_out, _) = trainer.compute_loss(trainer.model, dict(batch)), _outputs_and_grads(trainer,
                                                                                                       labelled)
    assert project_response_tokens_only(trainer)
    got, (got_out, _) = trainer.compute_loss(trainer.model, dict(batch)), _outputs_and_grads(trainer, labelled)
    assert expected.item() > 0 and got.item() == pytest.approx(expected.item(), rel=1e-6)
    for name in ("log_probs", "entropy", "mean_logits"):  # what trl's DPO head computes
        assert torch.allclose(getattr(got_out, name), getattr(expected_out, name), atol=1e-5), name


def test_sft_batches_come_in_random_order_not_grouped_by_length_and_train_with_eager_attention_on_a_cpu(
        tiny_causal_lm, tmp_path):
    """The SFT trainer's batches are the random sampler's (grouping by length pads less but trained a less safe
    policy: benchmarks/sft_order.py); a policy loaded for training on a CPU uses eager attention."""
    import random

    from datasets import Dataset

    from safealign.arms import sft

    cfg = load_config(sft.CONFIG, None, [f"model={tiny_causal_lm}", f"out={tmp_path}", "max_length=96",
                                         "batch_size=2"])
    model, tokenizer = sft.load_policy(tiny_causal_lm, cfg)
    assert model.config._attn_implementation == ("sdpa" if torch.cuda.is_available() else "eager")
    rng = random.Random(0)
    words = [" ".join("word" for _ in range(rng.randint(1, 40))) for _ in range(32)]
    rows = [{"prompt": [{"role": "user", "content": f"question {i}"}],
             "completion": [{"role": "assistant", "content": w}]} for i, w in enumerate(words)]

    def widths(**overrides):
        trainer = sft.sft_trainer(model, tokenizer, Dataset.from_list(rows), cfg, tmp_path)
        for name, value in overrides.items():
            setattr(trainer.args, name, value)
        return [b["input_ids"].shape[1] for b in trainer.get_train_dataloader()]

    shipped, grouped = widths(), widths(train_sampling_strategy="group_by_length")
    assert shipped == widths(train_sampling_strategy="random")
    assert len(shipped) == len(grouped) == 16
    assert sum(grouped) < 0.9 * sum(shipped)  # grouping would pad less: the two samplers differ on these rows
