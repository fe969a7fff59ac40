/**
 * Whether a PyTorch baseline is fit to compare against: Debian's python3-torch multiplies with
 * whichever `libblas.so.3` is installed, and on Netlib's reference BLAS it runs the training bench
 * 14 times slower than on OpenBLAS (113 s against 8 s), which would flatter any kernel of ours.
 */

/** What tools/torch_blas.py reports beside each baseline's figures. */
export interface TorchBlas {
  readonly blas?: string
  readonly blas_library?: string
}

/** Why the figures must not be compared with ours, or undefined when they may be. */
export const torchBaselineRefusal = (figures: TorchBlas): string | undefined => {
  if (figures.blas === undefined) return "the baseline script did not say which BLAS PyTorch uses"
  if (figures.blas === "reference") {
    return `PyTorch multiplies with the reference BLAS (${figures.blas_library ?? "libblas.so.3"}), ` +
      "about 14x slower than OpenBLAS: install libopenblas0-pthread (tools/README.md)"
  }
  return undefined
}

/** "OpenBLAS"-style label of the library for the report lines. */
export const blasLabel = (figures: TorchBlas): string =>
  figures.blas === "openblas" ? "OpenBLAS" : figures.blas === "mkl" ? "MKL" : (figures.blas ?? "unknown BLAS")
