#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Deployment checks, run by `make test` after `swift test` (needs the debug build of dsnotd and
# dsnotctl): the configuration in etc/ is accepted and documents every key the loader reads, the man
# pages lint clean (style-level messages allowed) and render, the generated page is current,
# systemd-analyze verifies the units, and `make install DESTDIR=… PREFIX=/usr` lays out the expected
# tree (and uninstall removes it). Ends with "N passed, N failed"; exits 1 on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${DSNOT_BIN:-$(swift build --show-bin-path)}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0

check() { # NAME COMMAND...: runs COMMAND, output captured; passes on exit status 0
    local name=$1
    shift
    if out=$("$@" 2>&1); then
        passed=$((passed + 1))
        echo "ok   $name"
    else
        failed=$((failed + 1))
        echo "FAIL $name"
        printf '%s\n' "$out" | sed 's/^/     /' | head -40
    fi
}

# --- configuration ---------------------------------------------------------------------------------
config_accepted() {
    "$BIN/dsnotd" --check-config --config etc/dsnot/dsnotd.toml | grep -qx 'etc/dsnot/dsnotd.toml: ok, 1 watch(es)'
}
# A broken copy must be rejected, naming the key and line (the check is not vacuous).
config_typo_rejected() {
    sed 's/^workers = 1$/wrokers = 1/' etc/dsnot/dsnotd.toml >"$TMP/typo.toml"
    ! out=$("$BIN/dsnotd" --check-config --config "$TMP/typo.toml" 2>&1) && grep -q "unknown key 'wrokers'" <<<"$out"
}
# The keys the loader reads (Sources/DSnoTDaemon/Configuration; the tables [[watch]], [watch.recipe] and
# [postgresql] are not keys) and the recipe schema's keys (the leaves of
# the canonical recipe dsnotctl prints, `pattern` being one key), one per line, sorted.
loader_keys() {
    {
        grep -rhoE '\b(string|int|double|bool|size|strings|value|contains)\("[a-z_]+"' Sources/DSnoTDaemon/Configuration \
            | sed -E 's/.*"([a-z_]+)"/\1/' | grep -vxE 'watch|recipe|postgresql'
        "$BIN/dsnotctl" prune /nonexistent "$TMP/nonexistent" --print-recipe --calib-text c --eval-text e \
            --eval-windows 1 --max-ppl-increase 1 | python3 -c '
import json, sys
def leaves(o):
    for k, v in o.items():
        if isinstance(v, dict) and k != "pattern":
            yield from leaves(v)
        else:
            yield k
print("\n".join(leaves(json.load(sys.stdin))))'
        # dsnot.profile is read but never printed: it names the preset the other DSnoT keys override, and
        # the printed (stored) recipe lists every setting (PruneJobOptions.schemaValue).
        echo profile
        # expert_min_tokens is printed only when it differs from its default (the stored form leaves it out
        # then, so job keys of recipes from before MoE support do not change).
        echo expert_min_tokens
        # compute likewise, at its default (fp32).
        echo compute
    } | sort -u
}
# Every key appears in etc/dsnot/dsnotd.toml (set or commented) and in dsnotd.toml(5), and nothing else.
config_documents_every_key() {
    local keys toml man
    keys=$(loader_keys)
    toml=$(grep -oE '^#? ?[a-z_]+ = ' etc/dsnot/dsnotd.toml | sed -E 's/^# ?//; s/ = $//' | sort -u)
    man=$(grep -oE '^\.It Cm [a-z_]+' man/dsnotd.toml.5 | sed 's/^\.It Cm //' | sort -u)
    [ "$(wc -l <<<"$keys")" -ge 25 ] || { echo "only $(wc -l <<<"$keys") keys found in the loader"; return 1; }
    diff <(echo "$keys") <(echo "$toml") && diff <(echo "$keys") <(echo "$man")
}
check "etc/dsnot/dsnotd.toml passes dsnotd --check-config" config_accepted
check "a misspelt key in a copy of it is rejected by name" config_typo_rejected
check "etc/dsnot/dsnotd.toml and dsnotd.toml(5) cover exactly the loader's keys" config_documents_every_key

# --- man pages ---------------------------------------------------------------------------------------
for page in man/dsnotctl.1 man/dsnotd.toml.5 man/dsnotd.8; do
    check "mandoc -T lint -W warning $page is silent" bash -c "out=\$(mandoc -T lint -W warning '$page' 2>&1); [ -z \"\$out\" ] || { echo \"\$out\"; exit 1; }"
    check "man -l $page renders" bash -c "MANWIDTH=100 man -l '$page' 2>&1 | grep -q '^NAME'"
done
generated_page_current() {
    scripts/regenerate-man.sh --bin "$BIN" --output "$TMP/man" >/dev/null && diff -u man/dsnotctl.1 "$TMP/man/dsnotctl.1"
}
check "man/dsnotctl.1 is what generate-manual makes of dsnotctl (scripts/regenerate-man.sh)" generated_page_current
dsnotd_options_documented() {
    local option status=0 options
    options=$("$BIN/dsnotd" --help | grep -oE '^\s+--[a-z-]+' | tr -d ' ')
    [ "$(wc -w <<<"$options")" -ge 2 ] || { echo "no options found in dsnotd --help"; return 1; }
    for option in $options; do
        grep -q "^\.It Fl -${option#--}\b" man/dsnotd.8 || { echo "dsnotd.8 lacks $option"; status=1; }
    done
    return $status
}
check "dsnotd(8) documents every option of dsnotd --help" dsnotd_options_documented
message_ids_documented() {
    local id status=0
    for id in $(grep -oE '"[0-9a-f]{32}"' Sources/DSnoTDaemon/Systemd/JournaldLogHandler.swift | tr -d '"'); do
        grep -q "$id" man/dsnotd.8 || { echo "dsnotd.8 lacks MESSAGE_ID $id"; status=1; }
    done
    return $status
}
check "dsnotd(8) lists every MESSAGE_ID" message_ids_documented

# --- systemd units -----------------------------------------------------------------------------------
units_verify() {
    mkdir -p "$TMP/units" "$TMP/manpath/man1" "$TMP/manpath/man5" "$TMP/manpath/man8"
    cp man/dsnotctl.1 "$TMP/manpath/man1/" && cp man/dsnotd.toml.5 "$TMP/manpath/man5/"
    cp man/dsnotd.8 "$TMP/manpath/man8/"
    sed "s#/usr/bin/#$BIN/#g" systemd/dsnotd.service >"$TMP/units/dsnotd.service"
    cp systemd/dsnotd.socket "$TMP/units/"
    MANPATH=$TMP/manpath systemd-analyze verify --man=yes "$TMP/units/dsnotd.socket" "$TMP/units/dsnotd.service"
}
check "systemd-analyze verify accepts dsnotd.socket and dsnotd.service (Documentation= pages found)" units_verify
socket_paths_agree() {
    grep -qx 'ListenStream=/run/dsnotd.sock' systemd/dsnotd.socket \
        && grep -qx 'socket = "/run/dsnotd.sock"' etc/dsnot/dsnotd.toml \
        && grep -q 'systemSocketPath = "/run/dsnotd.sock"' Sources/DSnoTClient/ControlClient.swift \
        && ! grep -qE '^(RuntimeDirectory|ListenStream=/run/dsnot/)' systemd/dsnotd.service systemd/dsnotd.socket
}
check "socket unit, dsnotd.toml and dsnotctl agree on /run/dsnotd.sock (no RuntimeDirectory=)" socket_paths_agree
service_settings() {
    local s=systemd/dsnotd.service key
    for key in 'Type=notify' 'WatchdogSec=' 'ExecReload=/usr/bin/dsnotctl reload --wait' 'User=dsnot' 'Group=dsnot' \
        'StateDirectory=dsnot' 'TimeoutStopSec=' 'Documentation=man:dsnotd(8)'; do
        grep -q "^$key" "$s" || { echo "$s lacks $key"; return 1; }
    done
    grep -q '^u dsnot ' systemd/dsnot.sysusers && grep -q '^SocketGroup=dsnot$' systemd/dsnotd.socket \
        && grep -q '^SocketMode=0660$' systemd/dsnotd.socket
}
check "dsnotd.service has the settings of issue 7; sysusers creates its user" service_settings
# The snippets applied to an empty root: sysusers creates dsnot, tmpfiles the model directories with
# the group-writable setgid inbox (ownership needs root; as a user only sysusers is exercised).
snippets_apply() {
    local root=$TMP/snippets uid
    mkdir -p "$root/etc"
    systemd-sysusers --root="$root" "$PWD/systemd/dsnot.sysusers" || return 1
    uid=$(awk -F: '$1 == "dsnot" { print $3 }' "$root/etc/passwd")
    [ -n "$uid" ] && grep -q '^dsnot:' "$root/etc/group" || { echo "no dsnot user/group"; return 1; }
    [ "$(id -u)" -eq 0 ] || return 0
    systemd-tmpfiles --root="$root" --create "$PWD/systemd/dsnot.tmpfiles" || return 1
    [ "$(stat -c '%a %u' "$root/srv/dsnot/inbox")" = "2775 $uid" ] \
        && [ "$(stat -c '%a %u' "$root/srv/dsnot/outbox")" = "2755 $uid" ]
}
check "systemd-sysusers and systemd-tmpfiles apply dsnot.sysusers and dsnot.tmpfiles$([ "$(id -u)" -eq 0 ] || echo ' (sysusers only: not root)')" snippets_apply
# systemd's SIGKILL must not cut dsnotd's own bounded shutdown (graceful + cancellation, Sources/dsnotd).
stop_timeout_consistent() {
    local graceful cancel timeout
    graceful=$(grep -oE 'maximumGracefulShutdownDuration = \.seconds\([0-9]+\)' Sources/dsnotd/Dsnotd.swift | grep -oE '[0-9]+')
    cancel=$(grep -oE 'maximumCancellationDuration = \.seconds\([0-9]+\)' Sources/dsnotd/Dsnotd.swift | grep -oE '[0-9]+')
    timeout=$(grep -oE '^TimeoutStopSec=[0-9]+s$' systemd/dsnotd.service | grep -oE '[0-9]+')
    echo "graceful ${graceful:-?} s + cancellation ${cancel:-?} s, TimeoutStopSec ${timeout:-?} s"
    [ -n "$graceful" ] && [ -n "$cancel" ] && [ -n "$timeout" ] && [ "$timeout" -gt $((graceful + cancel)) ]
}
check "TimeoutStopSec= exceeds dsnotd's own shutdown bound" stop_timeout_consistent

# --- make install / uninstall ------------------------------------------------------------------------
EXPECTED_TREE='etc/dsnot/dsnotd.toml
usr/bin/dsnotctl
usr/bin/dsnotd
usr/lib/systemd/system/dsnotd.service
usr/lib/systemd/system/dsnotd.socket
usr/lib/sysusers.d/dsnot.conf
usr/lib/tmpfiles.d/dsnot.conf
usr/share/man/man1/dsnotctl.1
usr/share/man/man5/dsnotd.toml.5
usr/share/man/man8/dsnotd.8'
install_layout() {
    local root=$TMP/root
    make -s install DESTDIR="$root" PREFIX=/usr BIN="$BIN" >/dev/null || return 1
    diff <(echo "$EXPECTED_TREE") <(cd "$root" && find . -type f | sed 's#^\./##' | sort) || return 1
    grep -qx "ExecStart=/usr/bin/dsnotd --config /etc/dsnot/dsnotd.toml" "$root/usr/lib/systemd/system/dsnotd.service" \
        && cmp -s etc/dsnot/dsnotd.toml "$root/etc/dsnot/dsnotd.toml" \
        && [ "$(stat -c %a "$root/usr/bin/dsnotd")" = 755 ] && [ "$(stat -c %a "$root/etc/dsnot/dsnotd.toml")" = 644 ]
}
install_keeps_config_and_rewrites_prefix() {
    local root=$TMP/root2
    mkdir -p "$root/etc/dsnot" && echo 'workers = 2' >"$root/etc/dsnot/dsnotd.toml"
    make -s install DESTDIR="$root" PREFIX=/opt/dsnot BIN="$BIN" >/dev/null || return 1
    [ "$(cat "$root/etc/dsnot/dsnotd.toml")" = 'workers = 2' ] || { echo "existing config overwritten"; return 1; }
    grep -qx 'ExecStart=/opt/dsnot/bin/dsnotd --config /etc/dsnot/dsnotd.toml' \
        "$root/opt/dsnot/lib/systemd/system/dsnotd.service" \
        && grep -qx 'ExecReload=/opt/dsnot/bin/dsnotctl reload --wait' "$root/opt/dsnot/lib/systemd/system/dsnotd.service" \
        && [ -x "$root/opt/dsnot/bin/dsnotctl" ] && [ -f "$root/opt/dsnot/share/man/man8/dsnotd.8" ]
    make -s uninstall DESTDIR="$root" PREFIX=/opt/dsnot >/dev/null || return 1
    # Only the edited configuration survives.
    diff <(echo 'etc/dsnot/dsnotd.toml') <(cd "$root" && find . -type f | sed 's#^\./##' | sort)
}
uninstall_removes_all() {
    make -s uninstall DESTDIR="$TMP/root" PREFIX=/usr >/dev/null && [ -z "$(find "$TMP/root" -type f)" ]
}
check "make install DESTDIR=… PREFIX=/usr lays out the expected tree" install_layout
check "make uninstall removes it all (unedited configuration included)" uninstall_removes_all
check "make install keeps an existing configuration; PREFIX rewrites the units; uninstall keeps the edit" \
    install_keeps_config_and_rewrites_prefix

echo "test-deploy: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
