#!/usr/bin/env bash
# Builds a .deb of locosep from an already built binary.
#
#   packaging/build-deb.sh BINARY OUT_DIR
#
# Layout (what `assets.rs` looks for in an installed package):
#   /usr/bin/locosep                                   the binary, stripped
#   /usr/share/locosep/assets/{models,demo}/          bundled model(s) and the demo song
#   /usr/share/applications/locosep.desktop            menu entry (opens audio files)
#   /usr/share/icons/hicolor/scalable/apps/locosep.svg
#   /usr/share/doc/locosep/{README.md,copyright}
set -euo pipefail
bin=${1:?usage: build-deb.sh BINARY OUT_DIR}
out=${2:?usage: build-deb.sh BINARY OUT_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

install -Dm755 "$bin" "$stage/usr/bin/locosep"
strip --strip-unneeded "$stage/usr/bin/locosep" 2>/dev/null || true
mkdir -p "$stage/usr/share/locosep/assets"
cp -r "$root/assets/models" "$root/assets/demo" "$stage/usr/share/locosep/assets/"
install -Dm644 "$root/packaging/locosep.desktop" "$stage/usr/share/applications/locosep.desktop"
install -Dm644 "$root/packaging/locosep.svg" \
  "$stage/usr/share/icons/hicolor/scalable/apps/locosep.svg"
install -Dm644 "$root/README.md" "$stage/usr/share/doc/locosep/README.md"
install -Dm644 "$root/packaging/copyright" "$stage/usr/share/doc/locosep/copyright"

size_kb=$(du -sk "$stage" | cut -f1)
mkdir -p "$stage/DEBIAN"
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size_kb/" \
  "$root/packaging/control.in" > "$stage/DEBIAN/control"
mkdir -p "$out"
deb="$out/locosep_${version}_${arch}.deb"
# Files owned by root whatever user builds the package.
# xz for releases; LOCOSEP_DEB_FAST=1 (the tests) trades size for speed.
if [ -n "${LOCOSEP_DEB_FAST:-}" ]; then compress=(-Zgzip -z1); else compress=(-Zxz); fi
dpkg-deb --root-owner-group --build "${compress[@]}" "$stage" "$deb" >/dev/null
echo "$deb"
