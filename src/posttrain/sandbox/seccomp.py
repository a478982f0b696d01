"""A seccomp filter that stops the sandboxed program from creating user namespaces.

Why: run as root, bubblewrap cannot use its own `--disable-userns` (that needs a user
namespace of bubblewrap's, and the process limit needs a real non-root uid instead). Without
this filter the program could make a user namespace of its own, become root in it, and mount
a tmpfs there: memory outside the disk quota. With it, `unshare` and `clone` with
CLONE_NEWUSER fail with EPERM; `clone3`, whose flags a filter cannot read, fails with ENOSYS,
which makes the C library fall back to `clone` (so threads still start); system calls of
another ABI (32-bit or x32 on x86-64) fail with ENOSYS. Everything else is allowed.

The filter is a classic BPF program, the raw bytes `bwrap --seccomp FD` reads.
"""

from __future__ import annotations

import errno
import platform
import struct

# From linux/filter.h, linux/seccomp.h, linux/audit.h and linux/sched.h.
_LD_ABS_W = 0x20
_JEQ, _JGE, _JSET = 0x15, 0x35, 0x45
_RET = 0x06
_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000
_CLONE_NEWUSER = 0x10000000
_X32_BIT = 0x40000000
_NR_OFFSET, _ARCH_OFFSET, _ARG0_OFFSET = 0, 4, 16  # struct seccomp_data, little-endian

# machine: (AUDIT_ARCH_*, clone, unshare, clone3)
_ARCHES = {
    "x86_64": (0xC000003E, 56, 272, 435),
    "aarch64": (0xC00000B7, 220, 97, 435),
}


def _assemble(program: list[tuple]) -> bytes:
    """(code, k) or (code, k, true_label, false_label) rows and ("label", name) markers."""
    labels, index = {}, 0
    for row in program:
        if row[0] == "label":
            labels[row[1]] = index
        else:
            index += 1
    out, index = b"", 0
    for row in program:
        if row[0] == "label":
            continue
        code, k, *targets = row
        jt, jf = (labels[t] - index - 1 if t else 0 for t in (targets or [None, None]))
        out += struct.pack("=HBBI", code, jt, jf, k)
        index += 1
    return out


def no_user_namespaces(machine: str | None = None) -> bytes | None:
    """The filter for this machine's architecture, or None where it is not known here."""
    arch = _ARCHES.get(machine or platform.machine())
    if arch is None:
        return None
    audit_arch, clone, unshare, clone3 = arch
    return _assemble(
        [
            (_LD_ABS_W, _ARCH_OFFSET),
            (_JEQ, audit_arch, None, "enosys"),
            (_LD_ABS_W, _NR_OFFSET),
            (_JGE, _X32_BIT, "enosys", None),
            (_JEQ, clone3, "enosys", None),
            (_JEQ, unshare, "flags", None),
            (_JEQ, clone, "flags", None),
            (_RET, _ALLOW),
            ("label", "flags"),
            (_LD_ABS_W, _ARG0_OFFSET),
            (_JSET, _CLONE_NEWUSER, "eperm", None),
            (_RET, _ALLOW),
            ("label", "eperm"),
            (_RET, _ERRNO | errno.EPERM),
            ("label", "enosys"),
            (_RET, _ERRNO | errno.ENOSYS),
        ]
    )
