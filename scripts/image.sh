#!/usr/bin/env bash
# make image: the Dockerfile built with buildah (--isolation chroot) on a
# bookworm base made by debootstrap, since no image registry is needed:
#
#   build/rootfs/bookworm           debootstrap --variant=minbase (cached)
#   localhost/linguamate-base:bookworm   that root as an image
#   localhost/linguamate-edge:<version>  and :latest, from the Dockerfile
#                                        with the debs of make deb
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
root=build/rootfs/bookworm
base=localhost/linguamate-base:bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
version=$(sed -n '1s/^[^ ]* (\([^)]*\)).*/\1/p' debian/changelog)

# where overlay storage cannot work (overlay on overlay), buildah's vfs
if [ -z "${STORAGE_DRIVER:-}" ] && ! buildah info > /dev/null 2>&1; then
    export STORAGE_DRIVER=vfs
fi

ls build/deb/libnginx-mod-http-linguamate_*.deb > /dev/null 2>&1 \
    || scripts/deb.sh > /dev/null

if [ ! -f "$root/.complete" ]; then
    echo "image: debootstrap bookworm into $root" >&2
    rm -rf "$root" "$root.tmp"
    mkdir -p "$(dirname "$root")"
    debootstrap --variant=minbase bookworm "$root.tmp" "$mirror" \
        > build/rootfs/debootstrap.log 2>&1 \
        || { tail -n 20 build/rootfs/debootstrap.log >&2; exit 1; }
    mv "$root.tmp" "$root"
    touch "$root/.complete"
fi

if ! buildah inspect --type image "$base" > /dev/null 2>&1; then
    echo "image: importing $root as $base" >&2
    tar -C "$root" --numeric-owner --exclude=./.complete \
        -cf build/rootfs/bookworm.tar .
    ctr=$(buildah from scratch)
    buildah add "$ctr" build/rootfs/bookworm.tar / > /dev/null
    buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        "$ctr"
    buildah commit --rm -q "$ctr" "$base" > /dev/null
    rm -f build/rootfs/bookworm.tar
fi

# docker format: OCI images have no HEALTHCHECK
buildah bud --isolation chroot --format docker --layers=false \
    --build-arg BASE="$base" \
    -t "localhost/linguamate-edge:$version" -t localhost/linguamate-edge:latest \
    -f Dockerfile . >&2
echo "localhost/linguamate-edge:$version"
