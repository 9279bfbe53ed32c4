#!/usr/bin/env bash
# DAT robustness demo: train the four methods on manifests/demo (cpu preset), evaluate them
# on the clean + noisy test clips (manifests/demo) and on the balanced noise grid
# (manifests/demo-grid: every test clip x category x SNR in -5..20 dB), and write one table.
#
#   scripts/demo_dat.sh VENV OUT_DIR
#
# VENV must hold the installed package (console script $VENV/bin/dat). The demo corpus is
# read from $DEMO_CORPUS (default: $NOISEMIX_CACHE/demo-corpus, else
# $XDG_CACHE_HOME/noisemix/demo-corpus, else ~/.cache/noisemix/demo-corpus).
# Optional knobs (environment): SEEDS="0" (space-separated), DAT_THREADS=1 (torch threads;
# 1 was faster than 2 on a 2-core machine, because the loader workers mix audio),
# STAGE1_STEPS=80 STAGE2_STEPS=16 STAGE3_STEPS=80 EVAL_EVERY=20.
# Re-running with the same OUT_DIR resumes / skips finished training runs and evaluations.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 VENV OUT_DIR" >&2
  exit 2
fi
venv=$1
mkdir -p "$2"
out=$(cd "$2" && pwd)
repo=$(cd "$(dirname "$0")/.." && pwd)
dat="$venv/bin/dat"
python="$venv/bin/python"
if [ ! -x "$dat" ]; then
  echo "error: $dat not found (install the package into $venv)" >&2
  exit 2
fi
default_cache=${NOISEMIX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/noisemix}
corpus=${DEMO_CORPUS:-$default_cache/demo-corpus}
if [ ! -d "$corpus" ]; then
  echo "error: demo corpus not found at $corpus (set DEMO_CORPUS, or build it with noisemix first)" >&2
  exit 2
fi
seeds=${SEEDS:-0}
threads=${DAT_THREADS:-1}
s1=${STAGE1_STEPS:-80}
s2=${STAGE2_STEPS:-16}
s3=${STAGE3_STEPS:-80}
every=${EVAL_EVERY:-20}
train_manifest="$repo/manifests/demo"
grid_manifest="$repo/manifests/demo-grid"
methods=(source-only multicondition dat-no-dc-pretrain dat)
root=(--root "demo=$corpus")
timings="$out/timings.tsv"
[ -f "$timings" ] || printf 'seed\tmethod\tphase\tseconds\n' > "$timings"

for seed in $seeds; do
  runs=()
  for method in "${methods[@]}"; do
    run="$out/runs/seed$seed/$method"
    runs+=("$run")
    echo "== seed $seed: training $method -> $run"
    if [ -f "$run/eval-grid/metrics.json" ]; then
      echo "   already trained and evaluated; skipped"
      continue
    fi
    start=$(date +%s)
    if [ -f "$run/last.pt" ]; then
      "$dat" train -m "$train_manifest" --out "$run" --resume "${root[@]}"
    else
      "$dat" train -m "$train_manifest" --out "$run" --method "$method" --preset cpu --seed "$seed" "${root[@]}" \
        --set "train.stage1.steps=$s1" --set "train.stage2.steps=$s2" --set "train.stage3.steps=$s3" \
        --set "train.eval_every=$every" --set "train.threads=$threads" --set train.progress=false \
        --set "data.cache_dir=$out/cache"
    fi
    printf '%s\t%s\ttrain\t%s\n' "$seed" "$method" "$(( $(date +%s) - start ))" >> "$timings"
  done
  # `dat evaluate` writes RUN/eval; keep one copy per manifest.
  for name in demo grid; do
    manifest=$train_manifest
    [ "$name" = grid ] && manifest=$grid_manifest
    done_all=1
    for run in "${runs[@]}"; do [ -f "$run/eval-$name/metrics.json" ] || done_all=0; done
    if [ "$done_all" = 1 ]; then echo "== seed $seed: $name evaluation already done"; continue; fi
    echo "== seed $seed: evaluating on $manifest (test split)"
    start=$(date +%s)
    OMP_NUM_THREADS=$threads "$dat" evaluate "${runs[@]}" -m "$manifest" "${root[@]}" \
      --out "$out/compare/seed$seed-$name" > "$out/compare-seed$seed-$name.log" 2>&1 \
      || { cat "$out/compare-seed$seed-$name.log" >&2; exit 1; }
    tr '\r' '\n' < "$out/compare-seed$seed-$name.log" | grep -- ' -> ' || true
    for run in "${runs[@]}"; do
      rm -rf "$run/eval-$name"
      mv "$run/eval" "$run/eval-$name"
    done
    printf '%s\t(all four)\teval-%s\t%s\n' "$seed" "$name" "$(( $(date +%s) - start ))" >> "$timings"
  done
done

echo "== robustness table (clean clips from manifests/demo, noisy grid from manifests/demo-grid)"
"$python" - "$out" "$seeds" "${methods[@]}" <<'PY'
import json
import sys
from pathlib import Path

import numpy as np

out, seeds, methods = Path(sys.argv[1]), sys.argv[2].split(), sys.argv[3:]


def load(seed, method, name):
    return json.loads((out / "runs" / f"seed{seed}" / method / f"eval-{name}" / "metrics.json").read_text())


def by_level(d):
    """SNR-keyed items in numeric order (metrics.json stores keys sorted as strings)."""
    return sorted(d.items(), key=lambda item: float(item[0]))


def rows(demo, grid):
    """(condition, {roc_auc, pr_auc}) in table order."""
    out_rows = [("clean (demo test clips)", demo.get("clean")),
                ("noisy, demo test (random SNR -5..20 dB)", demo.get("noisy")),
                ("noisy, grid (all)", grid.get("noisy"))]
    out_rows += [(f"grid: {c}", s) for c, s in sorted(grid["by_category"].items())]
    out_rows += [(f"grid: SNR {float(lv):+.0f} dB", s) for lv, s in by_level(grid["by_snr"])]
    out_rows += [(f"grid: {c} @ {float(lv):+.0f} dB", s)
                 for c, d in sorted(grid["by_category_snr"].items()) for lv, s in by_level(d)]
    return out_rows


def value(s, key):
    return float("nan") if not s or s.get(key) is None else float(s[key])


data = {}  # (seed, method) -> list of (condition, roc, pr)
for seed in seeds:
    for method in methods:
        demo, grid = load(seed, method, "demo"), load(seed, method, "grid")
        data[seed, method] = [(n, value(s, "roc_auc"), value(s, "pr_auc")) for n, s in rows(demo, grid)]
names = [n for n, _, _ in data[seeds[0], methods[0]]]


def cell(roc, pr):
    return "--" if not np.isfinite(roc) else f"{100 * roc:.1f} / {100 * pr:.1f}"


def table(columns):
    """columns: list of (header, list of (roc, pr) per condition)."""
    lines = ["| condition | " + " | ".join(h for h, _ in columns) + " |", "|---|" + "---|" * len(columns)]
    for i, n in enumerate(names):
        lines.append(f"| {n} | " + " | ".join(cell(*vals[i]) for _, vals in columns) + " |")
    return "\n".join(lines)


def mean_over(seed_list, method):
    arr = np.array([[(r, p) for _, r, p in data[s, method]] for s in seed_list])
    return [tuple(x) for x in np.mean(arr, axis=0)]


parts = [f"# DAT robustness on the demo benchmark\n",
         "Cells: macro ROC-AUC / PR-AUC (%), clip level, test split. Clean and 'noisy, demo test' rows "
         "come from `dat evaluate -m manifests/demo`; 'grid' rows from `dat evaluate -m manifests/demo-grid` "
         "(the same 29 test clips x 3 categories x 6 SNRs).\n",
         f"## Mean over seeds {', '.join(seeds)}\n", table([(m, mean_over(seeds, m)) for m in methods]), ""]
for seed in seeds:
    parts += [f"## Seed {seed}\n", table([(m, mean_over([seed], m)) for m in methods]), ""]
(out / "robustness.md").write_text("\n".join(parts) + "\n")

# AUC-vs-SNR plot of the seed means (grid cells), dotted lines: clean test clips.
from dat.evaluate import plot_auc_vs_snr

plots = []
for method in methods:
    ms = [(load(s, method, "demo"), load(s, method, "grid")) for s in seeds]
    cats = ms[0][1]["by_category_snr"]
    by = {c: {lv: {k: float(np.mean([value(g["by_category_snr"][c][lv], k) for _, g in ms]))
                   for k in ("roc_auc", "pr_auc")} for lv, _ in by_level(cats[c])} for c in cats}
    clean = {k: float(np.mean([value(d.get("clean"), k) for d, _ in ms])) for k in ("roc_auc", "pr_auc")}
    plots.append({"method": method, "seed": "+".join(seeds), "by_category_snr": by, "clean": clean})
plot_auc_vs_snr(plots, out / "auc_vs_snr.png")
print((out / "robustness.md").read_text())
PY
echo
echo "runs:        $out/runs/seed*/METHOD (eval-demo/, eval-grid/: metrics.json, per_tag.csv, table.md, auc_vs_snr.png)"
echo "comparisons: $out/compare/seed*-{demo,grid}/table.md"
echo "table:       $out/robustness.md"
echo "plot:        $out/auc_vs_snr.png"
echo "timings:     $timings"
