#!/usr/bin/env bash
# Submit a raytune-chat command to a running Ray cluster (token auth on), e.g.
#   jobs/submit.sh --address http://127.0.0.1:8265 -- run lora_finetune_single_device --config tiny/llama3_lora_cpu
# Same as `raytune-chat submit ...`; see jobs/README.md. Run it from the repository root: the
# current directory is uploaded as the job's working dir.
set -euo pipefail
PY="${PYTHON:-python3}"
if [[ -x .venv/bin/python && -z "${PYTHON:-}" ]]; then PY=.venv/bin/python; fi
exec "$PY" -m raytune_chat._jobs "$@"
