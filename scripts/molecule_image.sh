#!/usr/bin/env bash
# Build the molecule base image locally when no registry is reachable:
# Debian 12 minbase from the machine's own Debian mirror, imported into podman.
# Cached: does nothing when the image already exists. Usage:
#   scripts/molecule_image.sh localhost/prisma-molecule-base:bookworm
set -euo pipefail

IMAGE=${1:?usage: $0 IMAGE}
say() { printf 'molecule-image: %s\n' "$*"; }
die() { printf 'molecule-image: ERROR: %s\n' "$*" >&2; exit 1; }

if podman image exists "$IMAGE"; then
  say "$IMAGE is cached"
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
