#!/usr/bin/env bash
# Run once on every worker of a TPU VM pod:
#   gcloud compute tpus tpu-vm ssh NAME --zone=ZONE --worker=all --command="bash -s" < launch/setup_tpu_vm.sh
# Copies nothing: clone or rsync the repository to ~/aoarm first.
set -euo pipefail
cd ~/aoarm
python3 -m pip install -q -r requirements.txt
python3 -m pip install -q "jax[tpu]>=0.10.2,<0.12" -f https://storage.googleapis.com/jax-releases/libtpu_releases.html
python3 -c "import jax; print(jax.process_index(), jax.local_device_count(), jax.device_count())"
