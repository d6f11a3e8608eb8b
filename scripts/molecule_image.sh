#!/usr/bin/env bash
# Build the molecule images locally when no registry is reachable:
#  - IMAGE: Debian 12 minbase from the machine's own Debian mirror, imported
#    into podman (also the bare Debian of scripts/fresh_check.sh: nothing added);
#  - STAGING (optional): IMAGE plus the Debian packages the scenarios' prepare
#    installs (python3, PostgreSQL 15 and its client), so that three scenarios
#    do not each spend half a minute in apt. prepare.yml still installs them
#    when they are missing (any other image), so this is a cache, never a need.
# Cached: an image that exists is not built again (podman rmi it to rebuild). Usage:
#   scripts/molecule_image.sh localhost/prisma-molecule-base:bookworm [localhost/prisma-molecule-staging:bookworm]
set -euo pipefail

IMAGE=${1:?usage: $0 IMAGE [STAGING_IMAGE]}
STAGING=${2:-}
# The union of molecule/resources/prepare.yml's two package lists.
STAGING_PACKAGES="python3 postgresql-15 postgresql-client-15"
say() { printf 'molecule-image: %s\n' "$*"; }
die() { printf 'molecule-image: ERROR: %s\n' "$*" >&2; exit 1; }

build_staging() {
  [ -n "$STAGING" ] || return 0
  if podman image exists "$STAGING"; then
    say "$STAGING is cached"
    return 0
  fi
  say "$STAGING: $IMAGE with $STAGING_PACKAGES (about 45 s)"
  local context status=0
  context=$(mktemp -d /var/tmp/molecule-staging.XXXXXX)  # empty: nothing of the repository is sent
  printf 'FROM %s\nRUN apt-get update -qq && LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends %s >/dev/null && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb\n' \
    "$IMAGE" "$STAGING_PACKAGES" >"$context/Containerfile"
  podman build --quiet --tag "$STAGING" "$context" >/dev/null || status=$?
  rm -rf "$context"
  [ "$status" -eq 0 ] \
    || die "podman build of $STAGING failed (exit $status) - run 'make molecule-image' again, or set MOLECULE_IMAGE=$IMAGE to let prepare install the packages"
  say "built $STAGING"
}

if podman image exists "$IMAGE"; then
  say "$IMAGE is cached"
  build_staging
  exit 0
fi
[ "$(id -u)" -eq 0 ] || die "debootstrap needs root - run 'make molecule' as root, or set MOLECULE_BASE_IMAGE to an image you can pull"

# The Debian mirror: MOLECULE_DEBIAN_MIRROR, else the one the machine itself
# uses for bookworm (deb822 .sources stanzas or one-line .list entries).
mirror=${MOLECULE_DEBIAN_MIRROR:-$(
  { awk 'BEGIN { RS = ""; FS = "\n" }
         /(^|\n)Suites:[^\n]*[[:space:]]bookworm([[:space:]]|$)/ {
           for (i = 1; i <= NF; i++) if ($i ~ /^URIs:/) { split($i, u, /[[:space:]]+/); print u[2] } }' \
      /etc/apt/sources.list.d/*.sources 2>/dev/null || true
    sed -E -n 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+)[[:space:]]+bookworm[[:space:]].*/\2/p' \
      /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true
  } | head -n 1
)}
[ -n "$mirror" ] || die "no Debian bookworm mirror in /etc/apt/sources.list*: set MOLECULE_DEBIAN_MIRROR, or MOLECULE_BASE_IMAGE to an image you can pull"

rootfs=$(mktemp -d /var/tmp/molecule-rootfs.XXXXXX)
# debootstrap may leave /proc or /dev mounted inside when interrupted: never
# delete through a mount.
cleanup() {
  grep -o " $rootfs/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf --one-file-system "$rootfs"
}
trap cleanup EXIT
say "debootstrap --variant=minbase bookworm from $mirror (about 30 s)"
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
  || die "debootstrap failed - see $rootfs.log"
rm -f "$rootfs.log"
# Leave apt's package cache empty, as official images do.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
say "podman import as $IMAGE"
tar -C "$rootfs" -c . | podman import --quiet --change 'CMD ["bash"]' - "$IMAGE" >/dev/null
say "built $IMAGE ($(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%d MB", $1/1000000}'))"
build_staging
