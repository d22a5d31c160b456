#!/usr/bin/env python3
"""Turns criterion's results (target/criterion) into the tables of BENCHMARKS.md.

Each criterion group holds a RustyRay measurement and, measured in the same run,
a baseline (the function whose name starts with "baseline"). For every group this
prints the median time per iteration of each, the RustyRay rate (operations or
bytes per second), and the ratio RustyRay time / baseline time.

usage: python3 benches/report.py [target/criterion]
"""

import json
import os
import sys


def load(root):
    groups = {}
    for dirpath, _dirs, files in os.walk(root):
        if os.path.basename(dirpath) != "new" or "benchmark.json" not in files:
            continue
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            bench = json.load(f)
        with open(os.path.join(dirpath, "estimates.json")) as f:
            estimates = json.load(f)
        group = groups.setdefault(bench["group_id"], [])
        group.append((bench["function_id"], estimates["median"]["point_estimate"], bench.get("throughput")))
    return groups


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def fmt_rate(ns, throughput):
    if not throughput:
        return ""
    kind, amount = next(iter(throughput.items()))
    per_second = amount / (ns / 1e9)
    if kind == "Bytes":
        return f"{per_second / 1e9:.3g} GB/s"
    return f"{per_second:,.0f}/s"


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "target/criterion"
    groups = load(root)
    if not groups:
        sys.exit(f"no criterion results under {root}: run `cargo bench` first")
    print("| benchmark | RustyRay (median) | RustyRay rate | baseline | baseline (median) | ratio |")
    print("|---|---|---|---|---|---|")
    for name in sorted(groups):
        entries = groups[name]
        baselines = [e for e in entries if e[0].startswith("baseline")]
        ours = [e for e in entries if not e[0].startswith("baseline")]
        base = baselines[0] if baselines else None
        for function, ns, throughput in sorted(ours):
            label = name if function == "rustyray" else f"{name} ({function.removeprefix('rustyray').strip(' ,')})"
            if base:
                base_label = base[0].removeprefix("baseline:").strip()
                print(f"| {label} | {fmt_time(ns)} | {fmt_rate(ns, throughput)} | {base_label} | "
                      f"{fmt_time(base[1])} | {ns / base[1]:.2f}x |")
            else:
                print(f"| {label} | {fmt_time(ns)} | {fmt_rate(ns, throughput)} | | | |")


if __name__ == "__main__":
    main()
