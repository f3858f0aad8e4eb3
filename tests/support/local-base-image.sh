#!/usr/bin/env bash
# Build a stand-in for the official `python:3.11-slim-bookworm` image where no image registry can
# be reached (this project's CI machines): Debian bookworm from the apt mirror, by debootstrap,
# plus this machine's own CPython under /usr/local, where the official images keep theirs.
#
#   sudo tests/support/local-base-image.sh kit-base:local      # then: docker build --build-arg BASE_IMAGE=kit-base:local ...
#
# Why not Debian's python3 package: bookworm ships 3.11.2, and the kit's pins need 3.11.5 or later
# (soupsieve, for one). Needs root (debootstrap), debootstrap and a running Docker engine.
set -euo pipefail

tag=${1:?usage: local-base-image.sh IMAGE_TAG}
python=${PYTHON:-python3}
prefix=$("$python" -c 'import sys; print(sys.base_prefix)')
version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[[ -f "$prefix/lib/libpython$version.so.1.0" ]] || {
    echo "$prefix: a CPython built with --enable-shared is needed (pyenv's, or a distribution's)" >&2
    exit 1
}

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT

# The shared libraries CPython's extension modules load: ssl, sqlite3, ctypes, lzma, bz2, curses.
debootstrap --variant=minbase \
    --include=ca-certificates,libssl3,libffi8,libsqlite3-0,libbz2-1.0,liblzma5,libreadline8,libncursesw6,libuuid1,zlib1g,libexpat1 \
    bookworm "$rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >/dev/null

# CPython without the host's installed packages, its test suite or bytecode caches.
mkdir -p "$rootfs/usr/local/bin" "$rootfs/usr/local/lib"
cp -a "$prefix/bin/python$version" "$rootfs/usr/local/bin/"
cp -a "$prefix/lib/libpython"* "$rootfs/usr/local/lib/"
tar -C "$prefix/lib" -c \
    --exclude="python$version/site-packages/*" --exclude="python$version/test" \
    --exclude="__pycache__" "python$version" | tar -C "$rootfs/usr/local/lib" -x
ln -s "python$version" "$rootfs/usr/local/bin/python3"
ln -s "python$version" "$rootfs/usr/local/bin/python"
echo /usr/local/lib >"$rootfs/etc/ld.so.conf.d/usr-local.conf"
chroot "$rootfs" ldconfig
chroot "$rootfs" python3 -c 'import ssl, sqlite3, ctypes, lzma, bz2, venv, ensurepip'

tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' - "$tag" >/dev/null
echo "$tag"
