#!/usr/bin/env bash
# Runs a command on N ranks of this machine: mpirun oversubscribed (2 cores here), allowed as
# root (CI runs as root), each rank on one OpenMP thread.
# Usage: tests/dist/mpirun.sh N COMMAND [ARGS...]
set -euo pipefail
np="$1"
shift
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
exec mpirun --oversubscribe --bind-to none -np "$np" -x OMP_NUM_THREADS "$@"
