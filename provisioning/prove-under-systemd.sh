#!/usr/bin/env bash
# Prove the appliance under a real systemd as PID 1, on this machine, without touching
# its own systemd: a Debian 12 tree (debootstrap) is booted with systemd-nspawn, the
# appliance is installed into it with the project's own `install.sh install`, and the
# units are started and checked from outside.
#
#   sudo bash provisioning/prove-under-systemd.sh [ROOT]     (ROOT default below)
#
# Pass 1 (not booted, host network): install.sh install - Debian packages, release
#   folder, venv, models, key, configuration, units enabled by links.
# Pass 2 (booted, private network: only the container's own loopback):
#   install.sh install again (idempotent; it now starts the units), then checks:
#   web/worker/sync active (Type=notify: active means READY=1, plus for web the
#   kiosk page served), the kiosk URL answers inside the container, a SIGKILLed
#   worker is restarted by systemd, the timers are scheduled; two signed records
#   are made and the next version (built beside in pass 1) is installed over the
#   running one: the records still wait, the database was backed up, the screens
#   answer; a SIGSTOPped sync service is restarted by the watchdog; the web unit is
#   active (running) as Type=notify with its READY status, and a SIGSTOPped gunicorn
#   worker, then a SIGSTOPped arbiter, are each restarted by its watchdog (lowered to
#   20 s by a runtime drop-in, removed afterwards); `appliance doctor`.
# The findings are printed as "PROOF key=value" lines and written to ROOT.proof.json.
#
# Needs: root, debootstrap and systemd-container (apt-get install debootstrap
# systemd-container), the Debian mirror and PyPI for pass 1. The kiosk screen itself
# (cage on tty1) cannot start in a container without a display: its unit is expected
# to be skipped by its ConditionPathExists=/dev/tty1 there.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
root="${1:-${APPLIANCE_PROOF_ROOT:-/var/tmp/appliance-proof/bookworm}}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
boot_log="$root.boot.log"
proof="$root.proof.json"

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
for tool in debootstrap systemd-nspawn nsenter; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install debootstrap systemd-container)" >&2; exit 2; }
done

if [ ! -x "$root/usr/lib/systemd/systemd" ]; then
  echo "==> debootstrap Debian 12 into $root"
  mkdir -p "$(dirname "$root")"
  debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,libpam-systemd,ca-certificates,python3,curl \
    bookworm "$root" "$mirror"
fi

echo "==> copying this checkout to $root/root/appliance"
rm -rf "$root/root/appliance"
mkdir -p "$root/root/appliance"
tar -C "$repo" --exclude=./.venv --exclude=./.git --exclude='__pycache__' \
  --exclude='./*.egg-info' --exclude=./.pytest_cache --exclude=./.ruff_cache -cf - . \
  | tar -C "$root/root/appliance" -xf -

nspawn=(systemd-nspawn -q --register=no --keep-unit -D "$root")

# Behind a TLS-inspecting proxy (an office's, a lab's) pip needs the local CAs the host
# trusts: they are copied into the tree and pip is pointed at the system store.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  install -d "$root/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  "${nspawn[@]}" /usr/sbin/update-ca-certificates >/dev/null
fi

echo "==> pass 1: install.sh install (not booted)"
"${nspawn[@]}" --setenv=DEBIAN_FRONTEND=noninteractive \
  --setenv=PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
  /bin/bash /root/appliance/provisioning/install.sh install

# The next version, for the upgrade step: this checkout with its version bumped, built
# beside the current one now (the networked part), switched to later while booted.
echo "==> pass 1: building the next version beside it (APPLIANCE_BUILD_ONLY=1)"
rm -rf "$root/root/appliance-next"
cp -a "$root/root/appliance" "$root/root/appliance-next"
sed -i 's/^\(version *= *"[^"]*\)"/\1.post1"/' "$root/root/appliance-next/pyproject.toml"
"${nspawn[@]}" --setenv=DEBIAN_FRONTEND=noninteractive --setenv=APPLIANCE_BUILD_ONLY=1 \
  --setenv=PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
  /bin/bash /root/appliance-next/provisioning/install.sh install

echo "==> pass 2: booting the tree with systemd as PID 1 (log: $boot_log)"
"${nspawn[@]}" --private-network --console=pipe -b >"$boot_log" 2>&1 &
nspawn_pid=$!
cleanup() {
  kill -TERM "$nspawn_pid" 2>/dev/null || true
  for _ in $(seq 30); do kill -0 "$nspawn_pid" 2>/dev/null || return 0; sleep 1; done
  kill -KILL "$nspawn_pid" 2>/dev/null || true
}
trap cleanup EXIT
trap "exit 130" INT TERM

ct=""
for _ in $(seq 60); do
  # The container's PID 1 as the host sees it: nspawn's child running systemd (short-
  # lived helpers are forked first).
  ct="$(pgrep -P "$nspawn_pid" -x systemd | head -n 1 || true)"
  [ -n "$ct" ] && break
  sleep 1
done
[ -n "$ct" ] || { echo "the container did not start; see $boot_log" >&2; exit 1; }
in_ct() {
  nsenter -t "$ct" -m -u -i -n -p -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 "$@"
}
state="$(in_ct timeout 180 systemctl is-system-running --wait || true)"
echo "PROOF pid1=$(in_ct cat /proc/1/comm) system_state=$state"

echo "==> pass 2: install.sh install (booted: starts the units)"
in_ct /bin/bash /root/appliance/provisioning/install.sh install

declare -A found
found[pid1]="$(in_ct cat /proc/1/comm)"
for u in web worker sync kiosk; do
  found[$u]="$(in_ct systemctl is-active "appliance-$u.service" || true)"
done
found[kiosk_condition]="$(in_ct systemctl show appliance-kiosk.service -p ConditionResult --value || true)"
found[kiosk_http]="$(in_ct curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/kiosk || true)"
found[web_type]="$(in_ct systemctl show appliance-web.service -p Type --value)"
# active (running) for a Type=notify unit means READY=1 came; the STATUS= sent with it
# by web/server.py's HealthWatch ("serving <url>") shows it came from the probe of the
# served socket, not from gunicorn's own early READY.
found[web_substate]="$(in_ct systemctl show appliance-web.service -p SubState --value)"
found[web_status_text]="$(in_ct systemctl show appliance-web.service -p StatusText --value)"
found[web_watchdog_usec]="$(in_ct systemctl show appliance-web.service -p WatchdogUSec --value)"
found[worker_watchdog_usec]="$(in_ct systemctl show appliance-worker.service -p WatchdogUSec --value)"
found[sync_watchdog_usec]="$(in_ct systemctl show appliance-sync.service -p WatchdogUSec --value)"
found[web_memory_max]="$(in_ct systemctl show appliance-web.service -p MemoryMax --value)"
found[timers]="$(in_ct systemctl list-timers --all --no-legend 'appliance-*' | wc -l)"

# A browser or service dying is the common failure: kill the worker hard and watch
# systemd bring it back (Restart=on-failure), ready again (Type=notify).
before="$(in_ct systemctl show appliance-worker.service -p NRestarts --value)"
worker_pid="$(in_ct systemctl show appliance-worker.service -p MainPID --value)"
in_ct kill -KILL "$worker_pid" || true
for _ in $(seq 90); do
  now="$(in_ct systemctl show appliance-worker.service -p NRestarts --value)"
  active="$(in_ct systemctl is-active appliance-worker.service || true)"
  [ "$now" != "$before" ] && [ "$active" = active ] && break
  sleep 1
done
found[worker_restarts_after_kill]="$((now - before))"
found[worker_after_kill]="$active"
# The timers' jobs, started the way their timers start them, under their hardening.
for job in doctor purge; do
  in_ct systemctl start "appliance-$job.service" || true
  found[${job}_unit_result]="$(in_ct systemctl show "appliance-$job.service" -p Result --value)"
done

# Upgrade with records waiting: two signed records made by the product's own code as
# the service user (the key passed as the units pass it), then the next version
# installed over the running one; they must still be waiting afterwards.
undelivered() {
  in_ct sqlite3 "file:/var/lib/appliance/appliance.sqlite3?mode=ro" \
    "SELECT count(*) FROM outbox WHERE state != 'delivered'"
}
in_ct systemd-run --quiet --wait --pipe -p User=appliance -p WorkingDirectory=/opt/appliance \
  -p LoadCredential=appliance.key:/etc/appliance/appliance.key \
  -p Environment=APPLIANCE_CONFIG=/etc/appliance/appliance.toml \
  /opt/appliance/.venv/bin/python -c '
from appliance.system.config import load
from appliance.store.db import connect
from tests.helpers.device_records import add_record
c = load()
conn = connect(c.paths.database, key_file=c.paths.key_file)
for _ in range(2):
    print("signed", add_record(conn, c.paths.files).record_id)
'
found[undelivered_before_upgrade]="$(undelivered)"
found[release_before_upgrade]="$(in_ct readlink /opt/appliance)"
in_ct /bin/bash /root/appliance-next/provisioning/install.sh install
found[release_after_upgrade]="$(in_ct readlink /opt/appliance)"
found[undelivered_after_upgrade]="$(undelivered)"
found[backups_after_upgrade]="$(in_ct sh -c 'ls /var/lib/appliance/backups | wc -l')"
found[web_after_upgrade]="$(in_ct systemctl is-active appliance-web.service || true)"
found[kiosk_http_after_upgrade]="$(in_ct curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/kiosk || true)"

# The watchdog: a sync service whose main loop stops (SIGSTOP) stops feeding it, and
# systemd must kill and restart it once WatchdogSec= (60 s) has passed.
before="$(in_ct systemctl show appliance-sync.service -p NRestarts --value)"
in_ct kill -STOP "$(in_ct systemctl show appliance-sync.service -p MainPID --value)"
for _ in $(seq 120); do
  now="$(in_ct systemctl show appliance-sync.service -p NRestarts --value)"
  [ "$now" != "$before" ] && break
  sleep 1
done
found[sync_restarts_after_hang]="$((now - before))"
found[sync_watchdog_logged]="$(in_ct journalctl -u appliance-sync.service --no-pager -q | grep -c 'Watchdog timeout' || true)"

# The web watchdog: pings come from gunicorn's arbiter loop only after /api/health
# answers, so a stopped app worker (the arbiter still runs, the probe fails) and a
# stopped arbiter (no loop at all) must each end in a restart. WatchdogSec= is lowered
# to 20 s by a runtime drop-in to keep this short, then the drop-in is removed again.
web_restarts() { in_ct systemctl show appliance-web.service -p NRestarts --value; }
wait_web_active() {  # a restarted unit must be serving again (READY=1, /kiosk 200)
  for _ in $(seq 150); do
    [ "$(in_ct systemctl show appliance-web.service -p SubState --value)" = running ] &&
      [ "$(in_ct curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/kiosk)" = 200 ] &&
      return 0
    sleep 1
  done
  return 1
}
in_ct mkdir -p /run/systemd/system/appliance-web.service.d
in_ct sh -c 'printf "[Service]\nWatchdogSec=20\n" >/run/systemd/system/appliance-web.service.d/zz-proof-watchdog.conf'
in_ct systemctl daemon-reload
# Manual starts count towards StartLimitBurst= (5 in 10 min): start from a clean count.
in_ct systemctl reset-failed appliance-web.service || true
in_ct systemctl restart appliance-web.service || true
wait_web_active || true
found[web_test_watchdog_usec]="$(in_ct systemctl show appliance-web.service -p WatchdogUSec --value)"
hang_web() {  # $1: which process to stop ("worker" or "arbiter"); sets found[web_*_$1]
  local main victim before since now=""
  main="$(in_ct systemctl show appliance-web.service -p MainPID --value)"
  if [ "$1" = arbiter ]; then victim="$main"; else victim="$(in_ct sh -c "cat /proc/$main/task/*/children" | tr " " "\n" | grep -m1 .)"; fi
  before="$(web_restarts)"
  since="$(in_ct date '+%Y-%m-%d %H:%M:%S')"
  in_ct kill -STOP "$victim" || true
  for _ in $(seq 150); do
    now="$(web_restarts)"
    [ "$now" != "$before" ] && break
    sleep 1
  done
  found[web_restarts_after_${1}_hang]="$((now - before))"
  found[web_watchdog_logged_${1}]="$(in_ct journalctl -u appliance-web.service --since "$since" --no-pager -q | grep -c 'Watchdog timeout' || true)"
  wait_web_active || true
  found[web_after_${1}_hang]="$(in_ct systemctl show appliance-web.service -p SubState --value)"
  found[web_pid_changed_after_${1}_hang]="$([ "$(in_ct systemctl show appliance-web.service -p MainPID --value)" != "$main" ] && echo yes || echo no)"
}
hang_web worker
hang_web arbiter
found[kiosk_http_after_web_hangs]="$(in_ct curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/kiosk || true)"
in_ct rm -f /run/systemd/system/appliance-web.service.d/zz-proof-watchdog.conf
in_ct systemctl daemon-reload
in_ct systemctl reset-failed appliance-web.service || true
in_ct systemctl restart appliance-web.service || true
wait_web_active || true
found[web_final_watchdog_usec]="$(in_ct systemctl show appliance-web.service -p WatchdogUSec --value)"
found[web_final]="$(in_ct systemctl is-active appliance-web.service || true)"

found[doctor_exit]="$(in_ct /opt/appliance/.venv/bin/appliance --config /etc/appliance/appliance.toml doctor --skip scanner --quiet >/dev/null 2>&1; echo $?)"
in_ct /opt/appliance/.venv/bin/appliance --config /etc/appliance/appliance.toml doctor --skip scanner || true

{
  echo "{"
  first=1
  for k in "${!found[@]}"; do
    [ $first = 1 ] || echo ","
    first=0
    printf '  "%s": "%s"' "$k" "${found[$k]}"
  done
  echo
  echo "}"
} >"$proof"
for k in "${!found[@]}"; do echo "PROOF $k=${found[$k]}"; done
echo "==> findings in $proof"
