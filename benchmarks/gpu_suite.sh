#!/usr/bin/env bash
# All GPU measurements in one go, for a machine with an NVIDIA GPU, JAX and PyTorch (no
# TensorFlow needed).  Usage: bash benchmarks/gpu_suite.sh [output-folder [section ...]]
# Sections: throughput (default: all three), augmentation, pipeline.
# Writes log.txt, throughput_jax.json, throughput_torch.json and gpu_utilisation.csv there.
set -uo pipefail
out=${1:-build/benchmarks/gpu}
shift || true
sections=${*:-throughput augmentation pipeline}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  KERAS_BACKEND=jax python3 -c "import jax, torch, keras; print('jax', jax.__version__, 'torch', torch.__version__, 'keras', keras.__version__)"
  if [[ " $sections " == *" throughput "* ]]; then
    echo "== Keras on JAX beside a plain PyTorch loop"
    KERAS_BACKEND=jax python3 benchmarks/gpu_throughput.py --models cnn vgg16 resnet50 --json "$out/throughput_jax.json"
    echo "== Keras on PyTorch"
    KERAS_BACKEND=torch python3 benchmarks/gpu_throughput.py --models cnn vgg16 resnet50 --no-reference --json "$out/throughput_torch.json"
  fi
  if [[ " $sections " == *" augmentation "* ]]; then
    echo "== What on-device augmentation costs (Keras on JAX)"
    KERAS_BACKEND=jax python3 benchmarks/augmentation_cost.py --size 224 --batch 64 --steps 32
  fi
  if [[ " $sections " == *" pipeline "* ]]; then
    echo "== Input pipeline: the cache against in-memory tensors, ab-initio CNN at 224 px (GPU utilisation every 0.5 s)"
    nvidia-smi --query-gpu=timestamp,utilization.gpu --format=csv,noheader -lms 500 > "$out/gpu_utilisation.csv" &
    sampler=$!
    KERAS_BACKEND=jax python3 benchmarks/training_throughput.py --model cnn --sizes 224 --batch-size 64 --scale 0.1 --images 4096 --epochs 3 --no-augment
    kill $sampler
  fi
} 2>&1 | tee "$out/log.txt"
