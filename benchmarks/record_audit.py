"""Record a finished audit's headline (timing, memory, held-out harmful rates, the recommendation) in
benchmarks/results/offline_audit.json, from which benchmarks/render_docs.py renders the README's figures.

    /usr/bin/time -v make audit 2> time.txt        # from a clean clone, empty SafeAlign cache
    python benchmarks/record_audit.py --audit runs/audit --time time.txt [--smoke-time smoke.txt] [--commit C]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from safealign.io import write_json_atomic  # noqa: E402
from safealign.models import machine  # noqa: E402


def minutes(seconds: float) -> str:
    """m:ss, rounded to the second (119.6 s is 2:00, not 1:60)."""
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def gnu_time(path: Path) -> dict:
    """Wall seconds and peak RSS (GiB) from `/usr/bin/time -v` output."""
    text = path.read_text()
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", text)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if not wall or not rss:
        raise SystemExit(f"{path}: not the output of /usr/bin/time -v")
    hours, mins, secs = int(wall.group(1) or 0), int(wall.group(2)), float(wall.group(3))
    return {"seconds": hours * 3600 + mins * 60 + secs, "peak_rss_gib": int(rss.group(1)) / 2**20}


def with_earlier(result: dict, before: dict | None, keep: int = 5) -> dict:
    """The new record with the last `keep` earlier ones' times and machines beside it (machines of one kind differ by
    tens of percent, so a faster time may be a faster machine); a re-record of one commit on one machine replaces
    its earlier record."""
    if before is None:
        return result
    earlier = [{"commit": before["commit"], "machine": before.get("machine"),
                "make_audit_wall": before["timing"]["make_audit_wall"], "audit_wall": before["timing"]["audit_wall"]}]
    earlier += before.get("earlier", [])
    same = (lambda e: e["commit"] == result["commit"] and e["machine"] == result["machine"])
    return result | {"earlier": [e for e in earlier if not same(e)][:keep]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audit", default="runs/audit")
    parser.add_argument("--time", required=True, help="/usr/bin/time -v output of the `make audit` that ran it")
    parser.add_argument("--smoke-time", help="/usr/bin/time -v output of `make audit ARGS='--profile smoke'`")
    parser.add_argument("--commit", help="the commit the audit ran (default: HEAD)")
    args = parser.parse_args()
    run = Path(args.audit)
    report = json.loads((run / "report.json").read_text())
    audit = json.loads((run / "audit.json").read_text())
    measured = gnu_time(Path(args.time))
    metrics = report["policies"]["metrics"]
    key = "held_out_harmful_response_rate"
    judge = report["policies"]["judges"]["harm"]
    card = judge["card"]
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()
    commit = args.commit or head
    generation = [line for line in report["recommendation"]["text"] if line.startswith("Generation:")]
    result = {
        "commit": commit,
        "machine": machine(),  # the machine this runs on: run it where the audit ran
        "timing": {"make_audit_wall": minutes(measured["seconds"]), "audit_wall": minutes(audit["wall_seconds"]),
                   "peak_rss_gib": round(measured["peak_rss_gib"], 2),
                   "smoke_wall": minutes(gnu_time(Path(args.smoke_time))["seconds"]) if args.smoke_time else None,
                   "smoke_commit": commit if args.smoke_time else None,  # measured in the same clone
                   "stages": report["timing"]},
        "harm_judge": f"{judge['judge']}, κ {card['kappa']:.2f} [{card['kappa_ci'][0]:.2f}, "
                      f"{card['kappa_ci'][1]:.2f}] "
                      f"on {card['source'].split(':')[0]}" + "".join(
                          f", κ {c['kappa']:.2f} [{c['kappa_ci'][0]:.2f}, {c['kappa_ci'][1]:.2f}] on "
                          f"{c['source'].split(' (')[0]}, a source it never saw"
                          for c in card.get("cross_source", [])
                          if "PKU" in c["source"] and not c.get("response_tokens")),  # whole responses
        "rates": {name: m[key] for name, m in metrics.items() if m and m.get(key)},
        "reward_cost_correlation": report.get("reward_cost_correlation"),
        "recommendation": generation[0].removeprefix("Generation: ") if generation else "none",
    }
    path = ROOT / "benchmarks" / "results" / "offline_audit.json"
    result = with_earlier(result, json.loads(path.read_text()) if path.is_file() else None)
    write_json_atomic(path, result)
    print(json.dumps({k: v for k, v in result.items() if k != "timing"} | {"timing": {
        k: v for k, v in result["timing"].items() if k != "stages"}}, indent=2))


if __name__ == "__main__":
    main()
