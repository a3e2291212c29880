"""`cdc-bridge demo`: four local sources, six targets, live traffic, and a verification table.

The pieces: ``routes.toml`` (the demo's config, shipped as package data), ``schema`` (source
databases and seed rows), ``traffic`` (the workload), ``verify`` (targets against sources),
``dashboard`` (the live view) and ``run`` (orchestration).
"""

from __future__ import annotations

__all__ = ["DemoOptions", "DemoResult", "run_demo"]


def __getattr__(name: str) -> object:
    # Lazy: importing the package (e.g. for its routes.toml) does not import the drivers.
    if name in __all__:
        from cdc_bridge.demo import run

        return getattr(run, name)
    raise AttributeError(name)
