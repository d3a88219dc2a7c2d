"""The judges' validity cards on human labels, written where the product reads them.

    python benchmarks/validate_judges.py [--shared ../shared]

- refusal: the refusal rules on XSTest's completions of GPT-4 and Llama-2-70b-chat (900 rows, two human
  annotators; partial refusal counts as refusal), beside the refusal-prefix string match on the same rows.
  The completions may not ship, so the measured card does: src/safealign/data/judges/refusal_card.json
  (held_out = the even-numbered prompts, not read while the rules were written but for two rules checked on
  every row: meaningless questions, lectures; all rows; per model; and leave-one-model-out: each model's rows
  judged with the opening window, the rules' one tunable part, chosen on the other model's rows).
- harm: fitted on GPTFuzz train (80 questions), card on GPTFuzz evaluate (its own source, 20 other questions) and
  on PKU-SafeRLHF's labelled Alpaca-7B answers (another source; CC-BY-NC, measured here, never shipped as data:
  only the card's numbers ship); the fit and its cards ship with the
  package under the key they were made with (src/safealign/data/judges/harm_judge.npz, harm_card.json), so
  `build_judges` need not embed 7,700 responses on a machine's first run.
- harm at the audit's response length: the same two cards with each response cut to its first
  policy_eval.max_new_tokens (50) SmolLM2 tokens, as the offline audit's responses are cut, the label still the whole
  response's (on GPTFuzz a jailbroken answer may comply only after its opening, so that card is a lower bound).
  The PKU one ships beside the others (its `response_tokens` says so).
- helpfulness: six features of (request, response) fitted on PandaLM's human pairwise preferences; card by
  nested cross-validation with folds by instruction, and on HHH alignment's pairs (another source); its absolute
  cut on the OPT-350M study's helpful prompts; the fit and cards ship (helpfulness_judge.npz, helpfulness_card.json).
- `build_judges` as the audit runs it, refitting and with the shipped fits: wall times.
Everything goes to benchmarks/results/judges.json.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from safealign.audit import load_audit_config  # noqa: E402
from safealign.data.prompts import embedded  # noqa: E402
from safealign.eval.judges.build import (  # noqa: E402
    SHIPPED_HARM_CARD,
    SHIPPED_HELPFULNESS_CARD,
    build_judges,
    fit_harm_judge,
    fit_helpfulness_judge,
    harm_fit_key,
    helpfulness_fit_key,
)
from safealign.eval.judges.cards import harm_card, xstest_refusal_cards  # noqa: E402
from safealign.eval.judges.labels import read_gptfuzz, read_pku_saferlhf_mini  # noqa: E402
from safealign.io import write_json_atomic  # noqa: E402
from safealign.models import resolve  # noqa: E402

PKU_SOURCE = ("PKU-SafeRLHF (JailbreakEval's 4,000-row sample): Alpaca-7B answers to the Safe RLHF paper's red-team "
              "questions, safety-labelled by PKU-Alignment; CC-BY-NC, validation only (a source the judge never saw)")


def cut_responses(rows: list[dict], tokens: int) -> list[dict]:
    """Rows with each response cut to its first `tokens` tokens of the policy's tokenizer (SmolLM2's)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve("smollm2-135m-instruct"))
    cut = [tokenizer.decode(tokenizer(r["response"], add_special_tokens=False)["input_ids"][:tokens]).strip()
           for r in rows]
    return [r | {"response": text or r["response"]} for r, text in zip(rows, cut)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    args = parser.parse_args()
    xstest = Path(args.shared) / "data" / "judge-validation" / "xstest-completions"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    refusal = xstest_refusal_cards(xstest) | {"measured_by": "benchmarks/validate_judges.py", "commit": commit}
    write_json_atomic(ROOT / "src" / "safealign" / "data" / "judges" / "refusal_card.json", refusal)
    judges_folder = ROOT / "src" / "safealign" / "data" / "judges"
    judge, card = fit_harm_judge()
    judge.save(judges_folder)
    pku = read_pku_saferlhf_mini(Path(args.shared) / "data" / "judge-validation" / "pku-saferlhf-mini" /
                                 "safe_rlhf_mini.csv")
    cross = harm_card(judge, pku, PKU_SOURCE, fit_source=False)
    tokens = load_audit_config("offline").policy_eval.max_new_tokens
    evaluate = read_gptfuzz(embedded("embedded", "gptfuzz", "evaluate.csv.gz"))
    at_length = [harm_card(judge, cut_responses(rows, tokens), f"{source}; each response cut to its first {tokens} "
                           f"tokens (the offline audit's length), labelled as a whole", fit_source=own)
                 | {"response_tokens": tokens}
                 for rows, source, own in ((evaluate, card["source"], True), (pku, PKU_SOURCE, False))]
    write_json_atomic(judges_folder / SHIPPED_HARM_CARD[1], {"key": harm_fit_key(), "card": card,
                                                             "cross_source": [cross, at_length[1]],
                                                             "measured_by": "benchmarks/validate_judges.py",
                                                             "commit": commit})
    helpfulness, helpfulness_card = fit_helpfulness_judge()
    helpfulness.threshold = helpfulness_card["threshold"]
    helpfulness.save(judges_folder)
    write_json_atomic(judges_folder / SHIPPED_HELPFULNESS_CARD[1], {"key": helpfulness_fit_key(),
                                                                    "card": helpfulness_card,
                                                                    "measured_by": "benchmarks/validate_judges.py",
                                                                    "commit": commit})
    seconds = {}
    for how, refit in (("refit", True), ("shipped", False)):
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as out:
            built = build_judges(out, refit=refit)
        seconds[how] = round(time.perf_counter() - start, 1)
    write_json_atomic(ROOT / "benchmarks" / "results" / "judges.json", {
        "commit": commit, "build_seconds": seconds, "cards": built["cards"], "refusal_per_model": refusal["per_model"],
        "refusal_per_model_held_out": refusal["per_model_held_out"], "refusal_all_rows": refusal["all"],
        "refusal_leave_one_model_out": refusal["leave_one_model_out"],
        "harm_cross_source": [cross], "harm_at_audit_length": at_length})
    for role, card in built["cards"].items():
        base = card.get("baseline")
        print(f"{role:12s} {card['judge']:18s} n={card['n']:5d} acc={card['accuracy']['value']:.3f} "
              f"f1={card['f1']:.3f} {card['f1_ci']} kappa={card['kappa']:.3f} {card['kappa_ci']} valid={card['valid']}"
              + (f" | baseline acc={base['accuracy']['value']:.3f} kappa={base['kappa']:.3f}" if base else ""))
    for card in ([cross] + at_length + list(refusal["per_model_held_out"].values())
                 + list(refusal["leave_one_model_out"].values()) + helpfulness_card["cross_source"]):
        print(f"{card['role']:12s} {card['source'][:60]:60s} n={card['n']:5d} kappa={card['kappa']:.3f} "
              f"{card['kappa_ci']} | baseline kappa={card['baseline']['kappa']:.3f}")
    print(f"build_judges: {seconds} s (embedding cache as this machine holds it)")


if __name__ == "__main__":
    main()
