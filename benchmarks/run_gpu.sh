#!/bin/bash
# The GPU rows of README "Performance" in one go (about 6-8 minutes on one H100 / H200):
#   bash benchmarks/run_gpu.sh [out_dir]          (default logs/benchmarks/<time>)
# Prints and saves each benchmark's output; with the prepared Kvasir split in data/kvasir
# (scripts/reproduce_kvasir.sh prepares it) also times whole training runs with the data kept on
# the GPU (dataset.on_device=true) against the DataLoader, and free-mode InvFGSM against none.
# One device call may run 10 minutes: split the work over two calls with BENCH=0 / E2E=0.
# env: BENCH=0 skips the benchmark scripts; E2E=0 skips the whole Kvasir runs;
#      COMPILE=0 skips the torch.compile rows (their first steps compile for a minute or more);
#      ROWS="attack train costs overhead overhead_on_device profile sync sync_product compile" (the
#      default: all) picks benchmark rows;
#      PAPER_SWEEP=1 adds the paper-sized sweep (2 stand-in sets of 1285 / 370 synthetic images at
#      128², 8 methods, 30 epochs, one seed: 16 jobs), its wall time (issue goal: <= 10 min, H100)
#      and the GPU's utilisation sampled each second; SWEEP_ROOT (default $OUT/paper_sweep) holds
#      its run folders, SWEEP_DEADLINE (s) stops it early (rerun to resume); its metrics.json
#      files and job logs are packed into $OUT/paper_sweep.tgz.
set -u
OUT=${1:-logs/benchmarks/$(date +%Y-%m-%d_%H-%M-%S)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)  # absolute: the paper sweep packs its results from inside its own folder
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled
NOISE='warn|tip:|available:|LOCAL_RANK|stopped:|Using bfloat16|set_float32|deprecated|num_workers|Skipping val|litlogger'
T0=$(date +%s)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt"
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$OUT/device.txt"

ROWS=" ${ROWS:-attack train costs overhead overhead_on_device profile sync sync_product compile} "
[ "${COMPILE:-1}" = 1 ] || ROWS=${ROWS// compile / }
bench() {  # bench <row> <seconds> <script> <args...>: one benchmark row, its output kept
  local row=$1 limit=$2; shift 2
  [[ $ROWS == *" $row "* ]] || return 0
  echo "== python3 benchmarks/$* ($(( $(date +%s) - T0 )) s)" | tee -a "$OUT/benchmarks.txt"
  timeout "$limit" python3 benchmarks/"$@" 2>&1 | grep -v -i -E "$NOISE" | tee -a "$OUT/benchmarks.txt"
}
GPU="--device cuda --size 128 --batch 16 --bf16 --channels-last"
if [ "${BENCH:-1}" = 1 ]; then
bench attack 90 attack_throughput.py --device cuda --batch 16 --attack-batch 256 --size 128 --bf16 --channels-last --repeats 5
bench train 120 train_throughput.py $GPU --steps 300 --repeats 3
# 5 repeats: steady epochs of `none` spread 0.92-1.40 s over 3 on an H100
# free mode's parts (plain step, + input gradient, + hooks and publish) on a loop without Trainer
# or DataLoader, for NCHW / channels_last x cudnn.benchmark off / on: little noise
bench costs 150 free_mode_costs.py --device cuda --num-images 512 --size 128 --batch 16 --bf16 --grid --repeats 5
bench overhead 240 epoch_overhead.py $GPU --num-images 512 --attack-batch 256 --epochs 4 --repeats 5 --input-grad
bench overhead_on_device 150 epoch_overhead.py $GPU --num-images 512 --attack-batch 256 --epochs 4 --repeats 3 --on-device
bench profile 150 profile_epoch.py $GPU --num-images 128 --attack-batch 256 --top 8  # 512 did not end in 100 s (H100)
bench sync 90 sync_count.py $GPU --num-images 256 --attack-batch 256
bench sync_product 240 sync_count.py --device cuda --product "trainer=gpu aug=none" --product "trainer=gpu aug=invfgsm" \
  --product "trainer=gpu aug=invfgsm aug.mode=free"
bench compile 300 train_throughput.py $GPU --steps 300 --repeats 1 --compile
fi

if [ "${E2E:-1}" = 1 ] && [ -f data/kvasir/splits.json ]; then
  # whole runs, 5 epochs of Kvasir at 128² (800 training images), in-process seconds of train()
  e2e() {  # e2e <name> <overrides...>
    local name=$1; shift
    local dir="$OUT/e2e/$name"
    python3 src/train.py experiment=kvasir trainer=gpu trainer.max_epochs=5 trainer.enable_progress_bar=false \
      robustness.enabled=false test=false validate_before_training=false hydra.run.dir="$dir" "$@" \
      > "$OUT/e2e_$name.log" 2>&1
    python3 -c "import json,sys; m=json.load(open(sys.argv[1])); print(f'{sys.argv[2]:>22}: {m[\"wall_time_s\"]:6.1f} s')" \
      "$dir/metrics.json" "$name" | tee -a "$OUT/benchmarks.txt"
  }
  echo "== whole runs: experiment=kvasir trainer=gpu, 5 epochs ($(( $(date +%s) - T0 )) s)" | tee -a "$OUT/benchmarks.txt"
  e2e none aug=none
  e2e none_on_device aug=none dataset.on_device=true
  e2e invfgsm_free aug=invfgsm aug.mode=free
  e2e invfgsm_free_on_device aug=invfgsm aug.mode=free dataset.on_device=true
  e2e invfgsm aug=invfgsm
fi
if [ "${PAPER_SWEEP:-0}" = 1 ]; then
  echo "== paper-sized sweep, 16 jobs at once ($(( $(date +%s) - T0 )) s)" | tee -a "$OUT/benchmarks.txt"
  SWEEP_ROOT=${SWEEP_ROOT:-$OUT/paper_sweep}
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits -l 1 > "$OUT/gpu_util_paper_sweep.txt" &
  SMI=$!
  start=$(date +%s)
  EXPERIMENT=paper DATASETS="synthetic_colon synthetic_lumbar" SEEDS=0 JOBS=16 ROOT="$SWEEP_ROOT" \
    DEADLINE=${SWEEP_DEADLINE:-86400} METHODS="${SWEEP_METHODS:-gan fgsm invfgsm flip rotate crop jitter none}" \
    bash scripts/sweep_one_gpu.sh | tail -3 | tee -a "$OUT/benchmarks.txt"
  echo "paper-sized sweep wall time: $(( $(date +%s) - start )) s" | tee -a "$OUT/benchmarks.txt"
  kill $SMI
  awk -F', ' '{u += $1; m = ($2 > m ? $2 : m); n++} END {if (n) printf "GPU utilisation over the sweep: mean %.0f %% of %d one-second samples; memory used at most %d MiB\n", u / n, n, m}' \
    "$OUT/gpu_util_paper_sweep.txt" | tee -a "$OUT/benchmarks.txt"
  sort "$SWEEP_ROOT/_logs/jobs.txt" | tee -a "$OUT/benchmarks.txt"
  (cd "$SWEEP_ROOT" && tar czf "$OUT/paper_sweep.tgz" _logs $(ls -d */metrics.json 2>/dev/null))
fi
echo "done in $(( $(date +%s) - T0 )) s; outputs in $OUT" | tee -a "$OUT/benchmarks.txt"
