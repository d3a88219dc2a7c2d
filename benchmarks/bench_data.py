"""Data-stage throughput on one core: parsing HH-RLHF pairs and labelling responses with the taxonomy.

    python benchmarks/bench_data.py [--repeat 5]

Pins itself to one CPU, runs each measurement `repeat` times on the embedded 2,303 pairs and reports the
median. Labelling is compared with the same patterns run by Python's `re`, one alternation per category
(the obvious implementation). Results go to benchmarks/results/data.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import time
from pathlib import Path

from safealign.data.sources import load_pairs
from safealign.data.taxonomy import load_taxonomy
from safealign.io import write_json_atomic

RESULTS = Path(__file__).parent / "results" / "data.json"


def median_seconds(work, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    pairs = load_pairs("embedded").pairs
    taxonomy = load_taxonomy()
    rejected = [p.rejected for p in pairs]
    python_re = [re.compile("|".join(f"(?:{p})" for p in c.patterns), re.IGNORECASE)
                 for c in taxonomy.categories if c.patterns]

    parse_s = median_seconds(lambda: load_pairs("embedded"), args.repeat)
    label_s = median_seconds(lambda: [taxonomy.label(t) for t in rejected], args.repeat)
    counts_s = median_seconds(lambda: [taxonomy.hit_counts(t) for t in rejected], args.repeat)
    python_s = median_seconds(lambda: [[r.search(t) is not None for r in python_re] for t in rejected],
                              max(1, args.repeat // 2))
    agree = sum(taxonomy.label(t) != ["S8"] for t in rejected) == sum(
        any(r.search(t) for r in python_re) for t in rejected)

    result = {
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cores_used": 1},
        "pairs": len(pairs),
        "mean_rejected_chars": round(statistics.fmean(len(t) for t in rejected), 1),
        "parse_pairs_per_s": round(len(pairs) / parse_s),
        "label_pairs_per_s": round(len(rejected) / label_s),
        "hit_counts_pairs_per_s": round(len(rejected) / counts_s),
        "python_re_label_pairs_per_s": round(len(rejected) / python_s),
        "speedup_over_python_re": round(python_s / label_s, 1),
        "same_harmful_count_as_python_re": agree,
        "target_label_pairs_per_s": 100_000,
        "repeat": args.repeat,
        "measured": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_json_atomic(RESULTS, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
