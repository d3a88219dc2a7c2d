import json
from pathlib import Path

import pytest
import torch
import yaml

from safealign.arms import classifier, common, contrastive, cost_model, dpo, reward_model, safe_rlhf, sft, sft_dpo
from safealign.arms.common import load_split
from safealign.cli import main
from safealign.config import load_config
from safealign.errors import SafeAlignError

ARMS = {"reward_model": reward_model, "cost_model": cost_model, "contrastive": contrastive, "classifier": classifier,
        "sft": sft, "dpo": dpo, "sft_dpo": sft_dpo, "safe_rlhf": safe_rlhf}
SHIPPED = Path(reward_model.__file__).resolve().parents[1] / "configs" / "arms"
SMALL = {"reward_model": ["max_train_pairs=40", "save_steps=2"], "cost_model": ["max_train_pairs=40"],
         "contrastive": ["max_train_pairs=40", "knn_train_pairs=30", "knn_k=3"],
         "classifier": ["raw_pairs=40", "filtered_pairs=10", "scaled_pairs=20"]}


@pytest.mark.parametrize("arm", ["classifier", "contrastive", "cost_model", "reward_model"])
def test_arm_trains_and_evaluates_from_the_cli(arm, tiny_bert, prepared_sample, tmp_path, capsys):
    out = tmp_path / arm
    args = ["train", arm, f"model={tiny_bert}", f"data={prepared_sample}", f"out={out}", "batch_size=8"] + SMALL[arm]
    assert main(args) == 0
    console = capsys.readouterr()
    assert console.out.strip().endswith(str(out))
    assert "{'loss'" not in console.out + console.err and "Computing widget" not in console.err  # nothing raw
    assert yaml.safe_load((out / "config.yaml").read_text())["arm"] == arm
    assert main(["eval", str(out), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert json.loads((out / "metrics.json").read_text()) == metrics and metrics["arm"] == arm
    predictions = (out / "predictions.jsonl").read_text().splitlines()
    test_pairs = len((prepared_sample / "test.jsonl").read_text().splitlines())
    if arm == "classifier":
        assert set(metrics["stages"]) == set(classifier.STAGES)
        assert [metrics["stages"][s]["train_pairs"] for s in classifier.STAGES] == [40, 10, 20, 20]
        assert len(predictions) == 2 * test_pairs * 4 and (out / "stage_progression.png").stat().st_size > 1000
    elif arm == "contrastive":
        assert -1 <= metrics["after"]["silhouette"] <= 1 and 0 <= metrics["after"]["knn_f1"] <= 1
        assert len(predictions) == test_pairs and (out / "tsne.png").stat().st_size > 1000
    else:
        assert metrics["raw"]["pairs"] == len(predictions) == test_pairs
        assert 0 <= metrics["safety_f1"]["f1"] <= 1
        log = [json.loads(l) for l in (out / "train_log.jsonl").read_text().splitlines()]
        assert any("loss" in row for row in log)
    # rerunning a finished run trains nothing
    assert main(args) == 0


def test_training_moves_the_reward_model_toward_chosen(tiny_bert, prepared_sample, tmp_path):
    """A few epochs on 40 pairs: the train pairs' Bradley-Terry loss must fall below log 2."""
    cfg = load_config(reward_model.RewardModelConfig, None, [
        f"model={tiny_bert}", f"data={prepared_sample}", f"out={tmp_path / 'rm'}", "max_train_pairs=40",
        "epochs=8", "learning_rate=3e-3", "batch_size=8"])
    run = reward_model.train(cfg)
    log = [json.loads(l) for l in (run / "train_log.jsonl").read_text().splitlines() if "loss" in l]
    losses = [row["loss"] for row in log if "loss" in row]
    assert losses[-1] < 0.69 and losses[-1] < losses[0]


def test_interrupted_training_resumes_from_its_last_checkpoint(tiny_bert, prepared_sample, tmp_path, monkeypatch):
    from transformers import Trainer

    base = [f"model={tiny_bert}", f"data={prepared_sample}", "max_train_pairs=48", "batch_size=8", "save_steps=2"]
    whole = reward_model.train(load_config(reward_model.RewardModelConfig, None, base + [f"out={tmp_path / 'a'}"]))

    cfg = load_config(reward_model.RewardModelConfig, None, base + [f"out={tmp_path / 'b'}"])
    original, calls = Trainer.training_step, []

    def dies_at_step_5(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt("killed")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "training_step", dies_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        reward_model.train(cfg)
    run = tmp_path / "b"
    assert common.last_checkpoint(run).endswith("checkpoint-4") and not common.is_trained(run)

    monkeypatch.setattr(Trainer, "training_step", original)
    seen = []
    real_last_checkpoint = common.last_checkpoint
    monkeypatch.setattr(common, "last_checkpoint", lambda d: seen.append(real_last_checkpoint(d)) or seen[-1])
    reward_model.train(cfg)
    assert seen[0].endswith("checkpoint-4") and common.is_trained(run)
    assert not (run / common.CHECKPOINTS).exists()  # a finished run keeps no checkpoint
    a, b = _weights(whole), _weights(run)
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)  # the same model as an uninterrupted run


def _weights(run: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run / "model" / "model.safetensors"))


def test_changed_config_does_not_resume_stale_checkpoints(tiny_bert, prepared_sample, tmp_path):
    out = tmp_path / "rm"
    base = [f"model={tiny_bert}", f"data={prepared_sample}", f"out={out}", "max_train_pairs=16", "batch_size=8"]
    reward_model.train(load_config(reward_model.RewardModelConfig, None, base))
    assert common.is_trained(out)
    common.start_run("reward_model", load_config(reward_model.RewardModelConfig, None, base + ["seed=7"]))
    assert not common.is_trained(out)


def test_encode_cuts_the_context_from_the_left(tiny_bert):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    context = [{"role": "user", "content": "one two three four five six seven eight nine ten"}]
    ids = common.encode(tokenizer, context, "alpha beta gamma", max_length=10, max_response_tokens=4)
    text = tokenizer.decode(ids)
    assert len(ids) == 10 and text.endswith("[SEP] alpha beta gamma [SEP]") and "ten" in text and "one" not in text
    assert len(common.encode(tokenizer, None, "word " * 50, max_length=12, max_response_tokens=4)) == 12


@pytest.mark.parametrize("path", sorted(SHIPPED.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_arm_yaml_loads(path):
    arm = path.stem.removesuffix("_paper")
    cfg = load_config(ARMS[arm].CONFIG, path)
    assert cfg.epochs > 0
    if path.stem.endswith("_paper") and arm == "sft_dpo":
        assert cfg.sft_run != "runs/sft"  # starts from the paper-scale sft run, not the offline one
    elif path.stem.endswith("_paper"):
        assert cfg.model not in ("minilm", "smollm2-135m-instruct") or arm == "contrastive"


def test_bad_arm_configs():
    from safealign.errors import SafeAlignError

    with pytest.raises(SafeAlignError, match="max_response_tokens must be below max_length"):
        load_config(reward_model.RewardModelConfig, None, ["max_length=32", "max_response_tokens=32"])
    with pytest.raises(SafeAlignError, match="unknown classifier stage 'cooked'"):
        load_config(classifier.ClassifierConfig, None, ["stages=[raw, cooked]"])
    with pytest.raises(SafeAlignError, match="not a run directory"):
        common.read_run("/nonexistent")


@pytest.mark.slow
@pytest.mark.parametrize("arm", ["reward_model", "dpo"])
def test_accelerate_launch_two_cpu_processes_trains_the_arm_unchanged(arm, tiny_bert, tiny_causal_lm, prepared_sample,
                                                                     tmp_path):
    """DDP on CPU (gloo): `accelerate launch` with the shipped configs/accelerate/ddp.yaml runs the arm unchanged.

    On a machine without GPUs, accelerate's torchrun path gives two gloo processes and the arm's Trainer
    sees MULTI_CPU with world size 2. (`--cpu --num_processes 2` is not that: accelerate 1.x hands a
    multi-process CPU job to mpirun with a hostfile, and without one it starts a single process.)
    """
    import os
    import subprocess
    import sys
    from importlib import resources

    out = tmp_path / "ddp"
    config = resources.files("safealign") / "configs" / "accelerate" / "ddp.yaml"
    model = tiny_bert if arm == "reward_model" else tiny_causal_lm
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
               "-m", "safealign.cli", "train", arm, f"model={model}", f"data={prepared_sample}",
               f"out={out}", "max_train_pairs=32", "batch_size=4", "save_steps=100"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env=os.environ | {"SAFEALIGN_QUIET": "1", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert common.is_trained(out)
    log = [json.loads(l) for l in (out / "train_log.jsonl").read_text().splitlines()]
    # 32 pairs, 2 processes x 4 pairs per step: 4 optimiser steps, not the 8 of a single process
    assert max(row.get("step", 0) for row in log) == 4


def test_a_checkpoint_cut_short_by_a_kill_is_removed_and_the_one_before_used(tmp_path):
    checkpoints = tmp_path / common.CHECKPOINTS
    for step, state in ((2, '{"global_step": 2}'), (4, None), (6, '{"global_st')):
        folder = checkpoints / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(b"")
        if state is not None:
            (folder / "trainer_state.json").write_text(state)
    assert common.last_checkpoint(tmp_path) == str(checkpoints / "checkpoint-2")
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-2"]
    (checkpoints / "checkpoint-2" / "trainer_state.json").unlink()
    assert common.last_checkpoint(tmp_path) is None


def test_a_changed_input_discards_the_old_model(tmp_path):
    """A run that reads another run (a judge, the sft model) retrains when that run's model changes."""
    from dataclasses import dataclass

    from safealign.arms.common import DONE, MODEL_DIR, is_trained, start_run

    judge = tmp_path / "judge"
    (judge / MODEL_DIR).mkdir(parents=True)
    (judge / MODEL_DIR / DONE).write_text('{"train_seconds": 1}')

    @dataclass
    class Cfg:
        reward_run: str
        out: str

    cfg = Cfg(str(judge), str(tmp_path / "arm"))
    run = start_run("x", cfg)
    (run / MODEL_DIR).mkdir()
    (run / MODEL_DIR / DONE).write_text("{}")
    assert is_trained(start_run("x", cfg))  # nothing changed: the model stays
    (judge / MODEL_DIR / DONE).write_text('{"train_seconds": 2}')  # the judge was retrained
    assert not is_trained(start_run("x", cfg))


def test_a_new_data_seed_discards_the_model_trained_on_the_old_split(small_pairs_file, tmp_path):
    """Re-preparing the data with another seed changes its manifest: the arm retrains instead of scoring the new
    test split with a model trained on part of it."""
    from safealign.arms.common import DONE, MODEL_DIR, is_trained, start_run
    from safealign.arms.reward_model import RewardModelConfig
    from safealign.config import DataConfig
    from safealign.data.prepare import prepare

    data = tmp_path / "data"
    prepare(DataConfig(source=str(small_pairs_file), seed=0), data)
    cfg = RewardModelConfig(data=str(data), out=str(tmp_path / "rm"))
    run = start_run("reward_model", cfg)
    (run / MODEL_DIR).mkdir()
    (run / MODEL_DIR / DONE).write_text("{}")
    assert is_trained(start_run("reward_model", cfg))
    prepare(DataConfig(source=str(small_pairs_file), seed=1), data)
    assert not is_trained(start_run("reward_model", cfg))


def test_bradley_terry_matches_trl_reward_trainer_on_a_tiny_model(tiny_bert, prepared_sample, tmp_path):
    """losses.bradley_terry on the scorer's outputs = the loss trl's RewardTrainer computes on the same rows."""
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    from safealign.arms.common import load_split, pad_batch
    from safealign.arms.reward_model import RewardModelConfig, load_scorer, preference_rows
    from safealign.losses import bradley_terry

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    torch.manual_seed(0)
    model = load_scorer(tiny_bert, tokenizer)
    torch.nn.init.normal_(model.classifier.weight, std=30.0)  # a random head far from 0, so the scores differ
    rows = preference_rows(tokenizer, load_split(prepared_sample, "train")[:4],
                           RewardModelConfig(max_length=48, max_response_tokens=24))
    args = RewardConfig(output_dir=str(tmp_path), per_device_train_batch_size=4, report_to=[], use_cpu=True,
                        max_length=None)
    trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    model.eval()
    with torch.no_grad():
        trl_loss = trainer.compute_loss(model, next(iter(trainer.get_train_dataloader())))
        scores = {}
        for key in ("chosen_ids", "rejected_ids"):
            ids, mask = pad_batch([r[key] for r in rows], tokenizer.pad_token_id)
            scores[key] = model(input_ids=ids, attention_mask=mask).logits[:, 0]
    assert (scores["chosen_ids"] - scores["rejected_ids"]).abs().max() > 1e-4
    assert bradley_terry(scores["chosen_ids"], scores["rejected_ids"]).item() == pytest.approx(trl_loss.item(),
                                                                                               abs=1e-5)


def test_every_classifier_stage_trains_at_least_min_steps():
    from safealign.arms.classifier import ClassifierConfig, stage_steps

    # 440 cases (220 pairs) at batch 16: one epoch is ceil(27.5) = 28 steps; min_steps 100 raises it to 100
    assert stage_steps(440, ClassifierConfig(batch_size=16, epochs=1)) == 28
    assert stage_steps(440, ClassifierConfig(batch_size=16, epochs=1, min_steps=100)) == 100
    assert stage_steps(2400, ClassifierConfig(batch_size=16, epochs=1, min_steps=100)) == 150  # already more


def test_a_stage_predicting_one_class_for_95_percent_is_degenerate():
    from safealign.eval.classifier_eval import one_class_share

    def rows(unsafe):
        return [{"predicted_unsafe": i < unsafe} for i in range(100)]

    assert one_class_share(rows(100)) == {"predicted_unsafe_share": 1.0, "degenerate": True}  # flags everything
    assert one_class_share(rows(95))["degenerate"] and one_class_share(rows(5))["degenerate"]
    assert not one_class_share(rows(94))["degenerate"] and not one_class_share(rows(6))["degenerate"]
    assert one_class_share([]) == {"predicted_unsafe_share": 0.0, "degenerate": False}


def test_reward_and_cost_models_train_on_disjoint_pairs(prepared_sample):
    """Safe RLHF's two signals from two kinds of labels: the reward model's pairs (rejected response harm-free,
    S8) and the cost model's (the Clean pairs) never share a pair, and together they are the whole split."""
    from safealign.arms.cost_model import CostModelConfig
    from safealign.arms.reward_model import RewardModelConfig

    reward = {p.id for p, _ in load_split(prepared_sample, "train", RewardModelConfig().train_on)}
    cost = {p.id for p, _ in load_split(prepared_sample, "train", CostModelConfig().train_on)}
    every = {p.id for p, _ in load_split(prepared_sample, "train")}
    assert reward and cost and not reward & cost and reward | cost == every
    with pytest.raises(SafeAlignError, match="pairs must be one of all, clean, benign"):
        load_split(prepared_sample, "train", "some")


def test_unsafe_weight_balances_the_labelled_classes():
    assert cost_model.unsafe_weight_of([1, -1, -1, -1, 0, 0]) == 3.0  # 3 safe / 1 unsafe; unknown (0) not counted
    assert cost_model.unsafe_weight_of([-1, -1]) == 1.0 and cost_model.unsafe_weight_of([1, 0]) == 1.0  # one absent
