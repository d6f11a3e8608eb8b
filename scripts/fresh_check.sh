#!/usr/bin/env bash
# `make fresh-check`: prove the README's two commands on a clean machine of
# this kind. A container from the Debian 12 minbase image gets what such a
# machine ships and nothing of this project's - Python 3.11 (python3,
# python3-venv), git, make, ca-certificates from Debian, the host's Node and
# npm, and the host's CA bundle, pip and npm configuration (the registries) -
# then, as root, clones the repository's committed main and runs `make demo`
# and `make unit` there. Prints one verdict line with the times, exits non-zero
# on failure and always removes the container. Needs root (podman, debootstrap).
#   scripts/fresh_check.sh        # or: make fresh-check
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

NAME=${FRESH_CHECK_CONTAINER:-prisma-fresh-check}
IMAGE=${FRESH_CHECK_IMAGE:-${MOLECULE_BASE_IMAGE:-localhost/prisma-molecule-base:bookworm}}
BRANCH=${FRESH_CHECK_BRANCH:-main}
CLONE=/root/prisma-migrations
# runc and no default ulimits: crun fails on these machines (see the file).
export CONTAINERS_CONF=${CONTAINERS_CONF:-$REPO/molecule/resources/containers.conf}

say() { printf 'fresh-check: %s\n' "$*"; }
die() { printf 'fresh-check: ERROR: %s\n' "$*" >&2; exit 1; }
took() { if [ -n "${1:-}" ]; then printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); else printf -- '-'; fi; }
joined() { local out=$1; shift; for x in "$@"; do out+=", $x"; done; printf '%s' "$out"; }

# --- What the host must have -------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "needs root (it installs podman and builds the base image): run 'make fresh-check' as root"
# One run at a time: a second one would remove the first one's container.
exec 9>"/run/lock/$NAME.lock"
flock -n 9 || die "another fresh-check is running (it holds /run/lock/$NAME.lock): wait for it to end"
commit=$(git rev-parse --short --verify -q "refs/heads/$BRANCH") \
  || die "no branch '$BRANCH' in $REPO: commit to it, or set FRESH_CHECK_BRANCH to the branch to check"
node=$(command -v node) || die "no node on PATH: this machine kind ships Node 20; install it, or run on such a machine"
npm=$(command -v npm) || die "no npm on PATH: this machine kind ships npm with its Node; install it"
# npm-cli.js lives in <npm package>/bin/: copy the whole package.
npm_dir=$(dirname "$(dirname "$(readlink -f "$npm")")")
[ -f "$npm_dir/package.json" ] || die "cannot find npm's package from $npm (resolved to $(readlink -f "$npm")): expected <dir>/bin/npm-cli.js"
CA=/etc/ssl/certs/ca-certificates.crt
[ -s "$CA" ] || die "no CA bundle at $CA: without it the container cannot reach PyPI or npm; install ca-certificates"
# The registries' configuration, as the host's npm and pip read it.
npm_configs=()
for f in "$(npm config get globalconfig 2>/dev/null)" "$(npm config get userconfig 2>/dev/null)"; do
  [ -n "$f" ] && [ -f "$f" ] && npm_configs+=("$f")
done
pip_configs=()
[ -f /etc/pip.conf ] && pip_configs+=(/etc/pip.conf)

# --- Podman and the clean base image ------------------------------------------
t=$SECONDS
scripts/setup.sh --molecule | sed 's/^/fresh-check: /'
case "$IMAGE" in
  localhost/*) scripts/molecule_image.sh "$IMAGE" | sed 's/^/fresh-check: /' ;;
  *) podman image exists "$IMAGE" || podman pull -q "$IMAGE" >/dev/null \
       || die "cannot pull $IMAGE: unset FRESH_CHECK_IMAGE to build the local Debian 12 image instead" ;;
esac
t_image=$((SECONDS - t))

cleanup() { podman rm -f -t 0 "$NAME" >/dev/null 2>&1 || true; }
# Before the verdict, so that its total includes it: a container holding a venv
# and node_modules takes a minute to delete on a busy machine.
remove() {
  local t=$SECONDS
  say "removing $NAME"
  cleanup
  t_remove=$((SECONDS - t))
}
trap cleanup EXIT
interrupted() {
  printf 'fresh-check: FAIL: interrupted by SIG%s after %s - removing %s\n' "$1" "$(took "$SECONDS")" "$NAME" >&2
  exit "$2"
}
trap 'interrupted INT 130' INT
trap 'interrupted TERM 143' TERM
if podman container exists "$NAME"; then
  say "removing the container $NAME left by an earlier run"
  cleanup
fi

# inside SCRIPT: run a bash script in the container as root, stdin not a
# terminal, output passing through. In the background so that INT or TERM stop
# the wait at once and the EXIT trap removes the container.
inside() {
  podman exec -e LANG=C.UTF-8 -e DEBIAN_FRONTEND=noninteractive "$NAME" bash -euo pipefail -c "$1" </dev/null 9>&- &
  wait "$!"
}
step_failed() {
  local what=$1 rc=$2
  remove
  printf 'fresh-check: FAIL: %s exited %s (%s %s, %s; image %s, machine %s, clone %s, make demo %s, make unit %s, removal %s) - its output is above\n' \
    "$what" "$rc" "$BRANCH" "$commit" "$(took "$SECONDS")" "$(took "$t_image")" "$(took "${t_machine:-}")" \
    "$(took "${t_clone:-}")" "$(took "${t_demo:-}")" "$(took "${t_unit:-}")" "$(took "$t_remove")" >&2
  exit 1
}

# --- A clean machine of this kind ---------------------------------------------
t=$SECONDS
say "starting $NAME from $IMAGE (the repository mounted read-only at /src)"
podman run -d --name "$NAME" --hostname fresh-check -v "$REPO:/src:ro" "$IMAGE" \
  bash -c "trap 'exit 0' TERM; sleep infinity & wait" >/dev/null 9>&- \
  || die "podman run failed: check 'podman info' with CONTAINERS_CONF=$CONTAINERS_CONF"
say "apt-get install python3 python3-venv git make ca-certificates"
inside 'apt-get update -qq && apt-get install -y -qq --no-install-recommends python3 python3-venv git make ca-certificates >/dev/null' \
  || step_failed "apt-get install in the container" $?
# After ca-certificates, which writes its own bundle: the host's replaces it.
say "copying the host's $(joined "$node" "$npm_dir" "$CA" "${pip_configs[@]}" "${npm_configs[@]}")"
inside "mkdir -p '$(dirname "$node")' '$(dirname "$npm_dir")' /etc/ssl/certs" || step_failed "mkdir in the container" $?
copy() { podman cp "$1" "$NAME:$2" || die "podman cp $1 into $NAME:$2 failed: see the message above"; }
copy "$(readlink -f "$node")" "$node"
copy "$npm_dir" "$npm_dir"
inside "ln -sf '$npm_dir/bin/npm-cli.js' /usr/bin/npm && ln -sf '$npm_dir/bin/npx-cli.js' /usr/bin/npx" \
  || step_failed "linking npm and npx in the container" $?
copy "$CA" "$CA"
for f in "${pip_configs[@]}" "${npm_configs[@]}"; do
  inside "mkdir -p '$(dirname "$f")'" || step_failed "mkdir in the container" $?
  copy "$f" "$f"
done
# shellcheck disable=SC2016 # expanded in the container
versions=$(inside 'printf "%s, node %s, npm %s" "$(python3 --version)" "$(node --version)" "$(npm --version 2>/dev/null)"') \
  || step_failed "python3/node/npm in the container" $?
case "$versions" in
  "Python 3.11."*) say "the container has $versions" ;;
  *) die "the container's Python is not 3.11 ($versions): use a Debian 12 (bookworm) base image" ;;
esac
t_machine=$((SECONDS - t))

# --- The README's commands, as root, in a clone of the committed main ---------
t=$SECONDS
say "git clone --branch $BRANCH /src $CLONE ($commit: committed work only)"
inside "git -c safe.directory='*' clone -q --branch '$BRANCH' /src '$CLONE'" || step_failed "git clone" $?
t_clone=$((SECONDS - t))

t=$SECONDS
say "make demo"
inside "cd '$CLONE' && make demo" || step_failed "make demo" $?
t_demo=$((SECONDS - t))

t=$SECONDS
say "make unit"
inside "cd '$CLONE' && make unit" || step_failed "make unit" $?
t_unit=$((SECONDS - t))

remove
printf 'fresh-check: PASS: make demo and make unit on a clean Debian 12 container, %s %s, in %s (image %s, machine %s, clone %s, make demo %s, make unit %s, removal %s)\n' \
  "$BRANCH" "$commit" "$(took "$SECONDS")" "$(took "$t_image")" "$(took "$t_machine")" \
  "$(took "$t_clone")" "$(took "$t_demo")" "$(took "$t_unit")" "$(took "$t_remove")"
