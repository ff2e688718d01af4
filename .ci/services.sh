#!/usr/bin/env bash
# Start the local services the tests talk to, when the machine has not already.
# PostgreSQL (127.0.0.1:5432, trust auth, database `test`): dlt SQL-source tests.
set -uo pipefail
if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -h 127.0.0.1 -p 5432 -q; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432 || echo "warning: PostgreSQL is not reachable; SQL-source tests will fail"
# MariaDB (127.0.0.1:3306, root without a password): dlt MariaDB-source tests.
if command -v mariadb-admin >/dev/null 2>&1 && ! mariadb-admin -h 127.0.0.1 -u root ping >/dev/null 2>&1; then
    echo "starting MariaDB"
    SUDO=""
    if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
    ($SUDO service mariadb start || $SUDO mysqld_safe --bind-address=127.0.0.1 >/dev/null 2>&1 &) || true
    for _ in $(seq 1 30); do mariadb-admin -h 127.0.0.1 -u root ping >/dev/null 2>&1 && break; sleep 1; done
fi
command -v mariadb-admin >/dev/null 2>&1 && { mariadb-admin -h 127.0.0.1 -u root ping >/dev/null 2>&1 \
    || echo "warning: MariaDB is not reachable; MariaDB-source tests will fail"; }
# Redis (127.0.0.1:6379): the serving plugin's shared rate-limit test.
if command -v redis-cli >/dev/null 2>&1 && ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
    echo "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
fi
# Prometheus and promtool (Debian's `prometheus` package): the opsloop-prometheus tests run
# `promtool check/test rules` and start their own Prometheus on a loopback port. Installed
# only when missing; the package's own service is not started (policy-rc.d answers 101).
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
    echo "installing prometheus (binary and promtool)"
    SUDO=""
    if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
    POLICY=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        POLICY=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null && $SUDO chmod +x "$POLICY"
    fi
    $SUDO apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus \
        || echo "warning: could not install prometheus; the opsloop-prometheus tests will fail"
    if [ -n "$POLICY" ]; then $SUDO rm -f "$POLICY"; fi
    # a systemd machine may have started the packaged service anyway: it is not ours to keep
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
        $SUDO systemctl disable --now prometheus || true
    fi
fi
# Chromium and its WebDriver (Debian's `chromium`, `chromium-driver`): the opsloop-jupyter
# browser test drives JupyterLab with Selenium pointed at /usr/bin/chromium and
# /usr/bin/chromedriver (nothing is downloaded at test time). Installed only when missing.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    echo "installing chromium and chromium-driver"
    SUDO=""
    if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
    $SUDO apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        chromium chromium-driver \
        || echo "warning: could not install chromium; the JupyterLab browser test will fail"
fi
# Alertmanager and amtool (Debian's `prometheus-alertmanager` package): the respond stage's
# webhook receiver test starts its own Alertmanager on a loopback port with a temp config.
# Installed only when missing; the package's own service is not started (policy-rc.d: 101).
if ! command -v prometheus-alertmanager >/dev/null 2>&1 || ! command -v amtool >/dev/null 2>&1; then
    echo "installing prometheus-alertmanager (binary and amtool)"
    SUDO=""
    if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
    POLICY=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        POLICY=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null && $SUDO chmod +x "$POLICY"
    fi
    $SUDO apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        prometheus-alertmanager \
        || echo "warning: could not install prometheus-alertmanager; the Alertmanager test will fail"
    if [ -n "$POLICY" ]; then $SUDO rm -f "$POLICY"; fi
    if command -v systemctl >/dev/null 2>&1 \
        && systemctl is-active --quiet prometheus-alertmanager 2>/dev/null; then
        $SUDO systemctl disable --now prometheus-alertmanager || true
    fi
fi
exit 0
