#!/usr/bin/env bash
# All GPU measurements in one go, for a machine with an NVIDIA GPU, JAX and PyTorch (TensorFlow
# only for the tensorflow section).  Usage: bash benchmarks/gpu_suite.sh [output-folder [section ...]]
# Sections: throughput augmentation pipeline (the default: these three), tensorflow.
#   throughput    Keras on JAX beside eager and compiled PyTorch loops, and Keras on PyTorch, at 224 and 320 px
#   augmentation  what Keras' augmentation layers and the one-warp RandomAffine cost, on JAX and on PyTorch
#   pipeline      images/s and GPU utilisation from the cache against batches already on the device,
#                 224 and 320 px, with and without augmentation, on JAX and on PyTorch
#   tensorflow    augmentation and pipeline on Keras' TensorFlow backend, where TensorFlow sees a GPU
# Writes log.txt and throughput_*.json, pipeline_*.json there.
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
    echo "== Keras on JAX beside plain PyTorch loops (eager and torch.compile)"
    KERAS_BACKEND=jax python3 benchmarks/gpu_throughput.py --models cnn vgg16 resnet50 --sizes 224 320 --augment --json "$out/throughput_jax.json"
    echo "== Keras on PyTorch"
    KERAS_BACKEND=torch python3 benchmarks/gpu_throughput.py --models cnn vgg16 resnet50 --sizes 224 320 --augment --no-reference --json "$out/throughput_torch.json"
  fi
  if [[ " $sections " == *" augmentation "* ]]; then
    for backend in jax torch; do
      echo "== What on-device augmentation costs (Keras on $backend)"
      KERAS_BACKEND=$backend python3 benchmarks/augmentation_cost.py --sizes 224 --batch 64 --steps 32
    done
  fi
  if [[ " $sections " == *" pipeline "* ]]; then
    for backend in jax torch; do
      echo "== Input pipeline: the cache against batches on the device, ab-initio CNN (Keras on $backend)"
      KERAS_BACKEND=$backend python3 benchmarks/gpu_pipeline.py --sizes 224 320 --json "$out/pipeline_$backend.json"
    done
  fi
  if [[ " $sections " == *" tensorflow "* ]]; then
    if KERAS_BACKEND=tensorflow python3 -c "import sys, tensorflow as tf; sys.exit(not tf.config.list_physical_devices('GPU'))"; then
      echo "== Keras on TensorFlow: augmentation and input pipeline"
      KERAS_BACKEND=tensorflow python3 benchmarks/augmentation_cost.py --sizes 224 --batch 64 --steps 32 --short
      KERAS_BACKEND=tensorflow python3 benchmarks/gpu_pipeline.py --sizes 224 320 --json "$out/pipeline_tensorflow.json"
    else
      echo "== Keras on TensorFlow: skipped, TensorFlow is not installed or sees no GPU"
    fi
  fi
} 2>&1 | tee "$out/log.txt"
