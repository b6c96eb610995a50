"""The one place that chooses between the compiled core and its pure-Python twin.

``ZKFAST_PURE=1`` selects ``_core_py`` (for pdb, coverage and shrinking failures). Otherwise
the compiled ``_core`` is required: a missing extension is an ImportError, never a quiet
fallback, unless the package itself was built pure (``ZKFAST_PURE_BUILD=1``), which leaves a
marker module behind.
"""

from __future__ import annotations

import os

if os.environ.get("ZKFAST_PURE") == "1":
    from . import _core_py as core
else:
    try:
        from . import _core as core  # type: ignore[no-redef]
    except ImportError as exc:  # pragma: no cover - depends on the build
        from importlib.util import find_spec

        if find_spec("zkfast._pure_build") is None:
            raise ImportError(
                "zkfast: the compiled core zkfast._core is missing; rebuild with Cython "
                "(pip install .) or set ZKFAST_PURE=1 to run the pure-Python core on purpose"
            ) from exc
        from . import _core_py as core

ProtocolError = core.ProtocolError
IMPLEMENTATION: str = core.IMPLEMENTATION

__all__ = ["core", "ProtocolError", "IMPLEMENTATION"]
