#!/usr/bin/env bash
# make deb: the Debian packages, built with dpkg-buildpackage (debhelper
# and dh_nginx) from a copy of the checkout under build/deb/ (git-ignored):
#
#   build/deb/libnginx-mod-http-linguamate_<version>_<arch>.deb
#   build/deb/linguamate-edge_<version>_all.deb
#
# The commit of the checkout is compiled in (LINGUAMATE_BUILD_COMMIT).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=$repo/build/deb
version=$(sed -n '1s/^[^ ]* (\([^)]*\)).*/\1/p' "$repo/debian/changelog")
src=$out/src/ngx-linguamate-${version%-*}

for tool in dpkg-buildpackage dh dh_nginx fakeroot; do
    command -v "$tool" > /dev/null \
        || { echo "deb: $tool is missing: make deps (scripts/install-deps.sh)" >&2; exit 1; }
done

commit=unknown
if git -C "$repo" rev-parse --git-dir > /dev/null 2>&1; then
    commit=$(git -C "$repo" rev-parse --short=12 HEAD)
    [ -z "$(git -C "$repo" status --porcelain --untracked-files=no)" ] \
        || commit="$commit-dirty"
fi
export LINGUAMATE_BUILD_COMMIT=${LINGUAMATE_BUILD_COMMIT:-$commit}

# the tracked and the new (not ignored) files: what a commit would hold
rm -rf "$out/src"
mkdir -p "$src"
(cd "$repo" && git ls-files -co --exclude-standard -z 2>/dev/null \
    || find . -path ./build -prune -o -path ./.git -prune -o -type f -print0) \
    | (cd "$repo" && xargs -0 cp --parents -t "$src")

(cd "$src" && dpkg-buildpackage -b -us -uc -rfakeroot) > "$out/build.log" 2>&1 || {
    tail -n 40 "$out/build.log" >&2
    echo "deb: dpkg-buildpackage failed; the whole log: $out/build.log" >&2
    exit 1
}
rm -f "$out"/*.deb "$out"/*.ddeb
mv "$out"/src/*.deb "$out/"
rm -rf "$out/src"
ls "$out"/*.deb
