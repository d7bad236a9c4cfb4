#!/bin/sh
# Install (or remove) the iotitan services on a system without the .deb: the binaries, the
# systemd units and timer, the cron file (it steps aside where systemd runs), the example
# config and the iotitan user.
#
#   cargo install --locked --path . --root "$HOME/.local"       # as yourself
#   sudo systemd/install.sh --from "$HOME/.local/bin"             # copies to /usr/local/bin
#   sudo systemd/install.sh --uninstall                           # keeps config and state
#
# Options:
#   --from DIR     copy the iotitan-* binaries from DIR into --bindir (default: use those
#                  already in --bindir)
#   --bindir DIR   where the units run the binaries from (default /usr/local/bin; not under
#                  /home or /root: the units hide home directories from the services)
#   --destdir DIR  install into DIR as a scratch root (packaging, tests): no user is created
#                  and systemd is not told
#   --uninstall    stop and remove the units, cron file and binaries; keep /etc/iotitan,
#                  /var/lib/iotitan and the user
set -eu

src=$(cd "$(dirname "$0")/.." && pwd)
from=""
bindir=/usr/local/bin
destdir=""
uninstall=false
programs="iotitan-logger iotitan-stats iotitan-alerts iotitan-bridge iotitan-http iotitan-sim"
units="iotitan-logger.service iotitan-alerts.service iotitan-bridge.service iotitan-http.service iotitan-stats.service iotitan-stats.timer"

usage() { sed -n '2,18s/^# \{0,1\}//p' "$0" >&2; exit 64; }
while [ $# -gt 0 ]; do
  case "$1" in
    --from) [ $# -ge 2 ] || usage; from=$2; shift 2 ;;
    --bindir) [ $# -ge 2 ] || usage; bindir=$2; shift 2 ;;
    --destdir) [ $# -ge 2 ] || usage; destdir=$2; shift 2 ;;
    --uninstall) uninstall=true; shift ;;
    -h|--help) usage ;;
    *) echo "install.sh: unknown option $1" >&2; usage ;;
  esac
done
case "$bindir" in
  /*) ;;
  *) echo "install.sh: --bindir must be an absolute path" >&2; exit 64 ;;
esac
case "$bindir" in
  /home/*|/root/*|/run/user/*)
    echo "install.sh: --bindir $bindir is hidden from the services (ProtectHome=yes)" >&2; exit 64 ;;
esac

unitdir=$destdir/etc/systemd/system
live=false
if [ -z "$destdir" ] && [ -d /run/systemd/system ]; then live=true; fi

if $uninstall; then
  if $live; then systemctl disable --now $units 2>/dev/null || true; fi
  for u in $units; do rm -f "$unitdir/$u"; done
  rm -f "$destdir/etc/cron.d/iotitan" "$destdir/usr/lib/sysusers.d/iotitan.conf"
  for p in $programs; do rm -f "$destdir$bindir/$p"; done
  if $live; then systemctl daemon-reload; fi
  echo "removed; kept $destdir/etc/iotitan, $destdir/var/lib/iotitan and the user iotitan"
  exit 0
fi

install -d "$destdir$bindir" "$unitdir" "$destdir/etc/cron.d" "$destdir/usr/lib/sysusers.d"
if [ -n "$from" ]; then
  for p in $programs; do install -m 0755 "$from/$p" "$destdir$bindir/$p"; done
fi
for p in iotitan-logger iotitan-stats iotitan-alerts iotitan-bridge iotitan-http; do
  [ -x "$destdir$bindir/$p" ] || { echo "install.sh: $destdir$bindir/$p is missing (use --from DIR)" >&2; exit 66; }
done

# The units name /usr/bin, where the package puts the binaries; point them at --bindir.
for u in $units; do
  sed "s|/usr/bin/iotitan-|$bindir/iotitan-|g" "$src/systemd/$u" > "$unitdir/$u.tmp"
  chmod 0644 "$unitdir/$u.tmp"
  mv "$unitdir/$u.tmp" "$unitdir/$u"
done
sed "s|/usr/bin/iotitan-|$bindir/iotitan-|g" "$src/crontab/iotitan" > "$destdir/etc/cron.d/iotitan"
chmod 0644 "$destdir/etc/cron.d/iotitan"
install -m 0644 "$src/systemd/iotitan.sysusers" "$destdir/usr/lib/sysusers.d/iotitan.conf"

# The config is the operator's once installed: never overwritten.
install -d -m 0755 "$destdir/etc/iotitan"
if [ -e "$destdir/etc/iotitan/iotitan.toml" ]; then
  install -m 0644 "$src/config/iotitan.toml" "$destdir/etc/iotitan/iotitan.toml.new"
  echo "kept $destdir/etc/iotitan/iotitan.toml; the new example is iotitan.toml.new"
else
  install -m 0644 "$src/config/iotitan.toml" "$destdir/etc/iotitan/iotitan.toml"
fi
# Secrets for LoadCredential= (root only; systemd hands copies to the services).
install -d -m 0700 "$destdir/etc/iotitan/credentials"

if [ -z "$destdir" ]; then
  systemd-sysusers iotitan.conf
  install -d -m 0750 -o iotitan -g iotitan /var/lib/iotitan
fi
if $live; then
  systemctl daemon-reload
  systemctl try-restart iotitan-logger.service iotitan-alerts.service iotitan-bridge.service iotitan-http.service
fi
echo "installed into ${destdir:-/}: binaries in $bindir, units in /etc/systemd/system"
echo "next: edit /etc/iotitan/iotitan.toml, then"
echo "  systemctl enable --now iotitan-logger iotitan-alerts iotitan-stats.timer   # and iotitan-bridge, iotitan-http"
