"""Every benchmark module imports: a benchmark that reaches into a renamed private helper fails
here, in the default suite, instead of at the start of a long `python -m confide.benchmarks`."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import confide.benchmarks as package

MODULES = sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.name != "__main__")


def test_the_benchmark_package_lists_its_sections():
    assert {"dp_overhead", "engine_overhead", "scale", "secure_noise", "analytics"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_benchmark_module_imports(name):
    importlib.import_module(f"confide.benchmarks.{name}")
