#!/usr/bin/env bash
# Build depth_ros' own messages (msg/*.msg) with rosidl into a virtualenv holding the pip
# ROS 2 wheels, so that `from depth_ros.msg import DepthInfo` works with no further set-up.
#
#   msg/build_into_venv.sh VENV
#
# Idempotent and quiet on success; on failure prints the build log's tail and exits non-zero.
# Needs cmake (>= 3.16) and a C/C++ compiler.
#
# What it does (see ENVIRONMENT.md, "Custom .msg packages"):
#  1. The wheels' exported CMake files name the include dirs of the machine that built them
#     (/opt/python/cp311-cp311/...); they are rewritten to this venv's Python and numpy
#     include dirs (only those paths change; rerunning is a no-op).
#  2. cmake -DCMAKE_INSTALL_PREFIX=VENV -DDEPTH_ROS_MESSAGES_ONLY=ON with AMENT_PREFIX_PATH=VENV:
#     C type support libraries land in VENV/lib (on the wheels' LD_LIBRARY_PATH), the ament
#     index and .msg files in VENV/share/depth_ros.
#  3. The generated Python package goes to VENV/lib/depth_ros_msgs/depth_ros, NOT into
#     site-packages: a `depth_ros` directory in site-packages would shadow an editable install
#     of the runtime (setuptools' editable finder runs after the path finder, so even a
#     directory without __init__.py wins as a namespace package). Instead a
#     site-packages/depth_ros.pkg file lists that directory, and depth_ros/__init__.py's
#     pkgutil.extend_path adds it to depth_ros.__path__.
set -euo pipefail

die() { echo "build_into_venv: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: $0 VENV"
venv=$(cd "$1" 2>/dev/null && pwd) || die "no such directory: $1"
py="$venv/bin/python"
[ -x "$py" ] || die "$venv is not a virtualenv (no bin/python)"
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
command -v cmake >/dev/null || die "cmake not found (apt install cmake)"
command -v cc >/dev/null || command -v gcc >/dev/null || die "no C compiler found (apt install build-essential)"
[ -f "$venv/share/rosidl_default_generators/cmake/rosidl_default_generators-config.cmake" ] \
  || [ -d "$venv/share/rosidl_default_generators" ] \
  || die "$venv has no rosidl_default_generators (pip install -r requirements-ros.txt)"

# Paths from the interpreter itself; the bootstrapper's re-exec is harmless here.
read -r py_include numpy_include purelib < <("$py" - <<'EOF'
import sysconfig
import numpy
print(sysconfig.get_paths()["include"], numpy.get_include(), sysconfig.get_paths()["purelib"])
EOF
) || die "could not query $py for its include dirs (is numpy installed?)"
[ -f "$py_include/Python.h" ] || die "Python headers not found at $py_include (apt install python3-dev)"

# 1. Rewrite the wheels' foreign include dirs (only files that still name them).
wheel_py_include=/opt/python/cp311-cp311/include/python3.11
wheel_numpy_include=/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include
{ grep -rlF --include='*.cmake' "/opt/python/" "$venv/share" 2>/dev/null || true; } | while read -r f; do
  sed -i -e "s#$wheel_numpy_include#$numpy_include#g" -e "s#$wheel_py_include#$py_include#g" "$f"
done

# 2. + 3. Build and install.
msg_python_dir="$venv/lib/depth_ros_msgs"
build="$venv/build/depth_ros_msgs"
log="$build/build.log"
# A cache from another checkout (moved or different repo) would be refused by cmake.
if [ -f "$build/CMakeCache.txt" ] && ! grep -qxF "CMAKE_HOME_DIRECTORY:INTERNAL=$src" "$build/CMakeCache.txt"; then
  rm -rf "$build"
fi
mkdir -p "$build"
export AMENT_PREFIX_PATH="$venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export PATH="$venv/bin:$PATH"
if ! {
  cmake -S "$src" -B "$build" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$venv" \
    -DDEPTH_ROS_MESSAGES_ONLY=ON \
    -DPYTHON_INSTALL_DIR="lib/depth_ros_msgs" \
    -DPython3_EXECUTABLE="$py" \
    -DBUILD_TESTING=OFF &&
  cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" &&
  cmake --install "$build"
} >"$log" 2>&1; then
  tail -n 40 "$log" >&2
  die "building the messages failed (full log: $log)"
fi

echo "$msg_python_dir/depth_ros" > "$purelib/depth_ros.pkg"

# The result must import from a neutral directory (not the source tree).
(cd / && "$py" -c 'from depth_ros.msg import DepthInfo; DepthInfo(model="x")') >>"$log" 2>&1 \
  || { tail -n 20 "$log" >&2; die "built, but 'from depth_ros.msg import DepthInfo' fails (log: $log)"; }
