"""Render every figure in the README and docs/ from the files that hold it (benchmarks/results/*.json).

    python benchmarks/render_docs.py          # rewrite the generated blocks
    python benchmarks/render_docs.py --check  # exit 1 when a page disagrees with its results file (a test runs this)

A generated block sits between `<!-- render: NAME -->` and `<!-- /render -->` in a page; RENDERERS says which
function writes it from which results file. Nothing between the markers is typed by hand.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BLOCK = re.compile(r"(<!-- render: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /render -->)", re.DOTALL)


def _pct(rate: dict | None) -> str:
    if not rate:
        return "–"
    return f"{100 * rate['value']:.1f}% [{100 * rate['low']:.1f}, {100 * rate['high']:.1f}]"


def _kappa(card: dict) -> str:
    return f"{card['kappa']:.3f} [{card['kappa_ci'][0]:.3f}, {card['kappa_ci'][1]:.3f}]"


def judge_table(results: dict) -> str:
    """The judges' cards: on their own source's held-out clusters and on other sources, with the baselines."""
    cards = results["cards"]
    rows = ["| role | judge | human labels (clusters) | own source? | agreement | κ [95% CI, clustered] | "
            "baseline on the same rows |", "|---|---|---|---|---|---|---|"]
    others = {"harm": results.get("harm_cross_source", []) + results.get("harm_at_audit_length", []),
              "refusal": list(results.get("refusal_per_model_held_out", {}).values())
              + list(results.get("refusal_leave_one_model_out", {}).values()),
              "helpfulness": cards["helpfulness"].get("cross_source", [])}
    for role in ("refusal", "harm", "helpfulness"):
        for card in [cards[role]] + others[role]:
            base = card.get("baseline") or {}
            rows.append(f"| {role} | {card['judge']} | {card['source']} (n={card['n']}; clusters: {card['clusters']} "
                        f"× {card['cluster_unit']}) | {'yes' if card['fit_source'] else 'no'} | "
                        f"{100 * card['accuracy']['value']:.1f}% | {_kappa(card)} | "
                        + (f"{base['judge']}: {100 * base['accuracy']['value']:.1f}%, κ {base['kappa']:.3f}"
                           if base else "–") + " |")
    absolute = cards["helpfulness"].get("absolute")
    if absolute:
        rows.append(f"| helpfulness (absolute cut, for HpR) | {absolute['judge']} | {absolute['source']} "
                    f"(n={absolute['n']}) | yes | {100 * absolute['accuracy']['value']:.1f}% | {_kappa(absolute)} | "
                    f"{'valid' if absolute['valid'] else 'below the floor: HpR and CAS stay out of the verdict'} |")
    return "\n".join(rows) + f"\n\nMeasured by `python benchmarks/validate_judges.py` at commit {results['commit']}.\n"


def _machine(m: dict) -> str:
    return f"{m['cores']} cores of an {m['cpu']} (bfloat16 units: {', '.join(m['bf16_units']) or 'none'})"


def _earlier(results: dict) -> str:
    """Earlier records of the audit's time, with the machine each ran on (machines of one kind differ)."""
    runs = [f"{e['make_audit_wall']} ({e['audit_wall']}) at {e['commit']} on "
            + (_machine(e["machine"]) if e.get("machine") else "a machine whose CPU was not recorded")
            for e in results.get("earlier", [])]
    return f"; earlier: {'; '.join(runs)}" if runs else ""


def audit_headline(results: dict) -> str:
    """The default audit's wall time, memory and verdict, as measured from a clean clone."""
    t, rates = results["timing"], results["rates"]
    smoke = f"; the smoke profile took {t['smoke_wall']} (commit {t['smoke_commit']})" if t.get("smoke_wall") else ""
    lines = [f"On {_machine(results['machine'])} a first `make audit` from a clean clone with an empty cache took "
             f"{t['make_audit_wall']} ({t['audit_wall']} for the audit itself), "
             f"peak memory {t['peak_rss_gib']:.1f} GiB (commit {results['commit']}){smoke}{_earlier(results)}. "
             f"Held-out harmful responses (harm judge {results['harm_judge']}; "
             f"n={rates['base']['n']}), raw and corrected for the judge's measured error:"]
    lines.append(", ".join(f"{name} {_pct(rate)} (corrected {_pct(rate.get('corrected'))})"
                           for name, rate in rates.items()) + ".")
    lines.append(f"Recommendation: {results['recommendation']}")
    correlation = (results.get("reward_cost_correlation") or {}).get("test_responses")
    if correlation:
        lines.append(f"The reward and cost models now learn different preferences: their scores correlate at "
                     f"r = {correlation['r']:.2f} on the test responses (n={correlation['n']}).")
    return "\n".join(lines) + "\n"


def policy_speed(results: dict) -> str:
    """Each generative arm's training speed against the matmul bound of the arithmetic it ran in."""
    arms = results["arms"]
    shares = [f"{name} {r['percent_of_bound']:.0f}% ({r['precision']})" for name, r in
              (("SFT", arms["sft"]["safealign"]), ("DPO", arms["dpo"]["safealign"]), ("the Safe RLHF step",
                                                                                     arms["safe_rlhf_step"]))]
    return (f"On {_machine(results['machine'])} (measured {results['measured'][:10]}) torch.mm at the policy's "
            f"shapes reaches {results['bound_gflops']:.0f} GFLOP/s in float32 and {results['bound_gflops_bf16']:.0f} "
            f"in bfloat16 (the highest of {len(results['matmul_runs'])} measurements); the arms reach "
            f"{', '.join(shares)} of the bound of their arithmetic, and "
            f"{arms['sft']['speedup_pairs_per_s']:.2f}x (SFT) and {arms['dpo']['speedup_pairs_per_s']:.2f}x (DPO) "
            f"trl's defaults in pairs/s. {_ablations(results)}\n")


def _ablations(results: dict) -> str:
    """What the shipped SFT/DPO settings save: seconds with each undone (bench_policies' ABLATIONS)."""
    def seconds(kind):
        r = results["arms"][kind]
        return (f"{kind.upper()} on {r['safealign']['pairs']} pairs " + "/".join(
            f"{r[v]['train_seconds']:.1f}" for v in ("safealign", "safealign_sdpa", "safealign_lora_dropout",
                                                     "safealign_trl_head")) + " s")
    return (f"Training takes {seconds('sft')}, {seconds('dpo')}: as shipped / with the fused attention (the arms "
            f"before 2026-12-05) / and 5% LoRA dropout / and trl's LM head over every "
            f"position (the arms before b4d84b2).")


def sft_order(results: dict) -> str:
    """SFT's held-out harmful-response rate by batch order and seed (sft_order.py)."""
    def runs(order):
        rows = [r for r in results["runs"] if r["order"] == order]
        return ", ".join(f"{100 * r['harmful']['value']:.1f}%" for r in rows) + (
            f" (mean {100 * results['mean_harmful_rate'][order]:.1f}%, {rows[0]['train_seconds']:.1f} s to train at "
            f"seed {rows[0]['seed']})")
    n = results["runs"][0]["harmful"]["n"]
    return (f"Seeds {', '.join(map(str, results['seeds']))} (measured {results['measured'][:10]}, n={n} prompts): "
            f"random order {runs('random')}; grouped by length {runs('group_by_length')}.\n")


def safe_rlhf_seeds(results: dict) -> str:
    """Safe RLHF against its λ=0 twin at several seeds (safe_rlhf_seeds.py)."""
    def runs(arm):
        return ", ".join(f"{100 * r['harmful']['value']:.1f}%" for r in results["runs"] if r["arm"] == arm)
    tests, pooled = results["tests"], results["tests"]["pooled_over_seeds"]
    per_seed = ", ".join(f"{100 * t['difference']:+.1f} (p={t['p_value']:.2g})" for t in tests["per_seed"].values())
    lambdas = ", ".join(f"{r['final_lambda']:.2f}" for r in results["runs"] if r["arm"] == "safe_rlhf")
    above = [r["steps_window_cost_above_d"] for r in results["runs"]
             if r["arm"] == "safe_rlhf" and "steps_window_cost_above_d" in r]
    if above:
        lambdas += f"; the window's cost above d on {', '.join(map(str, above))} of {results['steps']} steps"
    steps = f"{results['steps']} steps, " if "steps" in results else ""
    setting = "".join(f"{o}, " for o in results.get("overrides", []) if not o.startswith("safe_rlhf.steps="))
    text = (f"{steps}{setting}seeds {', '.join(map(str, results['seeds']))} (measured {results['measured'][:10]}, "
            f"n={tests['prompts']} prompts): Safe RLHF {runs('safe_rlhf')} (final λ {lambdas}); λ=0 "
            f"{runs('reward_only_rlhf')}. Safe RLHF − λ=0 per seed, points: {per_seed}; pooled over the seeds "
            f"(each prompt's share across seeds, prompts resampled): {100 * pooled['difference']:+.1f} "
            f"[{100 * pooled['low']:.1f}, {100 * pooled['high']:.1f}], p={pooled['p_value']:.2g}. Training took "
            f"{sum(r['arm_seconds'] for r in results['runs']) / len(results['runs']):.0f} s per arm on average.\n")
    return text[0].upper() + text[1:]


def eval_batch_invariance(results: dict) -> str:
    """Held-out harmful responses with every set in the batch against the harmful sets alone, by precision."""
    parts = []
    for precision, r in results["by_precision"].items():
        parts.append(f"{precision}: {r['identical_responses']} of {r['prompts']} responses identical, "
                     f"{r['harm_verdict_flips']} harm verdicts flip (harmful rate "
                     f"{100 * r['harmful_rate_all_sets']:.1f}% vs {100 * r['harmful_rate_harmful_sets_alone']:.1f}%), "
                     f"the whole eval {r['seconds_all_sets']:.0f} s on {r['prompts_all_sets']} prompts")
    return f"{results['policy']} (measured {results['measured'][:10]}): " + "; ".join(parts) + ".\n"


def compile_speed(results: dict) -> str:
    """An SFT step eager against torch.compile at one shape (bench_compile.py)."""
    eager, compiled, shape = results["modes"]["eager"], results["modes"]["compiled"], results["shape"]
    alone = results["matmuls_alone"]
    return (f"On {_machine(results['machine'])}, whose bfloat16 matmul bound is "
            f"{results['bound_gflops_bf16']:.0f} GFLOP/s (the highest of {len(results['bound_gflops_bf16_measured'])} "
            f"measurements, {min(results['bound_gflops_bf16_measured']):.0f} at the lowest; "
            f"measured {results['measured'][:10]} at "
            f"{results['commit']}), an SFT step on {shape['batch']} × {shape['length']} tokens ({shape['scored']} "
            f"scored per row) takes "
            f"{eager['median_step_seconds']:.2f} s eager ({eager['percent_of_bound']}% of the bound) and "
            f"{compiled['median_step_seconds']:.2f} s compiled ({compiled['percent_of_bound']}%); compiling costs "
            f"{results['compile_seconds']:.0f} s, so it pays after {results['break_even_steps']} steps of one shape. "
            f"The audit's SFT runs {results['audit_sft_steps']:g} steps. The eager step's {alone['calls']} matrix "
            f"products alone, replayed with nothing between them, take {alone['median_seconds']:.2f} s "
            f"({alone['share_of_eager_step']:.0%} of the eager step): {alone['percent_of_bound']}% of the bound is "
            f"the most any step at this shape reaches while its matrix products run on these kernels.\n")


def generate_speed(results: dict) -> str:
    """Batched generation against the one-prompt-at-a-time loop (bench_generate.py)."""
    runs = results["batched"]
    grouped = sorted((r for r in runs if r["prefill"] == "grouped"), key=lambda r: -r["batch_size"])
    padded = [r for r in runs if r["prefill"] == "padded"]
    identical = min(r["identical_responses"] for r in runs)
    return (f"{results['prompts']} prompts, {identical} of {results['prompts']} responses identical in every run: "
            + ", ".join(f"{r['speedup']:.1f}x at batch {r['batch_size']}" for r in grouped)
            + f" on {results['threads']} cores (measured {results['measured'][:10]}); the left-padded prefill used "
            f"before gave " + ", ".join(f"{r['speedup']:.1f}x at {r['batch_size']}" for r in padded)
            + f". The prompts' prefill alone takes {results['prefill_seconds_one_by_one']:.0f} of the naive loop's "
            f"{results['naive_seconds']:.0f} s and is paid by both.\n")


RENDERERS = {  # block name -> (results file, function)
    "judge-table": ("judges.json", judge_table),
    "audit-headline": ("offline_audit.json", audit_headline),
    "policy-speed": ("policies.json", policy_speed),
    "generate-speed": ("generate.json", generate_speed),
    "sft-order": ("sft_order.json", sft_order),
    "safe-rlhf-seeds": ("safe_rlhf_seeds.json", safe_rlhf_seeds),
    "safe-rlhf-seeds-steps16": ("safe_rlhf_seeds_steps16.json", safe_rlhf_seeds),
    "safe-rlhf-seeds-base": ("safe_rlhf_seeds_base.json", safe_rlhf_seeds),
    "safe-rlhf-seeds-base-steps16": ("safe_rlhf_seeds_base_steps16.json", safe_rlhf_seeds),
    "eval-batch-invariance": ("eval_batch_invariance.json", eval_batch_invariance),
    "compile-speed": ("compile.json", compile_speed),
}
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def render(text: str) -> str:
    def block(match):
        name = match.group("name")
        if name not in RENDERERS:
            raise SystemExit(f"unknown generated block '{name}' (known: {', '.join(RENDERERS)})")
        file, function = RENDERERS[name]
        results = json.loads((RESULTS / file).read_text())
        return match.group(1) + function(results) + match.group(4)
    return BLOCK.sub(block, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when a page disagrees with its results file")
    args = parser.parse_args(argv)
    stale = []
    for page in PAGES:
        text = page.read_text()
        rendered = render(text)
        if rendered != text:
            stale.append(page.relative_to(ROOT))
            if not args.check:
                page.write_text(rendered)
    if args.check and stale:
        print("out of date with benchmarks/results/ (run python benchmarks/render_docs.py): "
              + ", ".join(map(str, stale)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
