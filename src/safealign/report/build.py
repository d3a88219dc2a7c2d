"""report.json + a self-contained report.html (plots inlined as PNG data URIs) from a run directory.

Every string that comes from data or a model (dialogues, responses, error messages, paths) goes through
`html.escape`, and the page carries a Content-Security-Policy that allows no script at all: a response
containing `<script>` is shown as text, never run. The figures are also written to `<run>/figures/`.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from safealign.arms import ARMS, POLICIES
from safealign.eval.metrics import HELPFULNESS_WIN
from safealign.eval.stats import format_rate
from safealign.io import read_jsonl, save_figure_atomic, write_json_atomic, write_text_atomic
from safealign.report.collect import collect, pareto_front
from safealign.report.recommend import harm_rates_corrected

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
STYLE = """body{font-family:system-ui,sans-serif;max-width:1180px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:0}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em}td,th{border:1px solid #ccc;padding:.25em .5em;
vertical-align:top}th{background:#f2f2f2}td.n{text-align:right;white-space:nowrap}.verdict{background:#eef6ee;
border-left:5px solid #3a3;padding:.6em 1em}.failed{background:#fbeaea;border-left:5px solid #c33;padding:.6em 1em}
.sig{font-weight:bold}img{max-width:100%}.small{font-size:.82em;color:#555}pre{white-space:pre-wrap;margin:0}"""


def build_report(run_dir: str | Path) -> dict:
    out = Path(run_dir)
    report = collect(out)
    figures = make_figures(out, report)
    write_json_atomic(out / "report.json", report)
    write_text_atomic(out / "report.html", render(report, figures))
    return report


# --------------------------------------------------------------------------- figures


def _png(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode() if path.is_file() else ""


def make_figures(out: Path, report: dict) -> dict[str, str]:
    """name -> base64 PNG. Made here: detectors, the safety trade-off, Safe RLHF curves, training curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = {}
    for name, draw in (("detectors", _detector_figure), ("tradeoff", _tradeoff_figure),
                       ("safe_rlhf", _safe_rlhf_figure), ("training", _training_figure)):
        try:
            fig = draw(plt, out, report)
        except Exception as error:  # noqa: BLE001 - one bad figure must not cost the report its tables
            plt.close("all")
            report["failures"][f"figure {name}"] = f"{type(error).__name__}: {error}"
            continue
        if fig is not None:
            path = save_figure_atomic(fig, out / "figures" / f"{name}.png")
            plt.close(fig)
            made[name] = _png(path)
    for name, path in (("tsne", out / "contrastive" / "tsne.png"),
                       ("ablation", out / "classifier" / "stage_progression.png")):
        if path.is_file():
            made[name] = _png(path)
    return made


def _detector_figure(plt, out: Path, report: dict):
    rows = report["detectors"]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(9, 3.6))
    names = list(rows)
    for offset, key, label in ((-0.2, "raw_accuracy", "raw test"), (0.2, "clean_accuracy", "Clean test")):
        values = [rows[n][key]["value"] for n in names]
        errors = [[v - rows[n][key]["low"] for n, v in zip(names, values)],
                  [rows[n][key]["high"] - v for n, v in zip(names, values)]]
        ax.bar([i + offset for i in range(len(names))], values, 0.4, yerr=errors, capsize=3, label=label)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("accuracy (95% Wilson CI)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _whisker(rate: dict) -> list[list[float]]:
    """[[below], [above]] the rate to its Wilson bounds, never negative (matplotlib refuses one): metrics.json files
    written before the Wilson edge fix carry a lower bound 5.6e-17 above a rate of 0."""
    return [[max(0.0, rate["value"] - rate["low"])], [max(0.0, rate["high"] - rate["value"])]]


def _tradeoff_figure(plt, out: Path, report: dict):
    """Every policy at (harmful-response rate, over-refusal), Wilson CI whiskers on both, the Pareto front, the
    base marked; beside it harm against helpfulness when the helpfulness judge is valid."""
    policies = report["policies"]
    metrics = {n: m for n, m in (policies.get("metrics") or {}).items()
               if m and m.get("held_out_harmful_response_rate") and m.get("over_refusal_rate")}
    if not metrics:
        return None
    wins = {n: (policies["table"].get(n) or {}).get(HELPFULNESS_WIN) for n in metrics}
    wins["base"] = {"value": 0.5, "low": 0.5, "high": 0.5} if "base" in metrics else None
    helpful = policies["judges"].get("helpfulness", {}).get("valid") and all(wins.values())
    if helpful:
        metrics = {n: m | {HELPFULNESS_WIN: wins[n]} for n, m in metrics.items()}
    panels = [("over_refusal_rate", "over-refusal, benign look-alikes (lower is better)")]
    panels += [(HELPFULNESS_WIN, "helpfulness win rate against the base (higher is better)")] \
        if helpful else []
    fig, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels), 4.6), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels):
        for name, m in metrics.items():
            x, y = m["held_out_harmful_response_rate"], m[key]
            base = name == "base"
            ax.errorbar(x["value"], y["value"], xerr=_whisker(x), yerr=_whisker(y), fmt="*" if base else "o",
                        markersize=13 if base else 6, capsize=3, color="black" if base else None, alpha=0.85,
                        label=name)
        front = policies.get("pareto", []) if key == "over_refusal_rate" else pareto_front(
            {n: (m["held_out_harmful_response_rate"]["value"], 1 - m[key]["value"]) for n, m in metrics.items()})
        if front:
            ax.step([metrics[n]["held_out_harmful_response_rate"]["value"] for n in front if n in metrics],
                    [metrics[n][key]["value"] for n in front if n in metrics], where="post", color="tab:green",
                    lw=1.2, ls="--", label="Pareto front")
        ax.legend(fontsize=8, loc="upper right")
        for axis, metric in ((ax.set_xlim, "held_out_harmful_response_rate"), (ax.set_ylim, key)):
            low = min(m[metric]["low"] for m in metrics.values())
            high = max(m[metric]["high"] for m in metrics.values())
            axis(max(0.0, low - 0.05) - 0.01, min(1.0, high + 0.15) + 0.01)  # room above for the legend
        ax.set_xlabel("harmful responses, held-out harmful prompts (lower is better)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    fig.suptitle("Safety trade-off: each policy with 95% Wilson intervals", fontsize=10)
    fig.tight_layout()
    return fig


def _safe_rlhf_figure(plt, out: Path, report: dict):
    curves = report["safe_rlhf_curves"]
    if not curves:
        return None
    keys = ("lambda", "mean_cost", "mean_reward", "kl")  # lambda: the λ that weighted that step's samples
    fig, axes = plt.subplots(1, 4, figsize=(12, 2.8))
    for name, rows in curves.items():
        for ax, key in zip(axes, keys):
            line, = ax.plot(range(1, len(rows) + 1), [r[key] for r in rows], marker=".", label=name)
            if key == "mean_cost" and all("cost_threshold" in r for r in rows):  # the bound d λ enforces
                ax.plot(range(1, len(rows) + 1), [r["cost_threshold"] for r in rows], linestyle="--",
                        color=line.get_color(), linewidth=0.8, label=f"d ({name})")
            ax.set_title(key, fontsize=9)
            ax.set_xlabel("step", fontsize=8)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def _training_figure(plt, out: Path, report: dict):
    logs = {}
    for name in [n for n in (*ARMS, "reward_only_rlhf") if n != "classifier"]:  # the classifier logs per stage
        path = out / name / "train_log.jsonl"
        if path.is_file():
            losses = [r["loss"] for r in read_jsonl(path) if isinstance(r.get("loss"), (int, float))]
            if losses:
                logs[name] = losses
    if not logs:
        return None
    fig, axes = plt.subplots(1, len(logs), figsize=(2.4 * len(logs), 2.4), squeeze=False)
    for ax, (name, losses) in zip(axes[0], logs.items()):
        ax.plot(range(1, len(losses) + 1), losses, lw=1)
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=6)
    fig.supxlabel("logged step", fontsize=8)
    fig.supylabel("training loss", fontsize=8)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- HTML


def _e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _pct(rate) -> str:
    return format_rate(rate)


def _num(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _table(headers: list[str], rows: list[list], numeric_from: int = 1) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td class='n'>{_e(c)}</td>" if i >= numeric_from else f"<td>{_e(c)}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _figure(figures: dict, name: str, caption: str) -> str:
    if name not in figures:
        return ""
    return (f"<figure><img alt='{_e(caption)}' src='data:image/png;base64,{figures[name]}'>"
            f"<figcaption class='small'>{_e(caption)}</figcaption></figure>")


def render(report: dict, figures: dict[str, str]) -> str:
    parts = [f"<h1>SafeAlign audit</h1><p class='small'>{_e(report['run']['dir'])} · safealign "
             f"{_e(report['run']['safealign_version'])}</p>",
             "<div class='verdict'><h3>Recommendation (from the measured numbers below)</h3>" +
             "".join(f"<p>{_e(line)}</p>" for line in report["recommendation"]["text"]) + "</div>"]
    if report["failures"]:
        parts.append("<div class='failed'><h3>Failed or skipped stages</h3>" + _table(
            ["stage", "error"], [[k, v] for k, v in report["failures"].items()], numeric_from=9) + "</div>")
    for section in (_data_section, _detector_section, _ablation_section, _contrastive_section, _failure_section,
                    _judge_section, _policy_section, _benchmark_section, _safe_rlhf_section, _significance_section,
                    _run_section):
        parts.append(section(report, figures))
    body = "\n".join(p for p in parts if p)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">"
            f"<title>SafeAlign audit report</title><style>{STYLE}</style></head><body>{body}</body></html>")


def _data_section(report: dict, figures: dict) -> str:
    if "data" not in report:
        return ""
    stats = report["data"]["stats"]
    rows = [[split, s["pairs"], *(f"{s[k]['mean']:.1f} / {s[k]['median']:g} / {s[k]['max']}" for k in
                                 ("words_context", "words_chosen", "words_rejected", "turns_per_dialogue")),
             _pct(s["chosen_refusal_share"]), _pct(s["rejected_refusal_share"])] for split, s in stats.items()]
    html_ = "<h2>Data</h2>" + _table(["split", "pairs", "context words (mean/median/max)", "chosen words",
                                      "rejected words", "turns", "chosen refusals", "rejected refusals"], rows)
    counts = report["data"]["manifest"].get("counts", {})
    html_ += (f"<p class='small'>source: {_e(report['data']['manifest'].get('source'))}; "
              f"bad rows skipped: {_e(counts.get('bad_rows_skipped'))}</p>")
    if "taxonomy" in report:
        tax = report["taxonomy"]["counts"]
        cats = list(tax["categories"])
        rows = [[split] + [c.get(k, 0) for k in cats] for split, c in tax["rejected_counts"].items()]
        html_ += (f"<h3>Harm taxonomy v{_e(tax['taxonomy_version'])}: rejected responses per category</h3>" +
                  _table(["split"] + [f"{k} {v}" for k, v in tax["categories"].items()], rows))
        clean, noise = report["taxonomy"]["clean"], report["taxonomy"]["noise"]
        total = stats.get("all", {}).get("pairs") or sum(s["pairs"] for k, s in stats.items() if k != "all")
        html_ += (f"<p>Clean split (S8 noise dropped): {_e(clean.get('all'))} of {_e(total)} pairs "
                  f"(train {_e(clean.get('train'))}, dev {_e(clean.get('dev'))}, test {_e(clean.get('test'))}); "
                  f"noise share {_pct(noise['dropped']['all'] / total if total else None)}.</p>")
        html_ += "<h3>Noise report: sampled S8 pairs</h3>" + _table(
            ["context", "chosen", "rejected"], [[r["context"][-400:], r["chosen"][:300], r["rejected"][:300]]
                                                for r in noise["sample"][:5]], numeric_from=9)
    return html_


def _detector_section(report: dict, figures: dict) -> str:
    rows = [[name, r["task"], _pct(r["raw_accuracy"]), _pct(r["clean_accuracy"]), _num(r["f1"]),
             _num(r.get("score_gap"), 4)] for name, r in report["detectors"].items()]
    if not rows:
        return ""
    return ("<h2>Detection arms (SafeAlign Tables IV and VI)</h2>" +
            _table(["arm", "task", "accuracy, raw test (95% CI)", "accuracy, Clean test", "F1 (unsafe)",
                    "score gap"], rows, numeric_from=2) +
            "<p class='small'>Accuracy: pairwise (chosen ranked safer) for keyword baseline, reward, cost and "
            "contrastive arms; per response for the classifier. F1: safety F1 at the dev-chosen threshold "
            "(reward/cost), binary keyword F1, kNN F1 (contrastive), classifier F1.</p>" +
            _figure(figures, "detectors", "Accuracy by arm with 95% Wilson intervals"))


def _ablation_section(report: dict, figures: dict) -> str:
    if "ablation" not in report:
        return ""
    def predicted(s):
        share = s.get("predicted_unsafe_share")
        if share is None:
            return "-"
        return f"{100 * share:.0f}%" + (" DEGENERATE, not ranked" if s.get("degenerate") else "")

    rows = [[stage, s["train_pairs"], _e(s.get("steps", "-")), _pct(s["raw"]["accuracy"]), _num(s["raw"]["f1"]),
             _pct(s["clean"]["accuracy"]), _num(s["clean"]["f1"]), predicted(s)] for stage,
             s in report["ablation"].items()]
    return ("<h2>Curation ablation (safety classifier)</h2>" +
            _table(["stage", "train pairs", "steps", "accuracy raw test", "F1 raw", "accuracy Clean test", "F1 Clean",
                    "predicted unsafe"], rows) +
            "<p class='small'>A stage that predicts one class for at least 95% of test responses is degenerate: its "
            "accuracy is a constant's, so it is not ranked. Every stage trains for at least min_steps steps.</p>" +
            _figure(figures, "ablation", "Ablation progression: raw → filtered → filtered and scaled"))


def _contrastive_section(report: dict, figures: dict) -> str:
    if "contrastive" not in report:
        return ""
    c = report["contrastive"]
    rows = [[when, _num(c[when]["silhouette"], 4), _num(c[when]["knn_f1"]), _pct(c[when]["knn_accuracy"]),
             _pct(c[when]["pairwise_accuracy"])] for when in ("before", "after")]
    return ("<h2>Contrastive encoder</h2>" + _table(["", "silhouette", "kNN F1", "kNN accuracy",
                                                   "chosen nearer its context"], rows) +
            _figure(figures, "tsne", "t-SNE of test responses, safe vs unsafe"))


def _failure_section(report: dict, figures: dict) -> str:
    if "shared_failures" not in report:
        return ""
    f = report["shared_failures"]
    rows = [[r["context"][-300:], r["chosen"][:240], r["rejected"][:240], ", ".join(r.get("rejected_labels", []))]
            for r in f["sample"]]
    return (f"<h2>Shared failures (intent blindness)</h2><p>Reward model and contrastive encoder both wrong on "
            f"{_e(f['shared_failures'])} of {_e(f['pairs'])} test pairs ({_pct(f['share'])}; "
            f"{_pct(f['expected_share_if_independent'])} expected if their errors were independent).</p>" +
            _table(["context", "chosen", "rejected", "rejected labels"], rows, numeric_from=9))


def _judge_section(report: dict, figures: dict) -> str:
    cards = (report.get("judges") or {}).get("cards")
    if not cards:
        return ""
    rows = []
    hub = [(role, c) for roles in (report["judges"].get("hub_cards") or {}).values() for role, c in roles.items()]
    labelled = [(judge.split("=")[0], c) for judge, by_file in (report["judges"].get("labelled_cards") or {}).items()
                for c in by_file.values()]  # `safealign judges check`: a reviewer's own labels
    for role, c in list(cards.items()) + hub + labelled:
        base = c.get("baseline") or {}
        rows.append([role, c["judge"], "valid" if c["valid"] else f"below floor (κ < {c['kappa_floor']})",
                     _num(c["n"], 0), _pct(c["accuracy"]), f"{c['f1']:.3f} [{c['f1_ci'][0]:.3f}, {c['f1_ci'][1]:.3f}]",
                     f"{c['kappa']:.3f} [{c['kappa_ci'][0]:.3f}, {c['kappa_ci'][1]:.3f}]",
                     (f"{base['judge']}: κ {base['kappa']:.3f}, accuracy {_pct(base['accuracy'])}" if base else "-"),
                     c["trained_on"], c["source"] + _provenance(c), _other_sources(c), c["threshold_from"]])
    return ("<h2>Judges and their validity cards (agreement with human labels they were not tuned on)</h2>" +
            _table(["role", "judge", "verdict", "n", "accuracy", "F1 [95% CI]", "Cohen's κ [95% CI]",
                    "baseline on the same rows", "trained on", "held-out labels", "other sources: κ [95% CI]",
                    "threshold chosen on"], rows, numeric_from=99) +
            "<p class='small'>Intervals bootstrap over the clusters the rows come in (a question, a prompt), not over "
            "rows. " + _like_judged_note(report) + "</p>")


def _like_judged_note(report: dict) -> str:
    """Which rates the verdict reads: the harm judge's corrected ones only where the card its policy evals used was
    measured on responses like those it judges (recommend.harm_rates_corrected), else raw."""
    if harm_rates_corrected(((report.get("policies") or {}).get("judges")) or {}):
        return ("The harm card is measured on responses like this run's, so the verdict reads the harmful-response "
                "rates corrected for its error; every other rate is read raw, with its corrected value beside it.")
    return ("Every card is measured on other models' responses, not on this run's policies, so the verdict "
            "reads raw rates; the rates corrected for each judge's measured error stand beside them.")


def _provenance(card: dict) -> str:
    """Where a card's rows come from, and a warning when that is only the judge's own training source."""
    where = f" ({card.get('clusters', '?')} {card.get('cluster_unit', 'row')} clusters; {card['source_kind']})" \
        if "source_kind" in card else ""
    own_only = card.get("fit_source") and not card.get("cross_source") and not card.get("per_model")
    own = " — MEASURED ONLY ON ITS OWN TRAINING SOURCE: not evidence that it generalises"
    return where + (own if own_only else "")


def _other_sources(card: dict) -> str:
    others = card.get("cross_source", []) + list(card.get("per_model", {}).values())
    return "; ".join(f"{o['source']}: {o['kappa']:.3f} [{o['kappa_ci'][0]:.3f}, {o['kappa_ci'][1]:.3f}] (n={o['n']}"
                     + (f", baseline κ {o['baseline']['kappa']:.3f}" if o.get("baseline") else "") + ")"
                     for o in others) or "-"


def _win(win: dict | None) -> str:
    if not win:
        return "-"
    return (f"{100 * win['value']:.1f}% [{100 * win['low']:.1f}, {100 * win['high']:.1f}] (n={win['n']}, "
            f"p={win['p_value']:.2g}; detects ≥ {100 * win['minimum_detectable_difference']:.0f} points)")


def _corrected(rate: dict | None) -> str:
    """A rate corrected for its judge's error (Rogan–Gladen), or why it cannot be."""
    corrected = (rate or {}).get("corrected")
    if not corrected or corrected.get("value") is None:
        return "-"
    if corrected["unbounded"]:
        return f"{100 * corrected['value']:.1f}% [unbounded: judge near chance]"
    return f"{100 * corrected['value']:.1f}% [{100 * corrected['low']:.1f}, {100 * corrected['high']:.1f}]"


def _judged_by(judges: dict, role: str) -> str:
    j = judges.get(role) or {}
    card = j.get("card")
    mark = ("" if j.get("valid") else " — BELOW THE VALIDITY FLOOR, left out of the verdict" if card else
            " — NO VALIDITY CARD, left out of the verdict") + (
        " — A TRAINING SIGNAL of the RL arms" if j.get("training_signal") else "") + (
        f" — reads {j['reads']}; {j['unparsed']} outputs did not parse (counted negative)" if j.get("reads") else "")
    kappa = (f" (κ {card['kappa']:.2f} [{card['kappa_ci'][0]:.2f}, {card['kappa_ci'][1]:.2f}], n={card['n']})"
             if card else "")
    return f"{_e(role)}: {_e(j.get('judge'))}" + kappa + _e(mark)


def _policy_section(report: dict, figures: dict) -> str:
    policies = report["policies"]
    if not policies:
        return ""
    table, metrics, judges = policies["table"], policies["metrics"], policies["judges"]
    strengths = policies["ranking"].get("strengths", {})
    rows = []
    for name in [n for n in POLICIES if n in table]:
        row, m = table[name], metrics[name]
        gain = row.get("gain_over_base", {})
        bt = strengths.get(name)
        rows.append([name, _pct(m.get("held_out_harmful_response_rate")),
                     _corrected(m.get("held_out_harmful_response_rate")), _pct(m.get("held_out_refusal_rate")),
                     _pct(m.get("over_refusal_rate")), _corrected(m.get("over_refusal_rate")),
                     _pct(m.get("harmlessness_rate")),
                     _pct(m.get("harmlessness_rate_seen")), _pct(m.get("helpfulness_rate")),
                     _num(row["combined_alignment_score"]), _num(gain.get("combined_alignment_score"), 3),
                     _win(row.get(HELPFULNESS_WIN)),
                     f"{bt['value']:+.2f} [{bt['low']:+.2f}, {bt['high']:+.2f}]" if bt else "-",
                     _pct(m.get("implicit_reward", {}).get("pairwise_accuracy"))])
    ranking = policies["ranking"]
    front = ", ".join(policies.get("pareto", [])) or "-"
    return ("<h2>Policies (OPT-350M study Tables 1 and 2)</h2>" +
            _figure(figures, "tradeoff", f"Harmful responses against over-refusal; Pareto front: {front}") +
            _table(["policy", "harmful responses, held-out harmful [harm]",
                    "the same, corrected for the judge's error",
                    "refusal, held-out harmful [refusal]", "over-refusal, benign look-alikes [refusal]",
                    "the same, corrected", "HmR, unseen prompts [harm]",
                    "HmR, prompts seen in training (apart) [harm]", "HpR [helpfulness]", "CAS", "CAS gain over base",
                    "helpfulness win rate against the base [helpfulness, pairwise]",
                    "Bradley–Terry strength [95% CI]", "DPO implicit-reward accuracy, test pairs"], rows) +
            "<p class='small'>Judges, by the role in brackets: " + "; ".join(_judged_by(judges, r) for r in judges) +
            f". Bradley–Terry: maximum-likelihood strengths (log-odds, mean 0) from {_e(ranking.get('matches'))} "
            f"per-prompt wins on {_e(ranking.get('prompts'))} prompts, {_e(ranking.get('judged_on'))}; intervals from "
            f"{_e(ranking.get('resamples'))} bootstrap resamples of prompts.</p>")


def _benchmark_section(report: dict, figures: dict) -> str:
    """XSTest and HarmBench rates per policy, as their papers tabulate them (when those sets were generated on)."""
    metrics = {n: m.get("benchmarks", {}) for n, m in (report["policies"] or {}).get("metrics", {}).items() if m}
    names = [n for n in POLICIES if metrics.get(n)]
    if not names:
        return ""
    parts = ["<h2>Benchmarks: XSTest and HarmBench</h2>"]
    xs = [n for n in names if "xstest" in metrics[n]]
    if xs:
        types = sorted({t for n in xs for t in metrics[n]["xstest"]["over_refusal_by_type"]})
        rows = [["all safe prompts (over-refusal)", *[_pct(metrics[n]["xstest"]["over_refusal"]) for n in xs]],
                ["all unsafe prompts (compliance)", *[_pct(metrics[n]["xstest"]["unsafe_compliance"]) for n in xs]]]
        rows += [[f"safe: {t}",
                  *[_pct(metrics[n]["xstest"]["over_refusal_by_type"].get(t)) for n in xs]] for t in types]
        parts.append("<h3>XSTest (Röttger et al., 2024; CC-BY-4.0): refusal rate on safe prompts, compliance on "
                     "unsafe ones [refusal judge; a partial refusal counts as a refusal]</h3>" +
                     _table(["", *xs], rows, numeric_from=1))
    hb = [n for n in names if "harmbench" in metrics[n]]
    if hb:
        cats = sorted({c for n in hb for c in metrics[n]["harmbench"]["by_semantic_category"]})
        funcs = sorted({c for n in hb for c in metrics[n]["harmbench"]["by_functional_category"]})
        rows = [["all (standard + contextual)", *[_pct(metrics[n]["harmbench"]["attack_success_rate"]) for n in hb]]]
        rows += [[f, *[_pct(metrics[n]["harmbench"]["by_functional_category"].get(f)) for n in hb]] for f in funcs]
        rows += [[c, *[_pct(metrics[n]["harmbench"]["by_semantic_category"].get(c)) for n in hb]] for c in cats]
        parts.append("<h3>HarmBench (Mazeika et al., 2024; MIT): attack success rate of direct requests [harm "
                     "judge]; the 100 copyright behaviours are left out (HarmBench judges them by hash match)</h3>" +
                     _table(["", *hb], rows, numeric_from=1))
    return "".join(parts)


def _safe_rlhf_section(report: dict, figures: dict) -> str:
    curves = report["safe_rlhf_curves"]
    if not curves:
        return ""
    rows = [[name, len(r), _num(r[-1]["lambda"]), _num(r[0]["mean_cost"]), _num(r[-1]["mean_cost"]),
             _num(r[-1]["mean_reward"]), _num(r[-1]["kl"], 4)] for name, r in curves.items() if r]
    return ("<h2>Safe RLHF: λ and cost against the λ=0 run</h2>" +
            _table(["run", "steps", "final λ", "first-step cost", "last-step cost", "last-step reward", "last KL"],
                   rows) + "".join(f"<p>{_e(name)}, round {c['round'] + 1}: d = {c['cost_threshold']:.4g}, "
                                   f"{_e(c['rule'])} ({100 * c['violating_share']:.0f}% of those samples above d).</p>"
                                   for name, cs in report.get("safe_rlhf_calibrations", {}).items() for c in cs) +
            _correlation_paragraph(report.get("reward_cost_correlation") or {}) +
            _figure(figures, "safe_rlhf", "λ, mean cost, mean reward and KL per step") +
            _figure(figures, "training", "Training loss of every arm"))


COLLINEAR = 0.8  # |r| of reward and cost above this: the two signals are nearly one


def _correlation_paragraph(correlation: dict) -> str:
    """Pearson's r of the reward and cost models' scores, and whether they are nearly one signal."""
    parts = [f"{label} r = {_num(correlation[key]['r'], 2)}" + (f" (n={correlation[key]['n']})" if
                                                                  correlation[key].get("n") else "")
             for key, label in (("test_responses", "on the test responses"), ("test_pair_margins", "on pair margins"),
                                ("policy_samples_first_step", "on the policy's samples at the first step"))
             if correlation.get(key, {}).get("r") is not None]
    if not parts:
        return ""
    collinear = any(abs(correlation[k]["r"]) >= COLLINEAR for k in correlation if correlation[k].get("r") is not None)
    verdict = (" Nearly collinear: with C ≈ −aR + b, (R − λC)/(1 + λ) is R up to a per-prompt constant that the "
               "leave-one-out baseline removes, so Safe RLHF and its λ=0 twin optimise nearly the same thing."
               if collinear else " Not collinear: the cost carries a signal the reward does not.")
    return f"<p>Reward against cost model: {', '.join(parts)}.{verdict}</p>"


def _significance_section(report: dict, figures: dict) -> str:
    sig = report["significance"]
    parts = ["<h2>Paired significance tests</h2><p class='small'>Holm-adjusted within each family; bold: "
             "adjusted p &lt; 0.05.</p>"]
    for family, tests in sig.items():
        if not tests:
            continue
        rows = []
        for t in tests:
            detail = (f"{t['a_only_correct']} vs {t['b_only_correct']} discordant" if "a_only_correct" in t else
                      f"{100 * t['difference']:+.1f} pts [{100 * t['low']:+.1f}, {100 * t['high']:+.1f}]")
            rows.append([f"{t['a']} vs {t['b']}", t.get("subset") or t.get("metric"), t["items"], detail,
                         f"{t['p_value']:.3g}", f"{t['p_holm']:.3g}" + (" *" if t["significant"] else "")])
        parts.append(f"<h3>{_e(family.replace('_', ' '))} ({_e(tests[0]['test'])})</h3>" +
                     _table(["comparison", "subset / metric", "items", "a vs b", "p", "Holm p"], rows, numeric_from=2))
    return "".join(parts)


def _run_section(report: dict, figures: dict) -> str:
    timing, env = report["timing"], report["run"]["environment"] or {}
    rows = [[name, _num(s["seconds"], 1), _pct(s["share"])] for name, s in timing["stages"].items()]
    machine = env.get("machine", {})
    return ("<h2>Reproducibility and timing</h2>" +
            f"<p>Wall time of the last audit command: {_e(timing['wall_seconds'])} s; sum of stage times "
            f"{_e(timing['stage_seconds_total'])} s. Seed {_e(env.get('seed'))}; python {_e(env.get('python'))}; "
            f"machine: {_e(machine.get('cpu'))}, {_e(machine.get('cores'))} cores, {_e(machine.get('memory_gib'))} GiB"
            f"{', GPU ' + _e(machine['gpu']) if machine.get('gpu') else ', no GPU'}.</p>" +
            _table(["stage", "seconds", "share"], rows) +
            "<h3>Versions and data hashes</h3><pre class='small'>" +
            _e(json.dumps({"packages": env.get("packages"), "data_sha256": env.get("data_sha256"),
                           "config_sha256": env.get("config_sha256")}, indent=1)) + "</pre>")
