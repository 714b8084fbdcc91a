#!/usr/bin/env bash
# Set up this checkout on Debian 12 and then run the appliance or its tests.
#
#   bash provisioning/install.sh run    # install, then start the appliance (kiosk on :8000)
#   bash provisioning/install.sh test   # install what the tests need, then run the suite
#   bash provisioning/install.sh install  # install the appliance on this device (root):
#       a release folder /opt/appliance-releases/<version> with its own .venv,
#       /opt/appliance linked to it, system users, /etc/appliance (configuration,
#       key, SANE folder), udev rule, kiosk policy, systemd units enabled and
#       started; run again from a newer checkout to upgrade (see README "Upgrade").
#
# After `install`, the device is provisioned offline with `appliance provision`, one
# re-runnable step at a time (README "Provisioning"):
#   appliance provision identity --agency 000.00.12.H42 --device kiosk-01
#   appliance provision key                 # key made here (0600), CSR in /etc/appliance/tls
#   appliance provision install-cert device.crt --ca ca.crt   # what the CA signed
#   appliance provision scanner; appliance provision models
#   appliance provision broker --host mqtt.example --port 8883
#   appliance provision officer add "NAME"  # once per officer, asks for the PIN
#   appliance provision report              # every step's verdict and the next step
#   appliance provision renew               # before expiry: new key + CSR, then install-cert
#
# Idempotent: a second run only re-checks. Needs root for apt-get (or sudo).
set -euo pipefail

mode="${1:-}"
case "$mode" in
  run|test|install) ;;
  *) echo "usage: bash provisioning/install.sh run|test|install" >&2; exit 2 ;;
esac
shift || true

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

# `install` works on a copy of this checkout in its own release folder, then goes on
# from there: the units name /opt/appliance/.venv/bin/appliance, and a venv cannot move.
if [ "$mode" = install ] && [ "${APPLIANCE_IN_RELEASE:-0}" != 1 ]; then
  if [ "$(id -u)" != 0 ]; then exec sudo bash "$0" install "$@"; fi
  version="$(sed -n 's/^version *= *"\(.*\)"/\1/p' pyproject.toml | head -n 1)"
  if git -C "$repo" rev-parse --short HEAD >/dev/null 2>&1; then
    version="${version}-$(git -C "$repo" rev-parse --short HEAD)"
  fi
  release="/opt/appliance-releases/${version:-unversioned}"
  echo "==> release folder $release"
  mkdir -p "$release"
  tar -C "$repo" --exclude=./.venv --exclude=./.git --exclude='__pycache__' \
    --exclude='./*.egg-info' --exclude=./.pytest_cache --exclude=./.ruff_cache -cf - . \
    | tar -C "$release" -xf -
  APPLIANCE_IN_RELEASE=1 exec bash "$release/provisioning/install.sh" install "$@"
fi

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

packages() {  # package names from the lists, comments and blanks dropped
  sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$@"
}

lists=(provisioning/apt-run.txt)
[ "$mode" = test ] && lists+=(provisioning/apt-test.txt)
[ "$mode" = install ] && lists+=(provisioning/apt-kiosk.txt)
mapfile -t wanted < <(packages "${lists[@]}")
missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The project's Python environment, built from Debian's python3 (never a system pip).
py=/usr/bin/python3
[ -x "$py" ] || py="$(command -v python3)"
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$py" -m venv .venv
fi
extras=""
[ "$mode" = test ] && extras="[test]"
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)${extras}"
if [ ! -e "$stamp" ]; then
  echo "==> installing Python packages into .venv"
  .venv/bin/python -m pip install -q --upgrade pip wheel setuptools
  .venv/bin/python -m pip install -q -e ".${extras}"
  touch "$stamp"
fi

echo "==> checking OCR models"
.venv/bin/python models/install_models.py

# The AES-GCM key that seals citizens' pages, PDFs and personal fields at rest (issue 8):
# root-only (0600), made once and never overwritten (a second run only checks it).
# The services read it through systemd's LoadCredential= and name it in
# /etc/appliance/appliance.toml as paths.key_file; the demo (`run`, `test`) keeps its
# own key beside its data instead.
if [ "$mode" = install ]; then
  echo "==> checking the encryption key"
  as_root install -d -m 0755 /etc/appliance
  as_root .venv/bin/python -m appliance.system.crypto init --key-file /etc/appliance/appliance.key
fi

case "$mode" in
  install)
    # APPLIANCE_BUILD_ONLY=1: build the release folder beside the running version
    # (packages, venv, models: the slow, networked part) and stop; a later run
    # switches to it in seconds, offline (README "Upgrade").
    if [ "${APPLIANCE_BUILD_ONLY:-0}" = 1 ]; then
      echo "==> built $repo (not activated)"
    else
      # shellcheck source=provisioning/system-install.sh
      . provisioning/system-install.sh
      install_system "$repo"
      echo "==> installed; next: \`appliance provision report\` lists the provisioning steps"
    fi ;;
  run)
    echo "==> starting the appliance"
    exec .venv/bin/appliance run "$@" ;;
  test)
    # Three worker processes (pytest-xdist): most long tests wait on the processes,
    # brokers, browsers and clocks they start, so three of them share 2 cores well
    # (2,820 tests: 11.4 min, against 13.8 min with two, 27 Nov 2026). The tests that
    # raced a loaded machine (floods that ended before their kill, a wall-clock
    # micro-benchmark) hold the receiver or measure CPU time instead.
    # APPLIANCE_TEST_WORKERS=0 runs them in this process; benchmarks (-m benchmark)
    # measure time and run alone: `.venv/bin/python -m pytest -m benchmark`.
    echo "==> running the test suite"
    exec .venv/bin/python -m pytest -q -n "${APPLIANCE_TEST_WORKERS:-3}" "$@" ;;
esac
