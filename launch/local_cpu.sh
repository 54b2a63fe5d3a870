#!/usr/bin/env bash
# Runs one experiment on this machine's CPU (laptop, CI, a 2-core VM).
#
#   launch/local_cpu.sh reversals            # the real config, smollm2-135m
#   launch/local_cpu.sh reversals,tiny       # tiny random model, ~1-2 min
#   launch/local_cpu.sh syllogisms runs/syl --config.seeds=0,1
#
# Args: CONFIG_ARG [WORKDIR] [extra absl flags...]. Rerun the same command to
# resume an interrupted run.
set -euo pipefail
ARG="${1:?usage: launch/local_cpu.sh NAME[,tiny] [WORKDIR] [--config.x=y ...]}"
shift
WORKDIR="${1:-runs/${ARG//,/_}}"
[[ $# -gt 0 ]] && shift
cd "$(dirname "$0")/.."
# One process using every core; no accelerator.
export JAX_PLATFORMS=cpu
export TOKENIZERS_PARALLELISM=false
exec python launch/run_experiment.py --config="configs/experiment.py:${ARG}" \
  --workdir="${WORKDIR}" "$@"
