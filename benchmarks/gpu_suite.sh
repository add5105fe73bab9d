#!/usr/bin/env bash
# The trainer's GPU checks in one self-contained run (about 12 minutes on an H100 with --full,
# 7 without; every part has its own time limit, so one slow or failing part never loses the
# others).
#
#   bash benchmarks/gpu_suite.sh [--full]      # from the repository root; results in $OUT if set
#
# 1. environment (nvidia-smi, torch, CUDA);
# 2. benchmarks/bench_train.py --quick: the training step (eager / CUDA graph / compile+CUDA
#    graph) at batch 512 and 4096, the bare forward+backward and their ratio, for CustomViT and
#    the CNN;
# 3. benchmarks/bench_latency.py: batch-1 latency (the study's protocol) of the bare model and of
#    Predictor.predict on one patch;
# 4. benchmarks/crc_recipe.py (when the CRC data is there: $CRC_DIR or ../shared/data/crc):
#    CustomViT with the study's recipe on the real CRC split, evaluated, blur table;
# 5. with --full, benchmarks/bench_recipe_time.py: the whole 16-class FlagLimit-4096 80-epoch
#    recipe timed (goal: under 5 minutes);
# 6. benchmarks/bench_augment.py: the augmentation benchmark.
#
# Files written to $OUT (8): env.txt, bench_train_cuda.{md,json}, bench_latency.md,
# crc_recipe.{md,json}, bench_recipe_time.json, bench_augment.log. Logs go to $LOGS.
# SUITE_DEVICE=cpu runs the same steps on the CPU (to try the script without a GPU).
set -u
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-/tmp/cellviewer-gpu-suite}"
LOGS="${LOGS:-/tmp/cellviewer-gpu-suite-logs}"
mkdir -p "$OUT_DIR" "$LOGS"
PY="${PYTHON:-python3}"
DEV="${SUITE_DEVICE:-cuda}"
CRC="${CRC_DIR:-../shared/data/crc}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-/tmp/cellviewer-inductor}"
SUITE_START=$(date +%s)
elapsed() { echo $(( $(date +%s) - SUITE_START )); }

echo "== 1. environment"
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 \
    || echo "nvidia-smi failed"
  "$PY" -c "import platform, torch; print('python', platform.python_version(), 'torch',
torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0)
if torch.cuda.is_available() else 'NO CUDA')" 2>&1
} | tee "$OUT_DIR/env.txt"

echo "== 2. training step ($(elapsed) s)"
timeout "${TRAIN_T:-170}" "$PY" benchmarks/bench_train.py --device "$DEV" --quick \
  --budget "${TRAIN_B:-140}" --out "$OUT_DIR" > "$LOGS/bench_train.log" 2>&1
echo "bench_train exit $? ($(elapsed) s)"
cat "$OUT_DIR"/bench_train_*.md 2>/dev/null | sed -n '1,40p'

echo "== 3. batch-1 latency ($(elapsed) s)"
timeout "${LAT_T:-150}" "$PY" benchmarks/bench_latency.py --device "$DEV" --out "$LOGS" \
  > "$LOGS/bench_latency.log" 2>&1
echo "bench_latency exit $? ($(elapsed) s)"
cp "$LOGS/bench_latency.md" "$OUT_DIR/" 2>/dev/null && cat "$OUT_DIR/bench_latency.md"

echo "== 4. CustomViT on CRC ($(elapsed) s)"
if [ -f "$CRC/points.csv" ]; then
  timeout "${CRC_T:-200}" "$PY" benchmarks/crc_recipe.py --crc "$CRC" --work "$LOGS/crc" \
    --out "$OUT_DIR" --models custom_vit --device "$DEV" --budget "${CRC_B:-160}" \
    > "$LOGS/crc_recipe.log" 2>&1
  echo "crc_recipe exit $? ($(elapsed) s)"
  sed -n '1,45p' "$OUT_DIR/crc_recipe.md" 2>/dev/null
else
  echo "no CRC data at $CRC: skipped"
fi

if [ "${1:-}" = "--full" ]; then
  echo "== 5. the whole 16-class FlagLimit-4096 recipe, timed ($(elapsed) s)"
  timeout "${RECIPE_T:-360}" "$PY" benchmarks/bench_recipe_time.py --device "$DEV" \
    --budget "${RECIPE_B:-330}" --out "$OUT_DIR" ${RECIPE_ARGS:-} > "$LOGS/recipe_time.log" 2>&1
  echo "bench_recipe_time exit $? ($(elapsed) s)"
  cat "$OUT_DIR/bench_recipe_time.json" 2>/dev/null
fi

echo "== 6. augmentation benchmark ($(elapsed) s)"
timeout 60 "$PY" benchmarks/bench_augment.py --device "$DEV" --batch 512,4096 \
  ${AUGMENT_ARGS:-} > "$OUT_DIR/bench_augment.log" 2>&1
echo "bench_augment exit $? ($(elapsed) s)"
tail -n 25 "$OUT_DIR/bench_augment.log"
echo "== done ($(elapsed) s)"
