// SPDX-License-Identifier: Apache-2.0
// CDNNL shim: oneDNN's C API (Debian's libdnnl-dev, OpenMP runtime) plus the two OpenMP calls that
// set how many threads a oneDNN primitive started from the calling thread uses.
#ifndef DSNOT_CDNNL_SHIM_H
#define DSNOT_CDNNL_SHIM_H

#include <oneapi/dnnl/dnnl.h>

// libgomp (Debian's libdnnl2 is built with DNNL_CPU_RUNTIME=OMP): per-thread ICVs.
int omp_get_max_threads(void);
void omp_set_num_threads(int);

#endif
