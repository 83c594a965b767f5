"""Register gemo_ros in the ament index of a prefix, the way colcon would install it.

    python scripts/register_ament.py PREFIX           # install (replaces an older copy)
    python scripts/register_ament.py PREFIX --check   # exit 1 and list what is out of step

``ros2 launch gemo_ros ...``, ``ros2 run gemo_ros ...`` and ``ros2 pkg prefix gemo_ros``
find a package through ``AMENT_PREFIX_PATH``: the prefix must hold the package marker,
``share/gemo_ros/`` (package.xml, launch/, config/) and the executables in
``lib/gemo_ros/``. An editable pip install writes none of these. This script reads them
from setup.py itself (``setup()`` is captured, not run), so what it installs is what
``colcon build`` installs: every ``data_files`` entry, copied as a real file (the launch
file search does not follow a symlinked directory), and one launcher per console script
(new entry points in setup.py appear without editing this script or scripts/setup.sh).
The launchers run this interpreter (``sys.executable``), the one scripts/setup.sh passes.
"""

import argparse
import os
import runpy
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def read_setup(root: Path = ROOT) -> dict:
    """Return the keyword arguments that setup.py passes to ``setup()``, without running it."""
    import setuptools

    captured = {}
    real_setup, cwd = setuptools.setup, os.getcwd()
    setuptools.setup = lambda **kwargs: captured.update(kwargs)
    try:
        os.chdir(root)  # setup.py globs its data files relative to the checkout
        runpy.run_path(str(root / "setup.py"))
    finally:
        setuptools.setup = real_setup
        os.chdir(cwd)
    if "name" not in captured:
        raise SystemExit(f"{root / 'setup.py'} did not call setup(name=...)")
    return captured


def console_scripts(kwargs: dict) -> dict:
    """Return {script name: "module:attr"} of the console_scripts entry points."""
    entries = kwargs.get("entry_points", {}).get("console_scripts", [])
    scripts = {}
    for entry in entries:
        name, _, target = entry.partition("=")
        target = target.split("[")[0].strip()  # drop extras: "mod:fn [extra]"
        if ":" not in target:
            raise SystemExit(f"setup.py: console script {entry!r} is not 'name = module:attr'")
        scripts[name.strip()] = target
    return scripts


def launcher(target: str, python: str) -> str:
    """Return the text of an executable that runs ``module:attr`` with ``python``."""
    module, attr = target.split(":")
    return (f"#!{python}\n"
            f"# Written by scripts/register_ament.py for the entry point {target}\n"
            "import importlib\n"
            "import sys\n\n"
            f"target = importlib.import_module({module!r})\n"
            f"for part in {attr!r}.split('.'):\n"
            "    target = getattr(target, part)\n"
            "sys.exit(target())\n")


def plan(root: Path = ROOT, python: str = sys.executable) -> tuple:
    """Return (package name, {path relative to the prefix: (bytes, executable)})."""
    kwargs = read_setup(root)
    name = kwargs["name"]
    files = {}
    for directory, sources in kwargs.get("data_files", []):
        for src in sources:
            files[f"{directory}/{os.path.basename(src)}"] = ((root / src).read_bytes(), False)
    for script, target in console_scripts(kwargs).items():
        files[f"lib/{name}/{script}"] = (launcher(target, python).encode(), True)
    marker = f"share/ament_index/resource_index/packages/{name}"
    if marker not in files:
        raise SystemExit(f"setup.py's data_files do not install the ament marker {marker}")
    return name, files


def owned(prefix: Path, name: str) -> set:
    """Return the files under ``prefix`` that belong to the package (relative paths)."""
    found = set()
    for sub in (f"share/{name}", f"lib/{name}"):
        base = prefix / sub
        if base.is_dir():
            found |= {p.relative_to(prefix).as_posix() for p in base.rglob("*")
                      if p.is_file() or p.is_symlink()}
    marker = f"share/ament_index/resource_index/packages/{name}"
    if (prefix / marker).exists():
        found.add(marker)
    return found


def differences(prefix: Path, name: str, files: dict) -> list:
    """Return one line per file of the prefix that is missing, stale or left over."""
    problems = []
    for rel, (data, executable) in sorted(files.items()):
        path = prefix / rel
        if path.is_symlink() or not path.is_file():
            problems.append(f"missing or not a real file: {path}")
        elif path.read_bytes() != data:
            problems.append(f"out of step with the checkout: {path}")
        elif executable and not os.access(path, os.X_OK):
            problems.append(f"not executable: {path}")
    problems += [f"left over: {prefix / rel}"
                 for rel in sorted(owned(prefix, name) - set(files))]
    return problems


def install(prefix: Path, name: str, files: dict) -> None:
    """Replace the package's files under ``prefix`` with ``files``."""
    for sub in (f"share/{name}", f"lib/{name}"):
        shutil.rmtree(prefix / sub, ignore_errors=True)
    for rel, (data, executable) in files.items():
        path = prefix / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or path.exists():
            path.unlink()
        path.write_bytes(data)
        path.chmod(0o755 if executable else 0o644)


def main(argv: list = None) -> int:
    """Install into (or check) the prefix given on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prefix", type=Path, help="install prefix on AMENT_PREFIX_PATH")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if the prefix is out of step")
    args = parser.parse_args(argv)
    name, files = plan()
    if args.check:
        problems = differences(args.prefix, name, files)
        for line in problems:
            print(line)
        return 1 if problems else 0
    install(args.prefix, name, files)
    return 0


if __name__ == "__main__":
    sys.exit(main())
