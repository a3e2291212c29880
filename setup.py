"""Package list for setuptools (everything else is in pyproject.toml).

The state store's Alembic migrations live at the top level (``migrations/``) and are
installed as ``cdc_bridge.migrations``, so an installed bridge migrates its state store itself.
"""

from setuptools import find_packages, setup

setup(
    packages=[
        *find_packages(include=["cdc_bridge", "cdc_bridge.*"]),
        "cdc_bridge.migrations",
        "cdc_bridge.migrations.versions",
    ],
    package_dir={"cdc_bridge.migrations": "migrations"},
)
