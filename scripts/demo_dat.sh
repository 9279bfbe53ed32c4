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
# Each seed trains stage 1 once (runs/seedS/stage1) and every method continues from it
# (dat train --stage1-from), so all four share the same start and the comparison is paired.
# The budget is the preset's (cpu: stage 1 stops early by patience; see
# benchmarks/cpu_convergence.py). Optional knobs (environment): SEEDS="0" (space-separated),
# PRESET=cpu, DAT_THREADS=1 (torch threads), and extra `dat train` arguments in DAT_ARGS
# (e.g. DAT_ARGS="--set train.stage3.steps=200").
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
if [ ! -x "$dat" ]; then
  echo "error: $dat not found (install the package into $venv)" >&2
  exit 2
fi
corpus=${DEMO_CORPUS:-$("$venv/bin/python" -c 'from noisemix.cache import cache_dir; print(cache_dir() / "demo-corpus")')}
if [ ! -d "$corpus" ]; then
  echo "error: demo corpus not found at $corpus (set DEMO_CORPUS, or build it with noisemix first)" >&2
  exit 2
fi
seeds=${SEEDS:-0}
threads=${DAT_THREADS:-1}
preset=${PRESET:-cpu}
read -r -a extra <<< "${DAT_ARGS:-}"
train_manifest="$repo/manifests/demo"
grid_manifest="$repo/manifests/demo-grid"
methods=(source-only multicondition dat-no-dc-pretrain dat)
root=(--root "demo=$corpus")
timings="$out/timings.tsv"
[ -f "$timings" ] || printf 'seed\tmethod\tphase\tseconds\n' > "$timings"

all_runs=()
for seed in $seeds; do
  common=(--preset "$preset" --seed "$seed" "${root[@]}" --set "train.threads=$threads" --set train.progress=false
          --set "data.cache_dir=$out/cache")
  first="$out/runs/seed$seed/stage1"
  if [ ! -f "$first/selection.json" ]; then
    echo "== seed $seed: stage 1 (FE + LP on clean music), shared by the four methods -> $first"
    start=$(date +%s)
    if [ -f "$first/last.pt" ]; then
      "$dat" train -m "$train_manifest" --out "$first" --resume "${root[@]}"
    else
      rm -rf "$first"
      "$dat" train -m "$train_manifest" --out "$first" --method source-only --stage 1 "${common[@]}" "${extra[@]}"
    fi
    printf '%s	%s	train	%s
' "$seed" "stage 1" "$(( $(date +%s) - start ))" >> "$timings"
  fi
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
      rm -rf "$run"  # a run that stopped before its first checkpoint
      "$dat" train -m "$train_manifest" --out "$run" --method "$method" --stage1-from "$first" "${common[@]}" \
        "${extra[@]}"
    fi
    printf '%s\t%s\ttrain\t%s\n' "$seed" "$method" "$(( $(date +%s) - start ))" >> "$timings"
  done
  for name in demo grid; do
    manifest=$train_manifest
    [ "$name" = grid ] && manifest=$grid_manifest
    done_all=1
    for run in "${runs[@]}"; do [ -f "$run/eval-$name/metrics.json" ] || done_all=0; done
    if [ "$done_all" = 1 ]; then echo "== seed $seed: $name evaluation already done"; continue; fi
    echo "== seed $seed: evaluating on $manifest (test split)"
    start=$(date +%s)
    OMP_NUM_THREADS=$threads "$dat" evaluate "${runs[@]}" -m "$manifest" --name "eval-$name" "${root[@]}" \
      --cache-dir "$out/cache" --out "$out/compare/seed$seed-$name" > "$out/compare-seed$seed-$name.log" 2>&1 \
      || { cat "$out/compare-seed$seed-$name.log" >&2; exit 1; }
    tr '\r' '\n' < "$out/compare-seed$seed-$name.log" | grep -- ' -> ' || true
    printf '%s\t(all four)\teval-%s\t%s\n' "$seed" "$name" "$(( $(date +%s) - start ))" >> "$timings"
  done
  all_runs+=("${runs[@]}")
done

echo "== robustness table: methods averaged over seeds ($seeds); eval-demo: manifests/demo, eval-grid: manifests/demo-grid"
"$dat" compare "${all_runs[@]}" --eval eval-demo --eval eval-grid --out "$out/robustness.md"
echo
echo "runs:        $out/runs/seed*/METHOD (eval-demo/, eval-grid/: metrics.json, per_tag.csv, table.md, auc_vs_snr.png)"
echo "comparisons: $out/compare/seed*-{demo,grid}/table.md"
echo "table:       $out/robustness.md"
echo "plots:       $out/robustness-eval-{demo,grid}.png"
echo "timings:     $timings"
