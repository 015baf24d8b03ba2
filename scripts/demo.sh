#!/usr/bin/env bash
# The main job as far as it exists, on built-in data: generate a data set, render a prompt,
# score the gold outputs, compare runs. Needs no GPU and no download.
set -euo pipefail
cd "$(dirname "$0")/.."
T2M=./bin/t2m
$T2M --help >/dev/null
echo "demo: pipeline steps are added here as they land"
