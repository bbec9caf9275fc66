#!/usr/bin/env bash
# moa batch across machines on Slurm: a job array of 4 tasks, each answering its shard of
# the prompts (`--shard auto` reads SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_MIN and
# SLURM_ARRAY_TASK_COUNT). A task that is requeued resumes its shard's output.
#   sbatch host/deploy/slurm-array.sh RECIPE PROMPTS.jsonl OUT_DIR
# Afterwards:
#   moa batch merge --input PROMPTS.jsonl OUT_DIR/shard-*.jsonl -o ALL.jsonl
#SBATCH --job-name=moa-batch
#SBATCH --array=0-3
#SBATCH --cpus-per-task=2
#SBATCH --mem=1G
#SBATCH --requeue
set -euo pipefail
recipe=$1 prompts=$2 out=$3
mkdir -p "$out"
exec moa batch -q --recipe "$recipe" "$prompts" --shard auto -o "$out/shard-$SLURM_ARRAY_TASK_ID.jsonl"
