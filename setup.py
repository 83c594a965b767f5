"""Install gemo_ros as an ament_python package (colcon) or a plain Python package (pip)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "gemo_ros"


def package_data_files() -> list:
    """Return the (install_dir, files) pairs for launch, config and the embedded assets."""
    entries = [
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        ("share/" + PACKAGE + "/launch", glob("launch/*.launch.py")),
        ("share/" + PACKAGE + "/config", glob("config/*.yaml")),
    ]
    return [(d, f) for d, f in entries if f]


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*", "bench", "interfaces"]),
    package_data={PACKAGE: ["assets/*", "assets/**/*"]},
    include_package_data=True,
    data_files=package_data_files(),
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="gemo_ros developers",
    maintainer_email="gemo-ros@example.com",
    description="Expressive talking 3D Gaussian-splatting face for social robots "
                "(GaussianEmoTalker).",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            "avatar_node = gemo_ros.node:main",
            "gemo = gemo_ros.cli:main",
            "face_panel = gemo_ros.panel_node:panel_main",
            "face_window = gemo_ros.panel_node:window_main",
        ],
    },
)
