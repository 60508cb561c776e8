// SPDX-License-Identifier: Apache-2.0
// CLZ4 shim: liblz4's block and frame APIs.
#ifndef DSNOT_CLZ4_SHIM_H
#define DSNOT_CLZ4_SHIM_H

#include <lz4.h>
#include <lz4hc.h>
#include <lz4frame.h>

#endif
