// SPDX-License-Identifier: Apache-2.0
// CBLAS shim: OpenBLAS's cblas.h plus the two LAPACK routines dsnot needs (same library).
#ifndef DSNOT_CBLAS_SHIM_H
#define DSNOT_CBLAS_SHIM_H

#include <cblas.h>

// LAPACK (Fortran ABI, column-major), exported by Debian's libopenblas0 alongside BLAS.
// Cholesky factorisation of a symmetric positive-definite matrix.
void spotrf_(const char *uplo, const blasint *n, float *a, const blasint *lda, blasint *info);
void dpotrf_(const char *uplo, const blasint *n, double *a, const blasint *lda, blasint *info);
// Inverse of a symmetric positive-definite matrix from its Cholesky factor.
void spotri_(const char *uplo, const blasint *n, float *a, const blasint *lda, blasint *info);
void dpotri_(const char *uplo, const blasint *n, double *a, const blasint *lda, blasint *info);

#endif
