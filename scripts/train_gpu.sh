#!/usr/bin/env bash
# Fine-tune the bundled model on one GPU: three variants side by side on the same card (a 6.6M-param
# UNet leaves most of an H100/H200 idle, so they barely slow each other), then a quick x̂_0 PSNR
# check of each (no BM3D). Used with the `device` tool of this workplace, but it runs on any
# machine with a CUDA GPU, python3 with torch + accelerate, and the photos in data/train.
#
#   bash scripts/train_gpu.sh            # MINUTES=6 BATCH=256 by default; results under $OUT (or ./gpu_out)
#
# Each run writes a diffusers folder under $RUNS; OUT gets <run>.safetensors (the EMA weights, fp16; the
# config is the bundled model's), summary.txt, eval.txt and logs.tgz: 6 files.
set -uo pipefail
OUT=${OUT:-gpu_out}
MINUTES=${MINUTES:-6}
BATCH=${BATCH:-256}
RUNS=${RUNS:-/tmp/gpu_runs}
BACKSTOP=${BACKSTOP:-480}   # seconds; each trainer is stopped by then whatever happens
mkdir -p "$OUT" "$RUNS"
if [ -d .whl ]; then  # diffusers is not in the GPU image: install the carried wheels
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} || exit 1
fi
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee "$OUT/summary.txt"
python3 -c "import torch, diffusers, accelerate; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'diffusers', diffusers.__version__, 'accelerate', accelerate.__version__)" 2>&1 | tee -a "$OUT/summary.txt"

common=(--data data/train --init-from checkpoints/photo-unet --prediction v_prediction --loss-weight v
        --res 64 --batch "$BATCH" --warmup 200 --max-minutes "$MINUTES" --save-every-min 1.5 --no-progress)
declare -A extra=(
  [A]="--lr 3e-4 --ema-decay 0.999 --t-focus 0.5:450 --seed 6"
  [B]="--lr 3e-4 --ema-decay 0.999 --t-focus 0.5:450 --dihedral --seed 7"
  [C]="--lr 1.5e-4 --ema-decay 0.9995 --t-focus 0.5:450 --dihedral --seed 8"
)
for r in A B C; do
  # shellcheck disable=SC2086
  timeout "$BACKSTOP" python3 -m model.cli.train "${common[@]}" ${extra[$r]} --out "$RUNS/$r" >"$RUNS/$r.log" 2>&1 &
done
wait
for r in A B C; do
  echo "== $r: ${extra[$r]}"; tail -n 3 "$RUNS/$r.log"
  tail -n 2 "$RUNS/$r/train_state/loss.csv" 2>/dev/null
  cat "$RUNS/$r/train_state/last_save.json" 2>/dev/null
done | tee -a "$OUT/summary.txt"
for r in A B C; do cp "$RUNS/$r/diffusion_pytorch_model.safetensors" "$OUT/$r.safetensors" 2>/dev/null; done
for r in A B C; do
  if [ -f "$RUNS/$r/diffusion_pytorch_model.safetensors" ]; then
    CUDA_VISIBLE_DEVICES= python3 -m model.cli.evaluate "$RUNS/$r" --images data/eval --res 64 --seeds 4 --no-bm3d --threads 4 \
      >"$RUNS/$r.eval" 2>&1 &
  fi
done
wait
for r in A B C; do
  echo "== $r"; cat "$RUNS/$r.eval" 2>/dev/null
done | tee "$OUT/eval.txt"
tar czf "$OUT/logs.tgz" -C "$RUNS" A.log B.log C.log A/train_state/loss.csv B/train_state/loss.csv C/train_state/loss.csv 2>/dev/null
ls -la "$OUT"
