#!/usr/bin/env bash
# One training run of the lite separator on a lent GPU, sized for the device tool: one command of
# at most 10 minutes, 64 MiB of working tree in, at most 8 files of 16 MiB back. The GPU machine has
# PyTorch, numpy, scipy and safetensors but no PyAV and no soundfile, and it reaches no network.
#
# Here, before the call (once per session; both paths are ignored by git):
#   python training/cache.py                      # if training/cache/musdb is not there yet
#   python training/pack.py pack --train-only     # training/cache/pack: 79 clips as Ogg Vorbis, 39 MB
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl soundfile cffi pycparser           # to decode the pack there
# The call (device tool):
#   run(command="bash training/device_run.sh", carry=["training/cache/pack", ".whl"], timeout_s=600)
# What comes back in $OUT: avg.pt (the mean of the last 8 checkpoints' weights), last/net.pt,
# last/adam1.pt, last/adam2.pt (the last state: --init-split continues it) and train.log. Then here
# (average.py of the one checkpoint scores it on the held-out clips, so the manifest carries scores):
#   python training/average.py avg.pt --out avg_scored.pt
#   python training/export.py avg_scored.pt --temperature 1.2 --out /tmp/wGPU
#   python training/evaluate.py --weights /tmp/wGPU/lite.safetensors --no-baseline
#
# Settings by environment variable: MINUTES (training time, default 7), BATCH (32 segments of 5 s),
# WORKERS (data-loader processes, 14: one remixed 5 s example costs about 0.07 s of CPU), LR (1e-4,
# cosine to a tenth), WARMUP (100 steps), DEVICE (cuda), SEED. A dry run on a CPU: DEVICE=cpu MINUTES=1 BATCH=2 WORKERS=2.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-7}
BATCH=${BATCH:-32}
WORKERS=${WORKERS:-14}
LR=${LR:-1e-4}
WARMUP=${WARMUP:-100}  # steps: the optimizer is new, its first steps would move every weight by the full rate
DEVICE=${DEVICE:-cuda}
SEED=${SEED:-2026}
OUTDIR=${OUT:-training/checkpoints/device-out}
CKPT=training/checkpoints/device
mkdir -p "$OUTDIR" "$CKPT"
PY=python3

if compgen -G ".whl/*.whl" >/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
$PY -c "import torch, soundfile; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
if [ ! -f training/cache/musdb/index.json ]; then
    $PY training/pack.py unpack
fi

# The shipped recipe (docs/models/lite.md) from the package weights with a new optimizer, without
# rendered clips (they are not in the pack) and without validation (no held-out clips travel;
# evaluate the average here).
$PY training/train.py --ckpt-dir "$CKPT" --device "$DEVICE" --workers "$WORKERS" --batch "$BATCH" --seconds 5 \
    --init-weights src/stemscribe/data/models/lite.safetensors --lr "$LR" --warmup "$WARMUP" --anneal --keep-all --ckpt-every 30 \
    --max-minutes "$MINUTES" --sdr-weight 0.1 --p-mono 0.05 --first-lr-scale 10 --level --p-reverb 0.3 \
    --p-rendered 0 --seed "$SEED" --split-out "$OUTDIR/last" 2>&1 | tee "$OUTDIR/train.log"
$PY training/average.py --ckpt-dir "$CKPT" --last 8 --out "$OUTDIR/avg.pt" --no-validate 2>&1 | tee -a "$OUTDIR/train.log"
ls -la "$OUTDIR" "$OUTDIR/last"
