#!/usr/bin/env bash
# The prepared GPU check of issue 14: one command on a machine with one CUDA card (H200 class: under 8 minutes,
# no network). Random-weight Llama 1B and 7B shapes; eval engine fast vs plain vs batched transformers in bf16 and
# fp32; then the training section when bench/gpu_check_train.py exists. Without CUDA it runs the tiny shape on CPU.
#   bash bench/gpu_check.sh [--section eval|train|all] [--json gpu_check.json]
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PYTHON="${PYTHON:-.venv/bin/python}"
exec "$PYTHON" bench/gpu_check.py "$@"
