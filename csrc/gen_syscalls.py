"""Build step: the syscall name -> number tables of the seccomp compiler, from the kernel headers.

pyminidocker/container/syscalls.json maps each architecture (libseccomp's names without the
SCMP_ARCH_ prefix: X86_64, X86, X32) to {name: number}, read from the <asm/unistd_*.h> the C
compiler finds (linux-libc-dev on Debian), through its preprocessor so that the numbers are the
headers' own. x32 numbers carry __X32_SYSCALL_BIT as the kernel sees them. Written only when it
changes, so that an unchanged build keeps the file's mtime (the compiled-profile cache is keyed
on it). Imports nothing of the package (setup.py runs it before the package is built).
"""
import json
import os
import subprocess
import sys

HEADERS = {"X86_64": "asm/unistd_64.h", "X86": "asm/unistd_32.h", "X32": "asm/unistd_x32.h"}


def table(header: str, cc: str = "cc") -> dict[str, int]:
    """{name: number} of the __NR_ macros of header, as cc's preprocessor expands them."""
    names = subprocess.run([cc, "-dM", "-E", "-x", "c", "-"], input=f"#include <{header}>\n",
                           capture_output=True, text=True, check=True).stdout
    macros = {line.split()[1][len("__NR_"):] for line in names.splitlines()
              if line.startswith("#define __NR_")}
    # Expand each macro to its value with the preprocessor itself: x32's are expressions.
    probe = f"#include <{header}>\n" + "".join(f"{m} __NR_{m}\n" for m in sorted(macros))
    out = subprocess.run([cc, "-E", "-P", "-x", "c", "-"], input=probe, capture_output=True,
                         text=True, check=True).stdout
    result = {}
    for line in out.splitlines():
        name, _, expr = line.partition(" ")
        # A number, or x32's "(0x40000000UL + N)": a sum of integer literals.
        expr = expr.replace("__X32_SYSCALL_BIT", "0x40000000")  # not defined by this header alone
        tokens = expr.replace("(", " ").replace(")", " ").replace("+", " ").split()
        if name not in macros or not tokens:
            continue
        try:
            result[name] = sum(int(t.rstrip("UuLl"), 0) for t in tokens)
        except ValueError:
            continue  # not a syscall number (an alias of another macro, say)
    return result


def generate(out_path: str, cc: str = "cc") -> None:
    """Write the tables for the host (x86_64 only for now) to out_path if they changed."""
    import platform

    arches = HEADERS if platform.machine() == "x86_64" else {}
    data = json.dumps({arch: table(h, cc) for arch, h in arches.items()}, sort_keys=True,
                      separators=(",", ":"))
    try:
        with open(out_path) as f:
            if f.read() == data:
                return
    except FileNotFoundError:
        pass
    tmp = out_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(data)
    os.replace(tmp, out_path)


if __name__ == "__main__":
    generate(sys.argv[1] if len(sys.argv) > 1 else "pyminidocker/container/syscalls.json")
