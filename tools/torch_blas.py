"""Which BLAS the running PyTorch multiplies with, for the baselines of `npm run bench -- lora`.

Debian's python3-torch is built against the generic `libblas.so.3` (BLAS_INFO=generic in
torch.__config__.show()), so its speed is that of whichever BLAS the alternatives system points the
library at: Netlib's reference BLAS (package libblas3) runs the training bench in about 113 s,
OpenBLAS (libopenblas0-pthread) in about 8 s. A comparison against the reference one says nothing
about our kernels, so the baselines report the library and refuse to measure on the reference one.

The library is read from /proc/self/maps after a matrix product has loaded it: the resolved path of
the shared object, not the name a symlink gives it.

    apt-get install python3-torch libopenblas0-pthread
"""

import os
import re

# Resolved library paths by vendor, first match wins; Debian installs the reference BLAS as
# /usr/lib/<triplet>/blas/libblas.so.3.
VENDORS = [
    ("openblas", re.compile(r"openblas", re.IGNORECASE)),
    ("blis", re.compile(r"blis", re.IGNORECASE)),
    ("mkl", re.compile(r"libmkl", re.IGNORECASE)),
    ("atlas", re.compile(r"atlas", re.IGNORECASE)),
    ("reference", re.compile(r"/blas/libblas\.so|libblas\.so\.3$|librefblas", re.IGNORECASE)),
]


def blas_of(paths):
    """The vendor of the BLAS among loaded library paths: one of VENDORS' names, or "unknown"."""
    candidates = [path for path in paths if re.search(r"blas|mkl|lapack", os.path.basename(path), re.IGNORECASE)]
    for vendor, pattern in VENDORS:
        if any(pattern.search(path) for path in candidates):
            return vendor
    return "unknown"


def torch_blas(torch):
    """{"blas": vendor, "blas_library": path} for this process, after one product through torch.mm."""
    a = torch.ones(64, 64)
    torch.mm(a, a)
    with open("/proc/self/maps") as maps:
        paths = sorted({line.split()[-1] for line in maps if "/" in line and re.search(r"blas|mkl", line, re.IGNORECASE)})
    vendor = blas_of(paths)
    library = next((path for path in paths if re.search(r"blas|mkl", os.path.basename(path), re.IGNORECASE)), "")
    return {"blas": vendor, "blas_library": library}


def refusal(blas):
    """Why a baseline on this BLAS would mislead, or None when it is fit to compare against."""
    if blas["blas"] != "reference":
        return None
    return (
        f"PyTorch multiplies with the reference BLAS ({blas['blas_library']}), about 14x slower than "
        "OpenBLAS on the training bench: install libopenblas0-pthread (tools/README.md)"
    )
