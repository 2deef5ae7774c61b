# Shared helpers for the project's set-up scripts (sourced, not run).
# shellcheck shell=bash

log() { printf '[crack-car setup] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else log "need root for: $*"; return 1; fi
}

# ensure_debs PKG...: install the Debian packages that are missing (once).
ensure_debs() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# find_python_at_least VERSION: a CPython of that minor version or newer (python3.N, then
# python3), else one that uv provisions (python-build-standalone; uv from pip when missing).
find_python_at_least() {
  local want=$1 minor cand
  for minor in $(seq "${want#3.}" 14); do
    cand=$(find_python "3.$minor") && { echo "$cand"; return 0; }
  done
  if command -v python3 >/dev/null 2>&1 && python3 -c "import sys; sys.exit(sys.version_info < tuple(map(int, '$want'.split('.'))))"; then
    command -v python3; return 0
  fi
  local uv; uv=$(command -v uv || true)
  if [ -z "$uv" ] && command -v python3 >/dev/null 2>&1; then
    python3 -m pip install -q --user uv >/dev/null 2>&1 && uv=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts", "posix_user"))')/uv
  fi
  [ -n "$uv" ] && [ -x "$uv" ] || return 1
  log "no Python >= $want here: provisioning CPython $want with uv"
  "$uv" python install -q "$want" >&2 && "$uv" python find "$want"
}

# find_python VERSION: print the path of a CPython interpreter of that minor version.
find_python() {
  local v=$1 cand
  for cand in "python$v" ; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys' >/dev/null 2>&1; then
      command -v "$cand"; return 0
    fi
  done
  if command -v pyenv >/dev/null 2>&1; then
    cand=$(ls -d "$(pyenv root)"/versions/"$v".*/bin/python"$v" 2>/dev/null | sort -V | tail -n 1)
    [ -n "$cand" ] && { echo "$cand"; return 0; }
  fi
  return 1
}

# stamp_of FILE...: a hash of the inputs that decide what a venv holds.
stamp_of() { cat "$@" | sha256sum | cut -c1-16; }

# ensure_venv DIR PYTHON STAMP INSTALL_FN: (re)build DIR when STAMP changed.
ensure_venv() {
  local dir=$1 py=$2 stamp=$3 fn=$4
  if [ -f "$dir/.stamp" ] && [ "$(cat "$dir/.stamp")" = "$stamp" ] && [ -x "$dir/bin/python" ]; then
    return 0
  fi
  log "preparing $dir with $($py --version 2>&1)"
  [ -x "$dir/bin/python" ] || "$py" -m venv "$dir"
  "$dir/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$fn" "$dir"
  echo "$stamp" > "$dir/.stamp"
}
