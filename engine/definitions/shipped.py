"""Where the library shipped with journeys is, and which library a command uses by default.

The shipped library (``journeys/`` in the source tree) is installed beside the ``engine``
package, as ``schemas/`` is, so ``pip install .`` (not editable) carries it too.
"""

from __future__ import annotations

from pathlib import Path

SHIPPED_LIBRARY = Path(__file__).resolve().parents[2] / "journeys"
LOCAL_LIBRARY = Path("journeys")


def default_library() -> Path:
    """``./journeys`` when the current folder has one (your own library), else the shipped
    library. ``--library DIR`` and ``JOURNEYS_LIBRARY`` come before either."""
    if LOCAL_LIBRARY.is_dir() or not SHIPPED_LIBRARY.is_dir():
        return LOCAL_LIBRARY
    return SHIPPED_LIBRARY
