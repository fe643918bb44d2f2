"""glibc malloc housekeeping for a long-running process: fewer arenas, freed memory handed back.

Measured in a serving process (`bench/memory_growth.py`): after warm-up, what grows under a stream of
distinct questions is not Python objects (bounded caches aside) but memory glibc's malloc keeps after it
was freed — each thread that allocates gets an arena of its own (up to 8 per core), and freed blocks
scattered over many arenas are rarely returned. `cap_arenas` limits the arenas (as MALLOC_ARENA_MAX does;
it must run before the process starts its threads) and `trim` returns free memory to the system
(`malloc_trim(0)`: the top of each heap and whole free pages inside it). Both are no-ops where the C
library is not glibc. `heap` reports what malloc holds, `arena_count` how many arenas it has.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import re
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

M_ARENA_MAX = -8  # mallopt's parameter number (malloc.h)


@dataclass(frozen=True)
class Heap:
    in_use: int  # bytes allocated and not freed (heap blocks and mmapped ones)
    free_kept: int  # bytes freed but still held by malloc


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                       "fsmblks", "uordblks", "fordblks", "keepcost")]


@cache
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallinfo2.restype = _MallInfo2  # glibc ≥ 2.33; its absence means another C library
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.fopen.restype = ctypes.c_void_p
        libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        libc.fclose.argtypes = [ctypes.c_void_p]
        libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
        return libc
    except (OSError, AttributeError):
        return None


def cap_arenas(arenas: int) -> bool:
    """At most `arenas` malloc arenas from now on (0: leave glibc's default); True if applied."""
    libc = _libc()
    return bool(arenas > 0 and libc is not None and libc.mallopt(M_ARENA_MAX, arenas) == 1)


def trim() -> bool:
    """Hand memory malloc keeps but does not use back to the system; True if any was released."""
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0))


def heap() -> Heap | None:
    libc = _libc()
    if libc is None:
        return None
    info = libc.mallinfo2()
    return Heap(in_use=info.uordblks + info.hblkhd, free_kept=info.fordblks)


def arena_count() -> int | None:
    """How many arenas malloc has made so far (from `malloc_info`), or None without glibc."""
    libc = _libc()
    if libc is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "malloc_info.xml"
        stream = libc.fopen(str(path).encode(), b"w")
        try:
            libc.malloc_info(0, stream)
        finally:
            libc.fclose(stream)
        return len(re.findall(r'<heap nr="\d+">', path.read_text()))
