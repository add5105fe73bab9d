#!/usr/bin/env bash
# The trainer's GPU checks in one self-contained run (under 8 minutes on an H100/H200;
# every part has its own time limit, so one slow or failing part never loses the others).
#
#   bash benchmarks/gpu_suite.sh            # from the repository root; results in $OUT if set
#
# 1. environment (nvidia-smi, torch, CUDA);
# 2. benchmarks/bench_train.py --device cuda: the training step (eager / CUDA graph /
#    compile+CUDA graph) at batch 512 and 4096, the bare forward+backward and the ratio, batch-1
#    latency (eager, graphed) and large-batch throughput, for CustomViT and the CNN;
# 3. an end-to-end `python -m trainer train` of CustomViT on a synthetic colour-coded patch set
#    (the real loop on CUDA: fast-path choice, per-epoch speed, validation accuracy rising,
#    model files) and the Predictor's single-patch latency on the model it wrote;
# 4. benchmarks/bench_augment.py --device cuda (the data engineer's augmentation benchmark).
#
# Files written to $OUT (at most 8): env.txt, bench_train.log, bench_train_cuda.json,
# bench_train_cuda.md, e2e_train.json, e2e_train.log, bench_augment.log.
set -u
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-/tmp/cellviewer-gpu-suite}"
mkdir -p "$OUT_DIR"
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-/tmp/cellviewer-inductor}"
SUITE_START=$(date +%s)
elapsed() { echo $(( $(date +%s) - SUITE_START )); }

echo "== 1. environment"
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm \
    --format=csv 2>&1 || echo "nvidia-smi failed"
  "$PY" - <<'EOF' 2>&1
import platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda)
print("device", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "NO CUDA")
for mod in ("triton", "timm", "safetensors", "numpy", "PIL"):
    try:
        m = __import__(mod)
        print(mod, getattr(m, "__version__", "?"))
    except Exception as exc:
        print(mod, "missing:", exc)
EOF
} | tee "$OUT_DIR/env.txt"

echo "== 2. training-step and inference benchmark ($(elapsed) s)"
timeout 290 "$PY" benchmarks/bench_train.py --device cuda --budget 250 --out "$OUT_DIR" \
  > "$OUT_DIR/bench_train.log" 2>&1
echo "bench_train exit $? ($(elapsed) s)"
tail -n 5 "$OUT_DIR/bench_train.log"

echo "== 3. end-to-end train run on CUDA ($(elapsed) s)"
timeout 115 "$PY" - "$OUT_DIR" > "$OUT_DIR/e2e_train.log" 2>&1 <<'EOF'
import json, os, subprocess, sys, time
from pathlib import Path
import numpy as np
from trainer.data.patchset import PatchSet
from trainer.protocol import parse_line, read_events

out_dir = Path(sys.argv[1])
device = os.environ.get("SUITE_DEVICE", "cuda")  # cpu: to try this script without a GPU
n = int(os.environ.get("SUITE_E2E_N", "20000"))
model = os.environ.get("SUITE_E2E_MODEL", "custom_vit")
work = Path("/tmp/cellviewer-gpu-e2e")
import shutil
shutil.rmtree(work, ignore_errors=True)
summary = {"ok": False}

def save():
    (out_dir / "e2e_train.json").write_text(json.dumps(summary, indent=2))

# 20,000 patches, 4 classes told apart by a dominant colour channel plus noise
rng = np.random.default_rng(0)
k = 4
labels = rng.integers(0, k, n).astype(np.int16)
base = rng.integers(30, 90, size=(n, 40, 40, 3)).astype(np.int16)
base[labels == 0, :, :, 0] += 120
base[labels == 1, :, :, 1] += 120
base[labels == 2, :, :, 2] += 120
base[labels == 3] += 60
patches = np.clip(base + rng.integers(0, 40, size=base.shape), 0, 255).astype(np.uint8)
ps = PatchSet(patches=patches, labels=labels, classes=["r", "g", "b", "grey"],
              cell_ids=[str(i) for i in range(n)], sources=["synthetic"] * n,
              xy=np.zeros((n, 2)), padded=np.zeros(n, bool))
ps.save(work / "synthetic.patches")
cmd = [sys.executable, "-m", "trainer", "train", "--patchset", str(work / "synthetic.patches"),
       "--out", str(work / "run"), "--model", model, "--epochs", "3",
       "--batch-size", "512", "--device", device, "--heartbeat", "2"]
summary["cmd"] = " ".join(cmd)
t0 = time.time()
events = []
try:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    summary["returncode"] = proc.returncode
    summary["stderr_tail"] = proc.stderr[-3000:]
    events = [e for e in map(parse_line, proc.stdout.splitlines()) if e is not None]
except subprocess.TimeoutExpired as exc:
    summary["returncode"] = "timeout"
    summary["stderr_tail"] = (exc.stderr or b"")[-3000:].decode("utf-8", "replace") \
        if isinstance(exc.stderr, bytes) else str(exc.stderr)[-3000:]
summary["wall_s"] = round(time.time() - t0, 1)
events_path = work / "run" / "events.jsonl"
if not events and events_path.exists():  # killed by the timeout: what it logged so far
    events = read_events(events_path)
for ev in events:
    kind = ev["event"]
    if kind == "started":
        summary["started"] = {k: ev.get(k) for k in (
            "device_name", "fast_path", "amp", "params", "n_train", "n_train_augmented",
            "n_val", "batch_size", "steps_per_epoch", "epochs")}
    elif kind == "epoch":
        summary.setdefault("epochs", []).append({k: ev.get(k) for k in (
            "epoch", "train_loss", "train_acc", "val_acc", "macro_f1", "samples_per_s",
            "epoch_s", "lr")})
    elif kind in ("notice", "error", "stopped", "finished"):
        summary.setdefault(kind, []).append(ev)
save()
best = work / "run" / "best.cvmodel"
if best.exists():
    import torch
    from trainer.predict import Predictor
    p = Predictor.load(best, device=device)
    one = patches[:1]
    for _ in range(20):
        p.predict(one)
    ts = []
    for _ in range(400):
        t = time.perf_counter(); p.predict(one); ts.append(time.perf_counter() - t)
    summary["predictor_single_patch_ms"] = {"mean": 1e3 * float(np.mean(ts)),
                                            "median": 1e3 * float(np.median(ts)),
                                            "graphed": p._single is not None}
    probs = p.predict(patches[:4096], batch_size=4096).probs
    summary["predictor_accuracy_4096"] = float((probs.argmax(1) == labels[:4096]).mean())
    p1 = np.stack([p.predict(patches[i:i + 1]).probs[0] for i in range(8)])
    summary["graphed_vs_batched_max_abs_diff"] = float(np.abs(p1 - probs[:8]).max())
summary["ok"] = bool(summary.get("finished")) and not summary.get("error")
save()
print(json.dumps(summary, indent=2))
EOF
echo "e2e exit $? ($(elapsed) s)"
tail -n 40 "$OUT_DIR/e2e_train.log"

echo "== 4. augmentation benchmark ($(elapsed) s)"
if [ -f benchmarks/bench_augment.py ]; then
  timeout 60 "$PY" benchmarks/bench_augment.py --device cuda --batch 512,4096 \
    > "$OUT_DIR/bench_augment.log" 2>&1
  echo "bench_augment exit $? ($(elapsed) s)"
  tail -n 25 "$OUT_DIR/bench_augment.log"
else
  echo "benchmarks/bench_augment.py not found: skipped"
fi

echo "== results ($(elapsed) s)"
cat "$OUT_DIR/bench_train_cuda.md" 2>/dev/null || echo "no bench_train_cuda.md (see bench_train.log)"
