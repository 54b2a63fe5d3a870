#!/usr/bin/env bash
# Runs one experiment on a GPU machine (one process, every local GPU).
#
#   pip install -e ".[gpu]"          # jax[cuda12]
#   launch/gpu.sh reversals runs/reversals_gpu --config.model=gemma3-270m
#
# Fine-tuning uses a data/fsdp mesh over all local GPUs
# (--config.finetune.mesh.fsdp=-1, the default); scoring and sampling split
# each batch's rows over them. Multi-node GPU: start this script on every
# node with one WORKDIR on a filesystem all nodes share, and --multihost
# (coordinator settings from the environment, SLURM or Open MPI, or
# --coordinator_address, --num_processes, --process_id), as in
# launch/tpu_vm.sh and docs/launching.md.
set -euo pipefail
ARG="${1:?usage: launch/gpu.sh NAME[,tiny] [WORKDIR] [--config.x=y ...]}"
shift
WORKDIR="${1:-runs/${ARG//,/_}_gpu}"
[[ $# -gt 0 ]] && shift
cd "$(dirname "$0")/.."
export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}"
exec python launch/run_experiment.py --config="configs/experiment.py:${ARG}" \
  --workdir="${WORKDIR}" \
  --config.finetune.dtype=bfloat16 "$@"
