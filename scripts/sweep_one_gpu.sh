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
#      DEADLINE (seconds, then every job is stopped; rerun to resume), USE_MPS (1), EXTRA (overrides)
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
  local t=$(date +%s)
  # shellcheck disable=SC2086  # EXTRA holds several overrides
  python3 src/train.py experiment=$EXPERIMENT trainer=$TRAINER aug=$aug seed=$seed $overrides \
    trainer.enable_progress_bar=false hydra.run.dir="$dir" $resume $EXTRA >> "$ROOT/_logs/${dir##*/}.log" 2>&1
  echo "${dir##*/} rc=$? $(( $(date +%s) - t )) s $resume" | tee -a "$ROOT/_logs/jobs.txt"
}
export -f job
for a in $METHODS; do for d in ${DATASETS:--}; do for s in $SEEDS; do echo "$a $s $d"; done; done; done |
  timeout -k 20 $(( DEADLINE - ($(date +%s) - T0) )) xargs -P "$JOBS" -L 1 bash -c 'job "$0" "$1" "$2"'
[ $MPS = on ] && echo quit | nvidia-cuda-mps-control
done_jobs=$(grep -l '"status": "completed"' "$ROOT"/*/metrics.json 2>/dev/null | wc -l)
echo "finished after $(( $(date +%s) - T0 )) s: $done_jobs completed jobs in $ROOT"
