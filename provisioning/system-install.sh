# Sourced by install.sh in `install` mode, from inside the release folder, as root:
# the system part of an appliance install. Every step is re-runnable and says what it
# checked; nothing a technician or the services wrote is overwritten (configuration,
# key, data).
#
# Layout (why): each version lives in its own folder /opt/appliance-releases/<version>
# with its own .venv; /opt/appliance is a symlink to the current one, which is the
# path the units name. An upgrade builds the new folder beside the running one, then
# stops the units, backs the database up, switches the link and starts again (the
# services migrate the database forward at start). The previous folder stays for a
# rollback of the software, which the old version accepts only if the schema did not
# change (it refuses a newer schema with a clear message, see README "Upgrade").

install_system() {
  local rel="$1" current=""
  [ -L /opt/appliance ] && current="$(readlink -f /opt/appliance)"

  echo "==> system users"
  getent group scanner >/dev/null || groupadd --system scanner
  if ! id appliance >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/appliance --no-create-home \
      --shell /usr/sbin/nologin --groups scanner appliance
  fi
  if ! id appliance-kiosk >/dev/null 2>&1; then
    useradd --system --create-home --home-dir /var/lib/appliance-kiosk \
      --shell /usr/sbin/nologin appliance-kiosk
  fi
  local g
  for g in video render input; do
    getent group "$g" >/dev/null && usermod -aG "$g" appliance-kiosk
  done

  echo "==> /etc/appliance (configuration kept if present)"
  install -d -m 0755 /etc/appliance
  if [ ! -e /etc/appliance/appliance.toml ]; then
    install -m 0640 -g appliance provisioning/appliance.toml /etc/appliance/appliance.toml
  fi
  chgrp appliance /etc/appliance/appliance.toml
  if [ ! -e /etc/appliance/sane/dll.conf ]; then
    .venv/bin/appliance scanner write-config /etc/appliance/sane >/dev/null 2>&1 \
      || install -D -m 0644 -t /etc/appliance/sane provisioning/sane/*
  fi
  .venv/bin/appliance config check /etc/appliance/appliance.toml

  echo "==> udev rule for scanners"
  install -D -m 0644 provisioning/udev/70-appliance-scanner.rules \
    /etc/udev/rules.d/70-appliance-scanner.rules
  if [ -d /run/udev ] && command -v udevadm >/dev/null; then
    udevadm control --reload || true
  fi

  echo "==> kiosk screen: Chromium policy and blank cursor theme"
  install -D -m 0644 provisioning/kiosk/appliance-kiosk.json \
    /etc/chromium/policies/managed/appliance-kiosk.json
  python3 provisioning/kiosk/blank-cursor-theme.py /usr/share/icons/appliance-blank >/dev/null

  local units=(appliance.target appliance-web.service appliance-worker.service
               appliance-sync.service appliance-kiosk.service appliance-central.service
               appliance-doctor.service appliance-doctor.timer appliance-purge.service
               appliance-purge.timer)
  local booted=0
  [ -d /run/systemd/system ] && booted=1

  if [ -n "$current" ] && [ "$current" != "$rel" ] && [ "$booted" = 1 ]; then
    echo "==> upgrade from $current: stopping the appliance"
    systemctl stop appliance.target appliance-web.service appliance-worker.service \
      appliance-sync.service appliance-kiosk.service || true
  fi
  if [ -n "$current" ] && [ "$current" != "$rel" ] && [ -e /var/lib/appliance/appliance.sqlite3 ]; then
    # A consistent copy (the online backup API, WAL included) before the new version
    # migrates the schema forward: the way back for a rollback of the software.
    install -d -m 0750 -o appliance -g appliance /var/lib/appliance/backups
    local backup
    backup="/var/lib/appliance/backups/appliance-$(date -u +%Y%m%dT%H%M%SZ)-before-$(basename "$rel").sqlite3"
    sqlite3 /var/lib/appliance/appliance.sqlite3 ".backup '$backup'"
    chown appliance:appliance "$backup"
    echo "    database backed up to $backup"
  fi

  echo "==> /opt/appliance -> $rel"
  ln -sfn "$rel" /opt/appliance.new
  mv -T /opt/appliance.new /opt/appliance

  echo "==> systemd units"
  local u
  for u in "${units[@]}"; do
    install -m 0644 "systemd/$u" "/etc/systemd/system/$u"
  done
  if [ "$booted" = 1 ]; then
    systemctl daemon-reload
    systemctl enable appliance.target appliance-web.service appliance-worker.service \
      appliance-sync.service appliance-kiosk.service appliance-doctor.timer \
      appliance-purge.timer >/dev/null
  else
    # Not booted with systemd (an image being prepared, a chroot): enable by links,
    # which is all `systemctl enable` does for these units.
    systemctl --root=/ enable appliance.target appliance-web.service \
      appliance-worker.service appliance-sync.service appliance-kiosk.service \
      appliance-doctor.timer appliance-purge.timer >/dev/null 2>&1 || true
  fi

  if [ "$booted" = 1 ] && [ "${APPLIANCE_NO_START:-0}" != 1 ]; then
    echo "==> starting the appliance"
    # The web unit is active only once /kiosk answers (ExecStartPost=appliance wait-web).
    systemctl restart appliance.target
    systemctl start appliance-web.service
  fi

  echo "==> report"
  if [ "$booted" = 1 ]; then
    systemctl --no-pager --lines=0 status appliance-web.service appliance-worker.service \
      appliance-sync.service appliance-kiosk.service 2>/dev/null | grep -E '^(●|×|○)|Active:' || true
  fi
  APPLIANCE_CONFIG=/etc/appliance/appliance.toml /opt/appliance/.venv/bin/appliance doctor \
    --skip scanner || echo "    (doctor reported a failure: see above)"
}
