#!/usr/bin/env bash
# depth_ros set-up and entry point for a machine with Python 3.11 and no (or a sourced) ROS 2.
#
#   ./bootstrap.sh demo        the main job on the embedded default (synthetic bag -> ... -> metrics)
#   ./bootstrap.sh test        the whole test suite
#   ./bootstrap.sh shell       a shell with the virtualenv active
#   ./bootstrap.sh <cmd...>    any command inside the virtualenv (e.g. depth-ros synth -o s.mcap)
#
# The virtualenv lives in $DEPTH_ROS_VENV (default: .venv next to this file). It is (re)built
# when requirements*.txt change. The ROS 2 wheels are installed only when `rclpy` is not
# already importable from a sourced ROS 2 install.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv=${DEPTH_ROS_VENV:-$here/.venv}
py=${PYTHON:-python3}

die() { echo "bootstrap: $*" >&2; exit 1; }

"$py" -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 10) else 1)' \
  || die "Python >= 3.10 is needed ($py is $("$py" -V 2>&1))"

# Called from inside this virtualenv (activated, or ./bootstrap.sh shell), python3 is the
# virtualenv's own, whose rclpy is the pip wheels': look at its base interpreter instead.
if [ -d "$venv" ] && [ "$("$py" -c 'import sys; print(sys.prefix)' 2>/dev/null)" -ef "$venv" ]; then
  py=$("$py" -c 'import sys; print(getattr(sys, "_base_executable", "") or sys.executable)')
fi

system_rclpy=0
if "$py" -c 'import rclpy' >/dev/null 2>&1; then system_rclpy=1; fi

stamp_inputs() {
  cat "$here/requirements.txt"
  [ "$system_rclpy" = 1 ] && echo "system-rclpy" || cat "$here/requirements-ros.txt"
  cat "$here/setup.py" "$here"/msg/*.msg "$here/CMakeLists.txt" 2>/dev/null || true
}
want=$(stamp_inputs | sha256sum | cut -d' ' -f1)
have=$(cat "$venv/.depth_ros_stamp" 2>/dev/null || true)

if [ "$want" != "$have" ]; then
  echo "bootstrap: setting up $venv (once; ~1-2 min)" >&2
  if [ ! -x "$venv/bin/python" ]; then
    if [ "$system_rclpy" = 1 ]; then
      "$py" -m venv --system-site-packages "$venv" || die "could not create a virtualenv (apt install python3-venv?)"
    else
      "$py" -m venv "$venv" || die "could not create a virtualenv (apt install python3-venv?)"
    fi
  fi
  pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
  "${pip[@]}" install -r "$here/requirements.txt" || die "pip install -r requirements.txt failed"
  if [ "$system_rclpy" = 0 ]; then
    "${pip[@]}" install -r "$here/requirements-ros.txt" || die "pip install -r requirements-ros.txt failed"
  fi
  "${pip[@]}" install --no-deps --no-build-isolation -e "$here" || die "pip install -e . failed"
  if [ -x "$here/msg/build_into_venv.sh" ] && [ "$system_rclpy" = 0 ]; then
    "$here/msg/build_into_venv.sh" "$venv" || die "building the depth_ros messages failed (needs cmake and a C compiler)"
  fi
  echo "$want" > "$venv/.depth_ros_stamp"
fi

# shellcheck disable=SC1091
source "$venv/bin/activate"
export ROS_LOG_DIR=${ROS_LOG_DIR:-$venv/ros_log}
# Images and clouds over Fast DDS: see README "Transport". A transport set by the caller wins.
if [ -z "${FASTDDS_DEFAULT_PROFILES_FILE:-}" ] && [ -z "${FASTDDS_BUILTIN_TRANSPORTS:-}" ]; then
  export FASTDDS_DEFAULT_PROFILES_FILE="$here/config/fastdds_local.xml"
fi

cmd=${1:-demo}
case "$cmd" in
  demo) shift || true; exec depth-ros demo "$@" ;;
  test) shift || true; cd "$here"; exec python -m pytest test "$@" ;;
  shell) exec "${SHELL:-bash}" -i ;;
  *) exec "$@" ;;
esac
