#!/usr/bin/env bash
# Rebuild the committed demo benchmark definitions from the demo corpus:
#   manifests/demo       every clean clip (whole) + 2 noisy mixtures each, SNR uniform in -5..20 dB
#   manifests/demo-grid  every clip's first 236,196 samples (10.7 s, four model inputs): clean, and x 3 noise
#                        categories x SNR -5, 0, ..., 20 dB: the robustness grid
# Both split clips and noise recordings by group 70 / 10 / 20 (train / valid / test), so the test
# split is large enough to measure (tests/test_demo_benchmark.py checks the committed files).
#
#   scripts/build_demo_manifests.sh [VENV] [OUT_DIR]     (default: .venv, manifests)
#
# The options here are the ones experiments/demo-claims.toml and scripts/demo.sh use.
set -euo pipefail
venv=${1:-.venv}
out=${2:-manifests}
nm="$venv/bin/noisemix"
export NOISEMIX_DEFAULT_CORPUS=demo
split=(--split-fractions 0.7,0.1,0.2 --seed 0)
"$nm" build --snr -5:20 --segment full --mixtures-per-segment 2 "${split[@]}" --out "$out/demo" --no-progress
"$nm" build --design grid --snr -5:20:5 --segment 236196 --max-segments-per-clip 1 \
    "${split[@]}" --out "$out/demo-grid" --no-progress
