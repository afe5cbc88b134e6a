# Shared by scripts/*: prepare a machine to build and run the stack. Source it, then call prepare.
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OFFLINE_BASE=federation-base:bookworm
OFFICIAL_BASE=python:3.11-slim-bookworm

say() { echo "[$(basename "$0")] $*" >&2; }

# BASE_IMAGE: the caller's choice, else the official image when it can be had, else a local
# debootstrap base plus a wheelhouse (no registry here, so containers reach no index either).
choose_base_image() {
  if [ -n "${BASE_IMAGE:-}" ]; then return; fi
  if docker image inspect "$OFFICIAL_BASE" >/dev/null 2>&1 \
     || timeout 60 docker pull -q "$OFFICIAL_BASE" >/dev/null 2>&1; then
    export BASE_IMAGE=$OFFICIAL_BASE
    return
  fi
  say "no container registry answers: building the offline base image and the wheelhouse"
  "$repo/docker/build-offline-base" "$OFFLINE_BASE"
  # (a wheelhouse made before notebook.lock existed lacks Jupyter: fetch what is missing)
  ls "$repo"/wheelhouse/jupyterlab-*.whl >/dev/null 2>&1 || "$repo/scripts/wheelhouse"
  export BASE_IMAGE=$OFFLINE_BASE
}

prepare() {
  "$repo/scripts/ensure-docker"
  choose_base_image
  # Demo data: a local copy of the public Pima file, if this checkout sits beside one.
  if [ -z "${PIMA_DATA_DIR:-}" ] && [ -f "$repo/../shared/data/pima-indians-diabetes.csv" ]; then
    export PIMA_DATA_DIR=$(cd "$repo/../shared/data" && pwd)
  fi
  # The DS writes the results folder as uid 1000 (the image's user).
  local results=${RESULTS_HOST_DIR:-$repo/results}
  mkdir -p "$results"
  if [ "$(stat -c %u "$results")" != 1000 ]; then chmod a+rwx "$results"; fi
  say "base image $BASE_IMAGE; demo data ${PIMA_DATA_DIR:-downloaded by the owners}"
}
