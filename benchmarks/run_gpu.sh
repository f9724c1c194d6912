#!/bin/bash
# The GPU figures of README "Performance" (docs/performance.md: what each measures, and their history):
#   bash benchmarks/run_gpu.sh [--dry-run] [--out DIR] [PART ...]
# PART (default: attack train epoch plain profile syncs; "all" = every part but sweep):
#   attack     our FGSM vs torchattacks                      (attack_throughput.py, ~1 min)
#   twin       twin BatchNorm forward vs plain, per mode     (twin_norm_forward.py, <1 min)
#   advchain   AdvChain per attacked image vs one FGSM       (advchain_cost.py, <1 min)
#   train      Lightning vs a plain loop, img/s              (train_throughput.py, ~2 min)
#   compile    the same with torch.compile                   (first steps compile for a minute or more)
#   epoch      epoch cost by kind, ratios to none            (epoch_cost.py, ~4 min)
#   on_device  the same with dataset.on_device               (~2 min)
#   plain      free mode's parts on a loop without Trainer, publish pinned vs pageable (~2 min)
#   profile    per-op profile of epoch 1 per kind            (epoch_cost.py --profile)
#   syncs      host-device syncs per epoch, bare and in whole src/train.py runs (--count-syncs)
#   e2e        five-epoch Kvasir runs (needs data/kvasir/splits.json: scripts/reproduce_kvasir.sh)
#   sweep      the paper-sized sweep (16 jobs, 30 epochs) under CUDA MPS, its wall time and GPU use;
#              SWEEP_ROOT (default DIR/paper_sweep) holds its runs, SWEEP_DEADLINE (s) stops it early
# One device call may run 10 minutes: split the parts over calls. Each output is printed and
# appended to DIR/benchmarks.txt (default DIR: logs/benchmarks/<time>). --dry-run prints the
# benchmark commands without running them (tests/test_benchmarks.py checks that they parse).
set -u
DRY=0 OUT=logs/benchmarks/$(date +%Y-%m-%d_%H-%M-%S) PARTS=()
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) DRY=1 ;;
    --out) OUT=$2; shift ;;
    all) PARTS+=(attack twin advchain train compile epoch on_device plain profile syncs e2e) ;;
    attack|twin|advchain|train|compile|epoch|on_device|plain|profile|syncs|e2e|sweep) PARTS+=("$1") ;;
    *) echo "unknown part or option: $1 (see the head of $0)" >&2; exit 2 ;;
  esac
  shift
done
[ ${#PARTS[@]} -gt 0 ] || PARTS=(attack train epoch plain profile syncs)
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled
NOISE='warn|tip:|available:|LOCAL_RANK|stopped:|Using bfloat16|set_float32|deprecated|num_workers|Skipping val|litlogger'
T0=$(date +%s)
if [ $DRY = 0 ]; then
  mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)  # absolute: the sweep packs its results from its own folder
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt"
  python3 -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__)" \
    | tee -a "$OUT/device.txt"
fi
bench() {  # bench <seconds> <script> <args...>
  local limit=$1; shift
  if [ $DRY = 1 ]; then printf 'python3 benchmarks/%s' "$1"; shift; printf ' %q' "$@"; echo; return 0; fi
  echo "== python3 benchmarks/$* ($(( $(date +%s) - T0 )) s)" | tee -a "$OUT/benchmarks.txt"
  timeout "$limit" python3 benchmarks/"$@" 2>&1 | grep -v -i -E "$NOISE" | tee -a "$OUT/benchmarks.txt"
}
GPU="--device cuda --size 128 --batch 16 --bf16 --channels-last"
EPOCH="epoch_cost.py $GPU --attack-batch 256"
for part in "${PARTS[@]}"; do
  case $part in
    attack) bench 90 attack_throughput.py $GPU --attack-batch 256 --repeats 5 ;;
    twin)
      bench 60 twin_norm_forward.py $GPU --repeats 20
      bench 60 twin_norm_forward.py $GPU --repeats 20 --backward ;;
    advchain) bench 90 advchain_cost.py --device cuda --batch 32 --size 128 --repeats 10 ;;
    train) bench 120 train_throughput.py $GPU --steps 300 --repeats 3 ;;
    compile) bench 300 train_throughput.py $GPU --steps 300 --repeats 1 --compile ;;
    # 5 repeats: steady epochs of `none` spread 0.85-1.95 s over 3 on an H200
    epoch) bench 240 $EPOCH --num-images 512 --epochs 4 --repeats 5 --kinds none,regenerate,free,input_grad ;;
    on_device) bench 150 $EPOCH --num-images 512 --epochs 4 --repeats 3 --on-device ;;
    plain)
      bench 150 epoch_cost.py --loop plain --device cuda --num-images 512 --size 128 --batch 16 --bf16 \
        --repeats 5 --kinds none,input_grad,free,free_pageable
      bench 150 epoch_cost.py --loop plain $GPU --num-images 512 --repeats 5 --kinds none,input_grad,free,free_pageable ;;
    profile) bench 150 $EPOCH --num-images 128 --profile --top 8 ;;  # 512 did not end in 100 s (H100)
    syncs)
      bench 90 $EPOCH --num-images 256 --count-syncs
      bench 240 epoch_cost.py --device cuda --count-syncs --product "trainer=gpu aug=none" \
        --product "trainer=gpu aug=invfgsm" --product "trainer=gpu aug=invfgsm aug.mode=free" ;;
    e2e)
      [ $DRY = 0 ] || continue
      [ -f data/kvasir/splits.json ] || { echo "e2e: no data/kvasir/splits.json, skipped" | tee -a "$OUT/benchmarks.txt"; continue; }
      echo "== whole runs: experiment=kvasir trainer=gpu, 5 epochs ($(( $(date +%s) - T0 )) s)" | tee -a "$OUT/benchmarks.txt"
      for run in "none aug=none" "none_on_device aug=none dataset.on_device=true" \
          "invfgsm_free aug=invfgsm aug.mode=free" \
          "invfgsm_free_on_device aug=invfgsm aug.mode=free dataset.on_device=true" "invfgsm aug=invfgsm"; do
        set -- $run; name=$1; shift; dir="$OUT/e2e/$name"
        python3 src/train.py experiment=kvasir trainer=gpu trainer.max_epochs=5 trainer.enable_progress_bar=false \
          robustness.enabled=false test=false validate_before_training=false hydra.run.dir="$dir" "$@" \
          > "$OUT/e2e_$name.log" 2>&1
        python3 -c "import json,sys; m=json.load(open(sys.argv[1])); print(f'{sys.argv[2]:>22}: {m[\"wall_time_s\"]:6.1f} s')" \
          "$dir/metrics.json" "$name" | tee -a "$OUT/benchmarks.txt"
      done ;;
    sweep)
      [ $DRY = 0 ] || continue
      echo "== paper-sized sweep, 16 jobs at once ($(( $(date +%s) - T0 )) s)" | tee -a "$OUT/benchmarks.txt"
      SWEEP_ROOT=${SWEEP_ROOT:-$OUT/paper_sweep}
      nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits -l 1 > "$OUT/gpu_util_paper_sweep.txt" &
      SMI=$!
      start=$(date +%s)
      EXPERIMENT=paper DATASETS="synthetic_colon synthetic_lumbar" SEEDS=0 JOBS=16 ROOT="$SWEEP_ROOT" \
        DEADLINE=${SWEEP_DEADLINE:-86400} METHODS="gan fgsm invfgsm flip rotate crop jitter none" \
        bash scripts/sweep_one_gpu.sh | tail -3 | tee -a "$OUT/benchmarks.txt"
      echo "paper-sized sweep wall time: $(( $(date +%s) - start )) s" | tee -a "$OUT/benchmarks.txt"
      kill $SMI
      awk -F', ' '{u += $1; m = ($2 > m ? $2 : m); n++} END {if (n) printf "GPU utilisation over the sweep: mean %.0f %% of %d one-second samples; memory used at most %d MiB\n", u / n, n, m}' \
        "$OUT/gpu_util_paper_sweep.txt" | tee -a "$OUT/benchmarks.txt"
      sort "$SWEEP_ROOT/_logs/jobs.txt" | tee -a "$OUT/benchmarks.txt"
      (cd "$SWEEP_ROOT" && tar czf "$OUT/paper_sweep.tgz" _logs $(ls -d */metrics.json 2>/dev/null)) ;;
  esac
done
[ $DRY = 1 ] || echo "done in $(( $(date +%s) - T0 )) s; outputs in $OUT" | tee -a "$OUT/benchmarks.txt"
