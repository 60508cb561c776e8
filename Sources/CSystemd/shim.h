// SPDX-License-Identifier: Apache-2.0
// CSystemd shim: sd_notify / sd_listen_fds / sd_watchdog_enabled and sd_journal_sendv.
#ifndef DSNOT_CSYSTEMD_SHIM_H
#define DSNOT_CSYSTEMD_SHIM_H

#include <sys/uio.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

#endif
