#!/bin/sh
# Installs the Debian packages fsctl's set-up needs when they are missing.
#   venv  : python3-venv (for `python3 -m venv`)
#   tests : openssh-server and openssh-client (SFTP tests: `rec pull` runs OpenSSH's ssh),
#           postgresql (database tests),
#           systemd (systemd-analyze verify of the units in conf/systemd),
#           chromium + chromium-driver (the web workspace's browser test, driven by Selenium),
#           kamailio (kamailio -c of the rendered kamailio.cfg; a private Kamailio in front of the nodes),
#           nginx (conf/nginx/fsctl-web.conf in front of a real fsctl-web, on private ports)
# Needs root for apt-get; as another user it only reports what is missing.
set -eu
want=""
case "${1:-tests}" in
  venv)
    python3 -c 'import venv, ensurepip' 2>/dev/null || want="python3-venv"
    ;;
  tests)
    [ -x /usr/sbin/sshd ] || want="$want openssh-server"
    command -v ssh >/dev/null 2>&1 || want="$want openssh-client"
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || want="$want postgresql"
    command -v systemd-analyze >/dev/null 2>&1 || want="$want systemd"
    [ -x /usr/bin/chromium ] || want="$want chromium"
    [ -x /usr/bin/chromedriver ] || want="$want chromium-driver"
    [ -x /usr/sbin/kamailio ] && [ -x /usr/sbin/kamcmd ] || want="$want kamailio"
    [ -x /usr/sbin/nginx ] || want="$want nginx"
    ;;
esac
want=$(echo $want)
[ -z "$want" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "sysdeps: missing Debian packages: $want (run 'make sysdeps' as root)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends $want
# The packages' own services are not used: the test fixtures start private instances.
if command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now ssh postgresql kamailio nginx >/dev/null 2>&1 || true
fi
# Nor nginx's site on port 80 (started by its init script where there is no systemd).
if [ -x /etc/init.d/nginx ]; then
  /etc/init.d/nginx stop >/dev/null 2>&1 || true
fi
# Without systemd (a container) the package may have started Kamailio on 5060 through its init script.
if [ -x /etc/init.d/kamailio ]; then
  /etc/init.d/kamailio stop >/dev/null 2>&1 || true
fi
