"""Build knobs for zkfast: declares the compiled core and nothing else.

The compiled core is mandatory. A machine without Cython or a C compiler fails the
build loudly; set ZKFAST_PURE_BUILD=1 to install the pure-Python twin on purpose.
"""

import os
import sys

from setuptools import setup

PURE = os.environ.get("ZKFAST_PURE_BUILD") == "1"
DEBUG = os.environ.get("ZKFAST_DEBUG_BUILD") == "1"

# zkfast._impl falls back to the pure twin only when this marker module exists, so a pure build
# says so in the installed package, and a compiled build removes any marker a pure build left.
MARKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "src", "zkfast", "_pure_build.py")
if PURE:
    with open(MARKER, "w") as f:
        f.write('"""Marker: this zkfast was built with ZKFAST_PURE_BUILD=1 (no compiled core)."""\n')
elif os.path.exists(MARKER):
    os.remove(MARKER)

ext_modules = []
if not PURE:
    try:
        from Cython.Build import cythonize
        from setuptools import Extension
    except ImportError:  # pragma: no cover - exercised only on broken build machines
        sys.exit(
            "zkfast: Cython is required to build the compiled core. "
            "Install Cython and a C compiler, or set ZKFAST_PURE_BUILD=1 for a pure-Python build."
        )
    macros = [("CYTHON_TRACE", "1")] if DEBUG else []
    directives = {"language_level": "3", "boundscheck": True, "wraparound": False,
                  "cdivision": True, "embedsignature": True}
    if DEBUG:
        directives["linetrace"] = True
    ext_modules = cythonize(
        [Extension("zkfast._core", ["src/zkfast/_core.pyx"], define_macros=macros,
                   extra_compile_args=["-O2"])],
        compiler_directives=directives,
        annotate=DEBUG,
    )

setup(ext_modules=ext_modules)
