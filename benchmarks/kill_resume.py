"""kill -9 a real audit at several points, rerun it, and compare its report with an uninterrupted run's.

    python benchmarks/kill_resume.py --reference RUN_DIR [--profile offline] [--out DIR]

RUN_DIR is a finished, uninterrupted audit of the same profile and code. The audit in --out is started,
killed with SIGKILL at each kill point in turn (a new process each time, resuming the last), then run to
the end; report.json and every arm's metrics.json are compared with the reference's, less what differs by
nature (the run directory's path, timings, machine). The slow test does the same on the smoke profile;
this runs it on the offline profile by hand. Results go to benchmarks/results/kill_resume_<profile>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def stages(out: Path) -> dict:
    try:
        return json.loads((out / "stages.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}


def kill_points(out: Path) -> dict:
    # a finished training run removes its checkpoints: should the poll miss them, kill just after that stage
    return {
        "mid reward-model training (a checkpoint saved)": lambda: (any((out / "reward_model" / "checkpoints").glob(
            "checkpoint-*")) or "train_reward_model" in stages(out)),
        "mid classifier training": lambda: (out / "classifier").is_dir() and "train_classifier" not in stages(out),
        "mid generation (base policy eval)": lambda: (
            "train_base" in stages(out) and (out / "base" / "config.yaml").is_file()
            and time.time() - (out / "base" / "config.yaml").stat().st_mtime > 30),
        "mid DPO training": lambda: (any((out / "dpo" / "checkpoints").glob("checkpoint-*"))
                                     or "train_dpo" in stages(out)),
        "mid Safe RLHF": lambda: (out / "safe_rlhf" / "train_log.jsonl").is_file(),
    }


def comparable(out: Path) -> dict:
    report = json.loads((out / "report.json").read_text())
    report.pop("run")
    report.pop("timing")
    metrics = {str(p.relative_to(out)): json.loads(p.read_text()) for p in sorted(out.glob("*/metrics.json"))}
    return json.loads(json.dumps({"report": report, "metrics": metrics}).replace(str(out), "<run>"))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reference", required=True)
    parser.add_argument("--profile", default="offline")
    parser.add_argument("--out", default="runs/kill_resume")
    args = parser.parse_args()
    out = Path(args.out)
    command = [sys.executable, "-m", "safealign.cli", "audit", "--profile", args.profile, "--out", str(out)]
    killed = []
    for point, condition in kill_points(out).items():
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while proc.poll() is None and not condition():
            time.sleep(0.2)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            killed.append({"point": point, "stages_done": len(stages(out))})
            print(f"killed: {point} ({len(stages(out))} stages done)", flush=True)
        else:
            print(f"finished before: {point}", flush=True)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    ours, reference = comparable(out), comparable(Path(args.reference))
    differing = sorted(k for k in set(ours["metrics"]) | set(reference["metrics"])
                       if ours["metrics"].get(k) != reference["metrics"].get(k))
    result = {"profile": args.profile, "killed_at": killed, "final_exit": done.returncode,
              "final_seconds": round(time.perf_counter() - start, 1),
              "report_equal": ours["report"] == reference["report"], "metrics_files": len(ours["metrics"]),
              "metrics_differing": differing, "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
    (RESULTS / f"kill_resume_{args.profile}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
