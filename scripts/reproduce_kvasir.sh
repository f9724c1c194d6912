#!/bin/bash
# One command for docs/results/kvasir-seg.md: prepare Kvasir-SEG (once), train every job of the
# experiment on one GPU (scripts/sweep_one_gpu.sh: 9 methods + 4 variants x 3 seeds = 39 jobs),
# copy each job's small result files next to the page, and regenerate the page with report.py.
#
#   bash scripts/reproduce_kvasir.sh                       # Kvasir-SEG from ../shared/datasets/kvasir-seg
#   KVASIR_SRC=~/Downloads/kvasir-seg.zip bash scripts/reproduce_kvasir.sh
#
# env: KVASIR_SRC (the download, folder or zip), DATA (prepared folder, default data/kvasir),
#      ROOT (job folders, default logs/kvasir/sweep), DOCS (default docs/results), and everything
#      scripts/sweep_one_gpu.sh reads (JOBS, SEEDS, METHODS, TRAINER, EXTRA, DEADLINE, USE_MPS).
# Rerunning it resumes: completed jobs are skipped, killed ones continue from their last.ckpt.
set -eu
cd "$(dirname "$0")/.."
KVASIR_SRC=${KVASIR_SRC:-../shared/datasets/kvasir-seg}
DATA=${DATA:-data/kvasir}
export ROOT=${ROOT:-logs/kvasir/sweep}
DOCS=${DOCS:-docs/results}
export EXPERIMENT=kvasir
export METHODS=${METHODS:-"gan fgsm invfgsm flip rotate crop jitter same_steps none \
pgd+aug.steps=3 invpgd+aug.steps=3 invfgsm+aug.labels=pred invfgsm+aug.mode=free"}
[ "$DATA" != data/kvasir ] && export EXTRA="dataset.root=$(realpath "$DATA") ${EXTRA:-}"

if [ ! -f "$DATA/splits.json" ]; then  # the seeded 800 / 100 / 100 split, written once
  python3 src/prepare_data.py polyp --src "$KVASIR_SRC" --out "$DATA" --split 800 100 100 --seed 0
fi
bash scripts/sweep_one_gpu.sh

# publish: the small files of every job (no checkpoints), then the page from them
runs="$DOCS/kvasir-seg/runs"
mkdir -p "$runs"
for job in "$ROOT"/*_seed*/; do
  name=$(basename "$job")
  [ -f "$job/metrics.json" ] || continue
  mkdir -p "$runs/$name/.hydra"
  cp "$job"/metrics.json "$job"/config_resolved.yaml "$runs/$name/"
  [ -f "$job/robustness.json" ] && cp "$job/robustness.json" "$runs/$name/"
  cp "$job/.hydra/overrides.yaml" "$runs/$name/.hydra/"
  case $name in none_seed0|fgsm_seed0|invfgsm_seed0)  # the Fig. 3-4 grids shown on the page
    mkdir -p "$runs/$name/figures" && cp "$job/figures/samples.png" "$runs/$name/figures/" ;;
  esac
done
cp "$DATA/splits.json" "$DOCS/kvasir-seg/splits.json"
pool="$ROOT/invfgsm_seed0/figures/adv_epoch010.png"  # the training-pool grid the header shows
[ -f "$pool" ] && cp "$pool" "$DOCS/kvasir-seg/adv_invfgsm_seed0_epoch010.png"
header=()  # hand-written setup and conclusions, kept across regenerations
[ -f "$DOCS/kvasir-seg/header.md" ] && header=(--header "$DOCS/kvasir-seg/header.md")
python3 src/report.py "$runs" --out "$DOCS" --name kvasir-seg "${header[@]}" \
  --title "Kvasir-SEG: the paper's Tables 1-3 on real colonoscopy data" \
  --figures none,fgsm,invfgsm --compare invfgsm,fgsm
