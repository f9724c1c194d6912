#!/bin/bash
# Run the jobs of a sweep (methods x seeds) on ONE GPU, JOBS at a time, each in its own fixed run
# folder, under CUDA MPS when it is available (the processes' small kernels then share the GPU
# instead of time-slicing it: on an H200 the 27 Kvasir jobs took 366 s with MPS, 14 at a time).
# Rerunning the same command skips completed jobs and resumes killed ones from last.ckpt.
#
#   bash scripts/sweep_one_gpu.sh                                   # experiment=kvasir, 9 methods x 3 seeds
#   EXPERIMENT=paper METHODS="none fgsm invfgsm" SEEDS="0 1" JOBS=8 bash scripts/sweep_one_gpu.sh
#   METHODS="invfgsm+aug.mode=free invfgsm+aug.labels=pred" bash scripts/sweep_one_gpu.sh   # variants
#   EXPERIMENT=paper DATASETS="colon lumbar" SEEDS=0 JOBS=16 bash scripts/sweep_one_gpu.sh     # x datasets
#   python src/report.py logs/kvasir/sweep                          # tables and plots
#
# A method is an aug name, optionally with '+'-joined overrides (run folder: invfgsm+aug.mode-free_seed0).
# DATASETS (dataset configs; default: the experiment's own) adds a dataset axis (folder: none_colon_seed0).
# env: EXPERIMENT, METHODS, DATASETS, SEEDS, JOBS (parallel jobs), ROOT (run folders), TRAINER (gpu),
#      DEADLINE (seconds, then every job gets SIGTERM, 20 s later SIGKILL; rerun to resume), USE_MPS (1),
#      EXTRA (overrides)
# Hydra's own launcher does the same without MPS or resume-by-rerun:
#   python src/train.py -m experiment=kvasir trainer=gpu hydra/launcher=joblib hydra.launcher.n_jobs=14
set -u
T0=$(date +%s)
export EXPERIMENT=${EXPERIMENT:-kvasir} TRAINER=${TRAINER:-gpu} EXTRA=${EXTRA:-}
export ROOT=${ROOT:-logs/$EXPERIMENT/sweep}
METHODS=${METHODS:-gan fgsm invfgsm flip rotate crop jitter same_steps none}  # longest first
SEEDS=${SEEDS:-0 1 2}
JOBS=${JOBS:-14}
DEADLINE=${DEADLINE:-86400}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} WANDB_MODE=${WANDB_MODE:-offline}
mkdir -p "$ROOT/_logs"

MPS=off
if [ "${USE_MPS:-1}" = 1 ] && command -v nvidia-cuda-mps-control >/dev/null; then
  export CUDA_MPS_PIPE_DIRECTORY=${CUDA_MPS_PIPE_DIRECTORY:-/tmp/mps_pipe} CUDA_MPS_LOG_DIRECTORY=${CUDA_MPS_LOG_DIRECTORY:-/tmp/mps_log}
  mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
  if nvidia-cuda-mps-control -d; then
    if timeout 60 python3 -c "import torch; assert torch.ones(2, device='cuda').sum().item() == 2"; then
      MPS=on
    else  # our daemon does not serve this GPU: stop it, share by time-slicing
      echo quit | nvidia-cuda-mps-control
    fi
  fi  # a daemon that failed to start (no permission, another one on this pipe) is not ours to stop
  [ $MPS = on ] || unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
fi
echo "start $(date -u +%FT%TZ) experiment=$EXPERIMENT mps=$MPS jobs=$JOBS root=$ROOT"

job() {
  local spec=$1 seed=$2 dataset=$3 resume=""
  local aug=${spec%%+*} overrides="" dir="$ROOT/${spec//=/-}_seed${seed}"
  [ "$spec" != "$aug" ] && overrides=${spec#*+} && overrides=${overrides//+/ }
  if [ "$dataset" != "-" ]; then overrides="$overrides dataset=$dataset"; dir="$ROOT/${spec//=/-}_${dataset}_seed${seed}"; fi
  grep -q '"status": "completed"' "$dir/metrics.json" 2>/dev/null && return 0
  [ -f "$dir/checkpoints/last.ckpt" ] && resume="resume_dir=$dir"
  local t=$(date +%s) stopped=""
  # at the deadline the whole group gets SIGTERM: this wrapper waits for its train.py to stop
  # (it saves its state as "interrupted"), then still writes the job's line
  trap 'stopped=" stopped at the deadline"' TERM
  [ -z "$stopped" ] || return 0
  # shellcheck disable=SC2086  # EXTRA holds several overrides
  python3 src/train.py experiment=$EXPERIMENT trainer=$TRAINER aug=$aug seed=$seed $overrides \
    trainer.enable_progress_bar=false hydra.run.dir="$dir" $resume $EXTRA >> "$ROOT/_logs/${dir##*/}.log" 2>&1
  local rc=$? status
  # the run's own word: Lightning exits 0 on SIGTERM, so rc alone calls a stopped job a success
  status=$(grep -o '"status": "[a-z]*"' "$dir/metrics.json" 2>/dev/null | head -n 1 | cut -d'"' -f4)
  echo "${dir##*/} rc=$rc status=${status:-none} $(( $(date +%s) - t )) s $resume$stopped" | tee -a "$ROOT/_logs/jobs.txt"
}
pool() {
  for a in $METHODS; do for d in ${DATASETS:--}; do for s in $SEEDS; do echo "$a $s $d"; done; done; done |
    xargs -P "$JOBS" -L 1 bash -c 'job "$0" "$1" "$2"'
}
in_group() {  # a live (not zombie) process left in process group $1? (read from /proc: no procps)
  local f line state pgrp
  for f in /proc/[0-9]*/stat; do
    { read -r line < "$f"; } 2>/dev/null || continue
    read -r state _ pgrp _ <<< "${line##*) }"
    [ "$pgrp" = "$1" ] && [ "$state" != Z ] && return 0
  done
  return 1
}
export -f job pool
export METHODS SEEDS JOBS DATASETS=${DATASETS:-}
# The pool in its own process group (setsid: a background child of a script is no group leader,
# so it does not fork and its pid is the group id), to stop every job with its train.py at the
# deadline and wait for them: `timeout` killed xargs and the wrappers and returned at once, so
# trainers outlived the "finished" line and MPS, and a rerun could start a second one per folder.
setsid bash -c pool &
POOL=$! STOP=""
trap 'STOP="interrupted"' INT TERM  # the pool is in its own session: Ctrl-C reaches only this script
while kill -0 "$POOL" 2>/dev/null && [ -z "$STOP" ] && [ $(( $(date +%s) - T0 )) -lt "$DEADLINE" ]; do sleep 1; done
kill -0 "$POOL" 2>/dev/null && echo "${STOP:-deadline of $DEADLINE s reached}: stopping the running jobs (rerun to resume them)"
kill -TERM -- "-$POOL" 2>/dev/null  # anything left in the group (none when the pool ended by itself)
for _ in $(seq 20); do in_group "$POOL" || break; sleep 1; done
if in_group "$POOL"; then
  echo "jobs still running 20 s after SIGTERM: killed"
  kill -KILL -- "-$POOL" 2>/dev/null
  for _ in 1 2 3 4 5; do in_group "$POOL" || break; sleep 1; done
fi
wait "$POOL" 2>/dev/null
[ $MPS = on ] && echo quit | nvidia-cuda-mps-control
done_jobs=$(grep -l '"status": "completed"' "$ROOT"/*/metrics.json 2>/dev/null | wc -l)
echo "finished after $(( $(date +%s) - T0 )) s: $done_jobs completed jobs in $ROOT"
