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

# The first Debian mirror the machine itself uses (deb822 or one-line sources).
mirror=$(
  { grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources || true
    grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list || true
  } | awk '{print $2}' | grep -v -- '-security' | head -n 1 || true
)
[ -n "$mirror" ] || die "no Debian mirror in /etc/apt/sources.list*; set MOLECULE_BASE_IMAGE to an image you can pull"

rootfs=$(mktemp -d /var/tmp/molecule-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
say "debootstrap --variant=minbase bookworm from $mirror (about 30 s)"
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
  || die "debootstrap failed - see $rootfs.log"
rm -f "$rootfs.log"
# Leave apt's package cache empty, as official images do.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
say "podman import as $IMAGE"
tar -C "$rootfs" -c . | podman import --quiet --change 'CMD ["bash"]' - "$IMAGE" >/dev/null
say "built $IMAGE ($(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%d MB", $1/1000000}'))"
