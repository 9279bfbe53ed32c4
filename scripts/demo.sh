#!/usr/bin/env bash
# The README's main job: corpus -> benchmark manifest -> renders -> stats (-> DAT, when installed).
set -euo pipefail
venv=${1:-.venv}
out=${2:-out/demo}
nm="$venv/bin/noisemix"
mkdir -p "$out"
echo "== building the noisy benchmark (train/valid/test, SNR uniform in -5..20 dB)"
"$nm" build --snr -5:20 --seed 0 --out "$out/manifest" --mixtures-per-segment 1
echo "== rendering the test split with stems"
"$nm" render "$out/manifest" --out "$out/audio" --split test --stems --workers 2
echo "== verifying sources and renders"
"$nm" verify "$out/manifest" --renders "$out/audio"
echo "== statistics"
"$nm" stats "$out/manifest" --plot "$out/snr_hist.png" --csv "$out/counts.csv"
echo
echo "manifest:      $out/manifest"
echo "rendered test: $out/audio"
echo "SNR histogram: $out/snr_hist.png"
echo "counts:        $out/counts.csv"
