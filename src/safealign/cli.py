"""`safealign <command>`: the command line. Every command has --help; trailing `key=value` words override
config fields (`seed=1`, `split.train=0.7`, for the audit `data.seed=1`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from safealign import __version__
from safealign.arms import ARMS, POLICIES, arm_module
from safealign.arms.common import read_run
from safealign.audit import AuditConfig, arm_config_path, load_audit_config, run_audit
from safealign.config import DataConfig, describe, load_config
from safealign.data.curate import label_prepared
from safealign.data.prepare import is_prepared, prepare, read_manifest, splits_of_source
from safealign.data.stats import data_stats
from safealign.data.taxonomy import load_taxonomy
from safealign.errors import SafeAlignError
from safealign.eval.evaluators import EVALUATORS
from safealign.eval.judges import build_judges, measure_hub_cards, measure_labelled_card
from safealign.eval.keyword_baseline import keyword_baselines
from safealign.eval.policy_eval import BaseConfig, PolicyEvalConfig, base_run, evaluate_policy
from safealign.eval.shared_failures import shared_failures
from safealign.eval.stats import Rate
from safealign.io import write_json_atomic
from safealign.models import list_models, resolve

DATA_KEYS = "\n".join(f"  {k} (default {d}): {h}" for k, d, h in describe(DataConfig))



def _audit_keys() -> str:
    return "\n".join(f"  {k} (default {d}): {h}" for k, d, h in describe(AuditConfig))


def _data_config(args) -> DataConfig:
    overrides = list(args.overrides)
    if getattr(args, "source", None):
        overrides.insert(0, f"source={args.source}")
    if getattr(args, "skip_bad", False):
        overrides.append("skip_bad=true")
    if getattr(args, "taxonomy", None):
        overrides.append(f"taxonomy={args.taxonomy}")
    return load_config(DataConfig, args.config, overrides)


def _print_json(obj):
    print(json.dumps(obj, indent=2, ensure_ascii=False))


def _table(title: str, columns: list[str], rows: list[list]):
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="left" if column == columns[0] else "right")
    for row in rows:
        table.add_row(*[str(cell) for cell in row])
    Console().print(table)


# --------------------------------------------------------------------------- data


def cmd_data_prepare(args):
    out = prepare(_data_config(args), args.out)
    manifest = read_manifest(out)
    if args.json:
        return _print_json(manifest)
    counts = manifest["counts"]
    print(f"wrote {out}: train {counts['train']}, dev {counts['dev']}, test {counts['test']} pairs "
          f"({counts['bad_rows_skipped']} bad rows skipped, listed in {out / 'bad_rows.jsonl'})")
    for line in manifest["bad_rows_first"]:
        print(f"  skipped: {line}")


def cmd_data_stats(args):
    stats = data_stats(splits_of_source(_data_config(args)))
    if args.json:
        return _print_json(stats)
    _stats_table(stats)


def _stats_table(stats: dict):
    names = list(stats)
    fmt = (lambda s: f"{s['mean']:.1f}/{s['median']:g}/{s['max']}")
    _table("HH-RLHF pairs (words and turns: mean/median/max)", ["", *names], [
        ["pairs", *[stats[n]["pairs"] for n in names]],
        ["context words", *[fmt(stats[n]["words_context"]) for n in names]],
        ["chosen words", *[fmt(stats[n]["words_chosen"]) for n in names]],
        ["rejected words", *[fmt(stats[n]["words_rejected"]) for n in names]],
        ["turns", *[fmt(stats[n]["turns_per_dialogue"]) for n in names]],
        ["chosen refusals", *[f"{100 * stats[n]['chosen_refusal_share']:.1f}%" for n in names]],
        ["rejected refusals", *[f"{100 * stats[n]['rejected_refusal_share']:.1f}%" for n in names]],
        ["identical pairs", *[stats[n]["identical_responses"] for n in names]],
    ])


def _prepared_dir(cfg: DataConfig, out: str | None) -> Path:
    """`cfg.source` if it is a prepared directory, else the source prepared into `out` (default runs/data)."""
    if is_prepared(cfg.source):
        return Path(cfg.source)
    return prepare(cfg, out or "runs/data")


def cmd_data_label(args):
    cfg = _data_config(args)
    taxonomy = load_taxonomy(cfg.taxonomy)
    prepared = _prepared_dir(cfg, args.data_out)
    summary = label_prepared(prepared, taxonomy, args.out, args.noise_samples, cfg.seed)
    if args.json:
        return _print_json(summary)
    out = Path(args.out) if args.out else prepared / "labels"
    _counts_table(summary)
    print(f"wrote {out} (labels.jsonl, clean/, counts.json, noise_report.md with sampled noisy pairs)")


def _counts_table(summary: dict):
    splits = list(summary["rejected_counts"])
    _table(f"Rejected responses per category (taxonomy {summary['taxonomy_version']})", ["category", *splits], [
        [f"{cid} {name}", *[summary["rejected_counts"][s][cid] for s in splits]]
        for cid, name in summary["categories"].items()
    ] + [["Clean pairs (S8 dropped)", *[summary["clean_pairs"][s] for s in splits]]])
    print(f"noise: {summary['noise']['all']} of {summary['pairs']['all']} pairs "
          f"({100 * summary['noise_share']:.1f}%) have a benign rejected response and are left out of Clean")


def cmd_data_baseline(args):
    cfg = _data_config(args)
    taxonomy = load_taxonomy(cfg.taxonomy)
    test = splits_of_source(cfg)["test"]
    clean = [p for p in test if taxonomy.label(p.rejected) != [taxonomy.benign]]
    metrics = {"taxonomy_version": taxonomy.version,
               "raw": keyword_baselines(test, taxonomy)[0], "clean": keyword_baselines(clean, taxonomy)[0]}
    if args.out:
        write_json_atomic(Path(args.out) / "metrics.json", metrics)
    if args.json:
        return _print_json(metrics)
    _baseline_table(metrics)


def _baseline_table(metrics: dict):
    def show(r):
        return str(Rate(r["successes"], r["n"], r["low"], r["high"]))

    _table("Keyword baselines on the test split (Wilson 95% CI)", ["", "raw", "Clean"], [
        ["pairs", metrics["raw"]["pairs"], metrics["clean"]["pairs"]],
        ["pairwise accuracy", show(metrics["raw"]["pairwise_accuracy"]), show(metrics["clean"]["pairwise_accuracy"])],
        ["pairwise ties", metrics["raw"]["pairwise_tie_share"], metrics["clean"]["pairwise_tie_share"]],
        ["binary accuracy", show(metrics["raw"]["binary"]["accuracy"]), show(metrics["clean"]["binary"]["accuracy"])],
        ["binary F1 (unsafe)", metrics["raw"]["binary"]["f1"], metrics["clean"]["binary"]["f1"]],
    ])


# --------------------------------------------------------------------------- arms


def _arms():
    return {name: arm_module(name) for name in ARMS}


def _arm_config_path(arm: str, config: str | None) -> Path:
    """--config is a YAML path, or the name of a shipped arm config (e.g. reward_model_paper); without it, the
    arm's shipped YAML (configs/arms/ARM.yaml), the settings the default audit trains it with."""
    if config is None:
        return arm_config_path(arm)
    if Path(config).exists():
        return Path(config)
    shipped = arm_config_path(config)
    if not shipped.is_file():
        raise SafeAlignError(f"{config}: no such config file, and no shipped config of that name")
    return shipped


def cmd_train(args):
    if args.arm == "base":
        cfg = load_config(BaseConfig, args.config, list(args.overrides))
        return print(base_run(cfg.model, cfg.out))
    arm = _arms()[args.arm]
    overrides = list(args.overrides)
    cfg = load_config(arm.CONFIG, _arm_config_path(args.arm, args.config), overrides)
    if not cfg.out:
        cfg.out = f"runs/{args.arm}"
    print(arm.train(cfg))


def cmd_eval(args):
    name, _ = read_run(args.run_dir)
    if name in POLICIES:
        metrics = evaluate_policy(Path(args.run_dir), load_config(PolicyEvalConfig, None, list(args.overrides)))
        return _print_json(metrics) if args.json else _policy_table({name: metrics})
    if name not in EVALUATORS:
        raise SafeAlignError(f"{args.run_dir}: arm '{name}' has no evaluation here")
    metrics = EVALUATORS[name](Path(args.run_dir))
    if args.json:
        return _print_json(metrics)
    _arm_table(metrics)
    print(f"wrote {Path(args.run_dir) / 'metrics.json'} and predictions.jsonl")


def _show(r: dict) -> str:
    return str(Rate(r["successes"], r["n"], r["low"], r["high"]))


def _arm_table(m: dict):
    arm = m["arm"]
    if arm in ("reward_model", "cost_model"):
        _table(f"{arm} on test (Wilson 95% CI)", ["", "raw", "Clean"], [
            ["pairwise accuracy", _show(m["raw"]["pairwise_accuracy"]), _show(m["clean"]["pairwise_accuracy"])],
            ["keyword baseline", _show(m["keyword_baseline"]["raw"]), _show(m["keyword_baseline"]["clean"])],
            ["mean score gap", m["raw"]["mean_gap"], m["clean"]["mean_gap"]],
            ["safety F1 (dev threshold)", m["safety_f1"]["f1"], ""],
        ])
    elif arm == "contrastive":
        _table("contrastive encoder on test", ["", "stock MiniLM", "fine-tuned"], [
            ["silhouette (chosen vs rejected)", m["before"]["silhouette"], m["after"]["silhouette"]],
            ["kNN F1", m["before"]["knn_f1"], m["after"]["knn_f1"]],
            ["chosen nearer its context", _show(m["before"]["pairwise_accuracy"]),
             _show(m["after"]["pairwise_accuracy"])],
        ])
    elif arm == "classifier":
        _table("safety classifier: curation ablation (accuracy, Wilson 95% CI; F1 of unsafe)",
               ["stage", "pairs", "raw test", "F1", "Clean test", "F1"], [
                   [stage + (" (degenerate)" if v.get("degenerate") else ""), v["train_pairs"],
                    _show(v["raw"]["accuracy"]), v["raw"]["f1"],
                    _show(v["clean"]["accuracy"]), v["clean"]["f1"]] for stage, v in m["stages"].items()
               ] + [["keyword baseline", "-", _show(m["keyword_baseline"]["raw"]["accuracy"]),
                     m["keyword_baseline"]["raw"]["f1"], _show(m["keyword_baseline"]["clean"]["accuracy"]),
                     m["keyword_baseline"]["clean"]["f1"]]])


def _policy_table(policies: dict[str, dict]):
    def cell(m, *keys):
        for key in keys:
            m = m.get(key, {}) if isinstance(m, dict) else {}
        return _show(m) if m else "-"

    _table("Policies (Wilson 95% CI)", ["policy", "held-out harmful [harm]", "over-refusal [refusal]",
                                         "HmR unseen [harm]", "HpR [helpfulness]", "CAS"], [
        [name, cell(m, "held_out_harmful_response_rate"), cell(m, "over_refusal_rate"), cell(m, "harmlessness_rate"),
         cell(m, "helpfulness_rate"), m.get("combined_alignment_score", "-")] for name, m in policies.items()])
    for name, m in policies.items():
        bench = m.get("benchmarks", {})
        if "xstest" in bench:
            x = bench["xstest"]
            print(f"  {name} XSTest: over-refusal on safe prompts {_show(x['over_refusal'])}, compliance on unsafe "
                  f"prompts {_show(x['unsafe_compliance'])} [refusal; {x['refusal']}]")
        if "harmbench" in bench:
            h = bench["harmbench"]
            print(f"  {name} HarmBench: attack success rate (direct requests) {_show(h['attack_success_rate'])} "
                  f"[harm; {h['left_out']} left out]; " + ", ".join(
                      f"{k} {100 * v['value']:.0f}%" for k, v in h["by_semantic_category"].items()))
    judges = next(iter(policies.values()), {}).get("judges", {})
    for role, j in judges.items():
        card = j.get("card")
        print(f"  [{role}] {j['judge']}: " + (f"κ {card['kappa']:.2f} [{card['kappa_ci'][0]:.2f}, "
                                             f"{card['kappa_ci'][1]:.2f}] on {card['n']} human-labelled rows"
                                             if card else "no validity card") +
              ("" if j["valid"] else ", BELOW THE VALIDITY FLOOR: not in the verdict") +
              (", a training signal of the RL arms" if j["training_signal"] else ""))


def cmd_judges_build(args):
    result = build_judges(Path(args.out), seed=args.seed, xstest=args.xstest, encoder=args.encoder, refit=args.refit)
    if args.json:
        return _print_json(result)
    _table("Judges: validity on held-out human labels", ["role", "judge", "n", "accuracy", "F1", "Cohen's κ [95% CI]",
                                                         "valid", "baseline κ"], [
        [role, c["judge"], c["n"], _show(c["accuracy"]), c["f1"], f"{c['kappa']:.3f} [{c['kappa_ci'][0]:.3f}, "
         f"{c['kappa_ci'][1]:.3f}]", "yes" if c["valid"] else f"no (< {c['kappa_floor']})",
         c["baseline"]["kappa"] if c.get("baseline") else "-"] for role, c in result["cards"].items()])
    print(f"wrote {Path(args.out) / 'judges.json'} and harm_judge.npz")


def cmd_judges_card(args):
    specs = {}
    for item in args.judges:
        role, sep, spec = item.partition("=")
        if not sep or role not in ("refusal", "harm", "helpfulness") or not spec:
            raise SafeAlignError(f"judges card: expected ROLE=ID with ROLE refusal, harm or helpfulness, got '{item}'")
        specs[role] = spec
    result = measure_hub_cards(Path(args.out), specs, seed=args.seed, xstest=args.xstest, batch_size=args.batch_size)
    cards = {(spec, role): result["hub_cards"][spec][role] for role, spec in specs.items()}
    if args.json:
        return _print_json({f"{role}={spec}": c for (spec, role), c in cards.items()})
    _table("Hub judges: validity on held-out human labels", ["role", "judge", "n", "accuracy", "F1",
                                                             "Cohen's κ [95% CI]", "valid", "unparsed"], [
        [role, spec, c["n"], _show(c["accuracy"]), c["f1"], f"{c['kappa']:.3f} [{c['kappa_ci'][0]:.3f}, "
         f"{c['kappa_ci'][1]:.3f}]", "yes" if c["valid"] else f"no (< {c['kappa_floor']})", c["unparsed"]]
        for (spec, role), c in cards.items()])
    print(f"wrote {Path(args.out) / 'judges.json'} (hub_cards)")


def cmd_judges_check(args):
    role, sep, spec = args.judge.partition("=")
    if not sep or role not in ("refusal", "harm") or not spec:
        raise SafeAlignError(f"judges check: expected ROLE=SPEC with ROLE harm or refusal, got '{args.judge}'")
    card = measure_labelled_card(Path(args.out), role, spec, Path(args.labels), seed=args.seed,
                                 batch_size=args.batch_size, of_run=args.of_run)
    if args.json:
        return _print_json(card)
    base = card["baseline"]
    _table(f"{role}={spec} on {Path(args.labels).name} (clustered by prompt)",
           ["judge", "n", "prompts", "accuracy", "F1", "Cohen's κ [95% CI]", "valid", "baseline", "baseline κ"], [
               [card["judge"], card["n"], card["clusters"], _show(card["accuracy"]), card["f1"],
                f"{card['kappa']:.3f} [{card['kappa_ci'][0]:.3f}, {card['kappa_ci'][1]:.3f}]",
                "yes" if card["valid"] else f"no (< {card['kappa_floor']})", base["judge"], base["kappa"]]])
    print(f"wrote {Path(args.out) / 'judges.json'} (labelled_cards)")


def cmd_failures(args):
    summary = shared_failures(Path(args.reward_run), Path(args.contrastive_run), Path(args.data), Path(args.out))
    _print_json(summary)


# --------------------------------------------------------------------------- models, audit


def cmd_models_list(args):
    rows = list_models()
    if args.json:
        return _print_json(rows)
    _table("Models that resolve offline (any hub id or local folder also resolves)",
           ["name", "kind", "installed", "cached at"],
           [[r["name"], r["kind"], "yes" if r["installed"] else f"no: {r['install']}",
             r.get("cached") or "converted on first use"] for r in rows])


def cmd_models_resolve(args):
    print(resolve(args.name))


def cmd_audit(args):
    overrides = list(args.overrides) + ([f"out={args.out}"] if args.out else [])
    cfg = load_audit_config(args.profile, args.config, overrides)
    if args.quiet:
        os.environ["SAFEALIGN_QUIET"] = "1"  # safealign.progress: no bars
    if args.json:  # stdout carries the JSON alone: anything a library prints during the run goes to stderr
        import contextlib

        with contextlib.redirect_stdout(sys.stderr):
            result = run_audit(cfg, log=lambda *_: None)
    else:
        result = run_audit(cfg)
    if args.json:
        _print_json(result)
        return 1 if result["failed"] else 0
    out = Path(result["out"])
    _stats_table(json.loads((out / "stats.json").read_text()))
    _counts_table(json.loads((out / "data" / "labels" / "counts.json").read_text()))
    if (out / "keyword_baseline" / "metrics.json").is_file():
        _baseline_table(json.loads((out / "keyword_baseline" / "metrics.json").read_text()))
    for name in result["arms"]:
        if (out / name / "metrics.json").is_file() and f"eval_{name}" not in result["failed"]:
            _arm_table(json.loads((out / name / "metrics.json").read_text()))
    if (out / "shared_failures.json").is_file():
        failures = json.loads((out / "shared_failures.json").read_text())
        print(f"shared failures (reward model and contrastive both wrong): {failures['shared_failures']} of "
              f"{failures['pairs']} test pairs ({100 * failures['share']:.1f}%; "
              f"{100 * failures['expected_share_if_independent']:.1f}% if independent): {out / 'shared_failures.md'}")
    if (out / "policies.json").is_file():
        comparison = json.loads((out / "policies.json").read_text())
        _policy_table({name: json.loads((out / name / "metrics.json").read_text()) for name in comparison["table"]})
        strengths = comparison["ranking"].get("strengths", {})
        print("Bradley–Terry strength [95% CI] (" + str(comparison["ranking"].get("judged_on")) + "): " +
              ", ".join(f"{k} {v['value']:+.2f} [{v['low']:+.2f}, {v['high']:+.2f}]" for k, v in strengths.items()))
    if (out / "models.json").is_file():
        for role, model in json.loads((out / "models.json").read_text()).items():
            print(f"{role} model {model['name']}: {model['class']}, {model['parameters'] / 1e6:.1f}M parameters, "
                  f"loaded from {model['resolved']} in {model['load_seconds']} s")
    print("\nrecommendation:\n" + "\n".join(f"- {line}" for line in result["recommendation"]["text"]))
    for stage, message in result["failed"].items():
        print(f"FAILED {stage}: {message}", file=sys.stderr)
    print(f"report: {result['report']} (and report.json); run directory: {out}")
    return 1 if result["failed"] else 0


# --------------------------------------------------------------------------- parser


def _add_data_args(p, out_required: bool = False):
    p.add_argument("--source", help="'embedded', 'org/name:data_dir' (hub), a .jsonl/.jsonl.gz/.json file, "
                                    "or a prepared directory (stats, label, baseline)")
    p.add_argument("--config", help="YAML with DataConfig keys")
    p.add_argument("--skip-bad", action="store_true", help="skip bad rows, report their count and the first few")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides (see below)")


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="safealign", description=__doc__, formatter_class=fmt)
    parser.add_argument("--version", action="version", version=f"safealign {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = commands.add_parser("data", help="prepare, describe, label and baseline preference data")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    epilog = "config keys:\n" + DATA_KEYS
    p = data_commands.add_parser("prepare", help="parse a source and write a train/dev/test split",
                                 epilog=epilog, formatter_class=fmt)
    _add_data_args(p)
    p.add_argument("--out", required=True, help="directory to write the split and manifest.json into")
    p.set_defaults(func=cmd_data_prepare)
    p = data_commands.add_parser("stats", help="pairs, words and turns per split, refusal share (Table I)",
                                 epilog=epilog, formatter_class=fmt)
    _add_data_args(p)
    p.set_defaults(func=cmd_data_stats)
    p = data_commands.add_parser("label", help="label rejected responses with the harm taxonomy; build Clean",
                                 epilog=epilog, formatter_class=fmt)
    _add_data_args(p)
    p.add_argument("--taxonomy", help="taxonomy YAML ('default': the versioned one in the package)")
    p.add_argument("--out", help="where labels go (default: <prepared dir>/labels)")
    p.add_argument("--data-out", help="where a source that is not prepared yet is prepared (default runs/data)")
    p.add_argument("--noise-samples", type=int, default=10, help="S8 pairs sampled into the noise report")
    p.set_defaults(func=cmd_data_label)
    p = data_commands.add_parser("baseline", help="keyword baselines (pairwise, binary) on test, raw and Clean",
                                 epilog=epilog, formatter_class=fmt)
    _add_data_args(p)
    p.add_argument("--taxonomy", help="taxonomy YAML ('default': the versioned one in the package)")
    p.add_argument("--out", help="also write metrics.json into this directory")
    p.set_defaults(func=cmd_data_baseline)

    models = commands.add_parser("models", help="list and resolve models offline")
    model_commands = models.add_subparsers(dest="models_command", required=True, metavar="SUBCOMMAND")
    p = model_commands.add_parser("list", help="what resolves on this machine")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_models_list)
    p = model_commands.add_parser("resolve", help="print the folder (or hub id) a model name loads from")
    p.add_argument("name", help="minilm, smollm2-135m-instruct, a local folder or a hub id")
    p.set_defaults(func=cmd_models_resolve)

    p = commands.add_parser("train", help="train one arm; prints its run directory")
    p.add_argument("arm", choices=(*ARMS, "base"))
    p.add_argument("--config", help="YAML path, or a shipped config name (e.g. reward_model_paper); default: the "
                                    "arm's shipped YAML, as the default audit trains it")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. epochs=2 out=runs/rm")
    p.set_defaults(func=cmd_train)
    p = commands.add_parser("eval", help="evaluate a run directory: predictions.jsonl + metrics.json",
                            epilog="policy runs take key=value: judges=DIR (safealign judges build) data=DIR "
                                   "[judges.harm=ID|RUN_DIR ...]",
                            formatter_class=fmt)
    p.add_argument("run_dir")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="policy evaluation settings")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=cmd_eval)
    judges = commands.add_parser("judges", help="the evaluation judges and their validity cards").add_subparsers(
        dest="judges_command", required=True)
    for verb in ("build", "validate"):
        p = judges.add_parser(verb, help="fit the offline judges and measure each one's validity card on held-out "
                                         "human labels (judges.json)")
        p.add_argument("--out", required=True, help="judges directory (policy eval reads it: judges=DIR)")
        p.add_argument("--xstest", help="folder of XSTest completions to measure the refusal card on afresh "
                                        "(default: the card shipped with the package)")
        p.add_argument("--encoder", default="minilm", help="sentence encoder of the harm and helpfulness judges")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--refit", action="store_true", help="fit the harm judge afresh even where the package ships "
                                                            "the same fit (about 3.5 minutes on a first run)")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_judges_build)
    p = judges.add_parser("card", help="measure hub judges' validity cards on the offline judges' human-labelled "
                                       "rows (needs their weights: the hub, the HF cache, or ID@FOLDER)")
    p.add_argument("judges", nargs="+", metavar="ROLE=ID", help="e.g. harm=meta-llama/Llama-Guard-3-8B "
                                                               "refusal=allenai/wildguard")
    p.add_argument("--out", required=True, help="the judges directory (from `safealign judges build`)")
    p.add_argument("--xstest", help="folder of XSTest completions (a refusal card needs them)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_judges_card)
    p = judges.add_parser("check", help="measure a harm or refusal judge on human labels of your own: a CSV with "
                                        "columns prompt, response, label (1 = harmful / a refusal)")
    p.add_argument("judge", metavar="ROLE=SPEC", help="harm=offline, refusal=offline, or a hub id, e.g. "
                                                      "harm=meta-llama/Llama-Guard-3-8B")
    p.add_argument("--labels", required=True, help="CSV (or .csv.gz) with columns prompt, response, label")
    p.add_argument("--of-run", help="the audit whose policies wrote these responses (each is checked against its "
                                    "generations): the card is then like what that audit judges, and a rerun of "
                                    "the audit reads its rates corrected by it")
    p.add_argument("--out", required=True, help="the judges directory (from `safealign judges build`)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_judges_check)
    p = commands.add_parser("failures", help="test pairs both the reward model and the contrastive encoder miss")
    p.add_argument("reward_run")
    p.add_argument("contrastive_run")
    p.add_argument("--data", required=True, help="the prepared directory both runs used")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_failures)

    p = commands.add_parser("audit", help="run every stage on one split and write the run directory",
                            epilog="config keys:\n" + _audit_keys(), formatter_class=fmt)
    p.add_argument("--profile", choices=("offline", "smoke", "gpu", "paper"), default="offline",
                   help="offline: embedded data, offline models (default); smoke: minutes; gpu: offline models and "
                        "data "
                        "at one GPU's scale; paper: GPU + hub")
    p.add_argument("--config", help="YAML with AuditConfig keys (replaces the profile's)")
    p.add_argument("--out", help="run directory (default from the profile, e.g. runs/audit)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", action="store_true", help="stage lines only: no progress bars (as when the output "
                                                        "is not a terminal, e.g. a CI log)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides (see below)")
    p.set_defaults(func=cmd_audit)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
    except SafeAlignError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `safealign ... | head`: the reader left, nothing is wrong
        sys.stdout = open(os.devnull, "w")
        return 0
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
