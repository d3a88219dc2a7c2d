from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safealign.audit import PROFILES, AuditConfig, load_audit_config, profile_path
from safealign.config import DataConfig, dump_yaml, load_config, to_dict
from safealign.errors import SafeAlignError

REPO = Path(__file__).resolve().parents[1]


def test_defaults_and_overrides():
    cfg = load_config(DataConfig, None, ["seed=3", "split.train=0.7", "split.dev=0.2", "skip_bad=yes",
                                         "max_pairs=null", "source=my file.jsonl"])
    assert (cfg.seed, cfg.split.train, cfg.split.dev, cfg.skip_bad, cfg.max_pairs) == (3, 0.7, 0.2, True, None)
    assert cfg.source == "my file.jsonl"
    assert load_config(DataConfig, None, ["max_pairs=5"]).max_pairs == 5
    nested = load_config(AuditConfig, None, ["data.seed=2", "split={train: 0.5, dev: 0.25, test: 0.25}".replace(
        "split", "data.split")])
    assert nested.data.seed == 2 and nested.data.split.test == 0.25


@pytest.mark.parametrize("override, message", [
    ("seed=abc", "override 'seed=abc': 'seed' must be int"),
    ("bogus=1", "unknown key 'bogus'"),
    ("split.nope=1", "unknown key 'split.nope'"),
    ("seed.x=1", "'seed' is not a section"),
    ("skip_bad=maybe", "'skip_bad' must be bool"),
    ("noequals", "expected key=value"),
    ("=3", "expected key=value"),
    ("split=3", "'split' must be a mapping"),
    ("split.train=0.9", "split shares must be >= 0 and sum to 1"),
    ("max_pairs=0", "max_pairs must be >= 1"),
])
def test_bad_overrides(override, message):
    with pytest.raises(SafeAlignError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(DataConfig, None, [override])


def test_yaml_errors(tmp_path):
    cases = {"list.yaml": ("- a\n- b\n", "expected a mapping"), "bad.yaml": ("a: [1,\n", "not valid YAML"),
             "unknown.yaml": ("sede: 1\n", "unknown key 'sede'"), "type.yaml": ("seed: [1]\n", "'seed' must be int"),
             "python.yaml": ("seed: !!python/object/apply:os.system ['true']\n", "not valid YAML")}
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(SafeAlignError, match=message):
            load_config(DataConfig, tmp_path / name)
    (tmp_path / "utf.yaml").write_bytes(b"seed: \xff\n")
    with pytest.raises(SafeAlignError, match="not valid UTF-8"):
        load_config(DataConfig, tmp_path / "utf.yaml")
    with pytest.raises(SafeAlignError, match="config file not found"):
        load_config(DataConfig, tmp_path / "missing.yaml")
    (tmp_path / "empty.yaml").write_text("")
    assert load_config(DataConfig, tmp_path / "empty.yaml") == DataConfig()


@pytest.mark.parametrize("profile", PROFILES)
def test_every_shipped_audit_profile_loads(profile, tmp_path):
    cfg = load_audit_config(profile)
    assert isinstance(cfg, AuditConfig) and cfg.out == f"runs/{'audit' if profile == 'offline' else profile}"
    dumped = tmp_path / "roundtrip.yaml"  # a dumped config loads back to the same config
    dumped.write_text(dump_yaml(cfg))
    assert load_config(AuditConfig, dumped) == cfg


def test_every_yaml_in_the_repo_is_a_loadable_config():
    """Every YAML under configs/ loads as the config it is for: audit profiles here, arm configs by arm."""
    from safealign.audit import DISCRIMINATIVE, GENERATIVE  # built from arms.ARMS

    shipped = sorted((REPO / "src" / "safealign" / "configs").rglob("*.yaml"))
    assert len(shipped) >= 19, "shipped configs went missing"
    for path in shipped:
        if path.parent.name == "audit":
            load_config(AuditConfig, path)
        elif path.parent.name == "arms":
            load_config((DISCRIMINATIVE | GENERATIVE)[path.stem.removesuffix("_paper")].CONFIG, path)
        elif path.parent.name == "accelerate":
            _check_accelerate_config(path)
        else:
            pytest.fail(f"{path}: a shipped config that no test knows how to load")


def _check_accelerate_config(path):
    """An accelerate config: parsed by accelerate's own loader, with the fields its launcher needs."""
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(path))
    assert config.distributed_type in ("MULTI_GPU", "DEEPSPEED", "FSDP") and config.num_processes >= 2
    if config.distributed_type == "DEEPSPEED":
        assert config.deepspeed_config["zero_stage"] in (2, 3)
    if config.distributed_type == "FSDP":
        assert config.fsdp_config["fsdp_sharding_strategy"] == "FULL_SHARD"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=30), max_size=4))
def test_fuzz_overrides_never_crash(overrides):
    try:
        load_config(AuditConfig, None, overrides)
    except SafeAlignError:
        pass


def test_the_cli_offers_every_shipped_profile():
    from safealign.cli import build_parser

    audit = next(a for a in build_parser()._subparsers._group_actions[0].choices["audit"]._actions
                 if a.dest == "profile")
    assert set(audit.choices) == set(PROFILES) == {p.stem for p in profile_path("offline").parent.glob("*.yaml")}


def test_the_rl_arms_start_from_the_sft_model_unless_told_otherwise(tmp_path):
    from safealign.audit import load_audit_config, policy_config

    cfg = load_audit_config("offline")
    for name in ("safe_rlhf", "reward_only_rlhf"):
        arm = policy_config(cfg, name, tmp_path, tmp_path / "data")
        assert arm.model == str(tmp_path / "sft" / "model")  # start and KL reference: the SFT policy
    assert policy_config(cfg, "reward_only_rlhf", tmp_path, tmp_path / "data").fixed_lambda == 0.0
    base = load_audit_config("offline", overrides=["rlhf_start=base"])
    assert policy_config(base, "safe_rlhf", tmp_path, tmp_path / "data").model == base.policy
    with pytest.raises(SafeAlignError, match="add sft to policies, or set rlhf_start=base"):
        load_audit_config("offline", overrides=["policies=[base,safe_rlhf]"])


def test_a_policy_trained_on_the_clean_split_retrains_when_the_labels_change(tmp_path):
    import json
    from dataclasses import replace

    from safealign.audit import Stages, load_audit_config, policy_config, policy_train_key

    cfg = load_audit_config("offline", None, [])
    (tmp_path / "stages.json").write_text(json.dumps({"label": {"hash": "labels-1"}, "train_sft": {"hash": "sft-1"}}))
    stages = Stages(tmp_path)
    sft = policy_config(cfg, "sft", tmp_path, tmp_path / "data")
    assert sft.train_on == "clean"  # the offline profile
    before = policy_train_key(sft, {"train.jsonl": "d"}, stages, after_sft=False)
    stages.done["label"] = {"hash": "labels-2"}  # relabelled (another taxonomy): other Clean pairs
    assert policy_train_key(sft, {"train.jsonl": "d"}, stages, after_sft=False) != before
    every = replace(sft, train_on="all")  # reads no labels: a relabelling leaves it be
    assert policy_train_key(every, {"train.jsonl": "d"}, stages, after_sft=False) == \
        policy_train_key(every, {"train.jsonl": "d"}, Stages(tmp_path), after_sft=False)
    dpo = policy_config(cfg, "sft_dpo", tmp_path, tmp_path / "data")
    first = policy_train_key(dpo, {"train.jsonl": "d"}, stages, after_sft=True)
    stages.done["train_sft"] = {"hash": "sft-2"}  # the SFT run it starts from changed
    assert policy_train_key(dpo, {"train.jsonl": "d"}, stages, after_sft=True) != first


def test_the_default_audit_trains_exactly_what_safealign_train_trains():
    """One source of truth per setting: the offline profile overlays no arm section, so each arm in the audit
    is configured exactly as `safealign train ARM` (configs/arms/ARM.yaml) configures it, bar what the audit
    sets itself (its data, run directories and models); a profile's overlay changes only what it names."""
    from safealign.audit import ARM_SECTIONS, GENERATIVE, SET_BY_THE_AUDIT, arm_config_path, profile_path
    from safealign.audit import DISCRIMINATIVE as D
    from safealign.io import read_yaml

    raw = read_yaml(profile_path("offline"), "config")
    assert not set(ARM_SECTIONS) & set(raw), "the offline profile must not override an arm's own YAML"
    audit = load_audit_config("offline")
    for arm in ARM_SECTIONS:
        alone = load_config((D | GENERATIVE)[arm].CONFIG, arm_config_path(arm))
        strip = (lambda c: {k: v for k, v in to_dict(c).items() if k not in SET_BY_THE_AUDIT})
        assert strip(getattr(audit, arm)) == strip(alone), f"{arm}: the audit and `safealign train {arm}` disagree"
    smoke, smoke_raw = load_audit_config("smoke"), read_yaml(profile_path("smoke"), "config")
    sft_alone = load_config(GENERATIVE["sft"].CONFIG, arm_config_path("sft"))
    assert smoke.sft.max_train_pairs == smoke_raw["sft"]["max_train_pairs"] == 8  # the overlay
    assert smoke.sft.learning_rate == sft_alone.learning_rate and smoke.sft.train_on == sft_alone.train_on  # the rest
    paper = load_audit_config("paper")
    assert paper.arm_defaults == "paper" and paper.reward_model.learning_rate == 1.0e-5
