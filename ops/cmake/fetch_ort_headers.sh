#!/bin/sh
# Fetch onnxruntime's C/C++ API headers (Debian trixie's libonnxruntime-dev, 1.21) into <destdir>.
#
# The onnxruntime wheel on PyPI ships no headers, and the headers must not live in the repository,
# so the build downloads the Debian package once. apt runs with a private sources list, lists and
# cache under <destdir>; the system's apt configuration and state are never read or written.
# On success the headers are in <destdir>/x/usr/include/onnxruntime.
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 <destdir>" >&2
    exit 2
fi
mkdir -p "$1"
D=$(cd "$1" && pwd)
HEADERS="$D/x/usr/include/onnxruntime"

if [ -f "$HEADERS/onnxruntime_c_api.h" ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg >/dev/null 2>&1; then
    echo "fetch_ort_headers: apt-get and dpkg are needed to download libonnxruntime-dev;" \
         "install onnxruntime's headers and pass -DONNXRUNTIME_INCLUDE_DIR=<dir> instead" >&2
    exit 1
fi
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
if [ ! -f "$KEYRING" ]; then
    echo "fetch_ort_headers: $KEYRING is missing (package debian-archive-keyring);" \
         "or pass -DONNXRUNTIME_INCLUDE_DIR=<dir>" >&2
    exit 1
fi

mkdir -p "$D/lists/partial" "$D/cache/archives/partial" "$D/etc"
echo "deb [signed-by=$KEYRING] http://deb.debian.org/debian trixie main" > "$D/etc/sources.list"
set -- -o "Dir::Etc::SourceList=$D/etc/sources.list" -o Dir::Etc::SourceParts=/dev/null \
       -o "Dir::State::Lists=$D/lists" -o "Dir::Cache=$D/cache" -o Debug::NoLocking=1

apt-get "$@" -q update >&2
rm -f "$D"/libonnxruntime-dev_*.deb
(cd "$D" && apt-get "$@" -q download libonnxruntime-dev >&2)
rm -rf "$D/x"
for deb in "$D"/libonnxruntime-dev_*.deb; do
    dpkg -x "$deb" "$D/x"
done
# Keep the unpacked headers and the .deb; the package lists are large and no longer needed.
rm -rf "$D/lists" "$D/cache"
if [ ! -f "$HEADERS/onnxruntime_c_api.h" ]; then
    echo "fetch_ort_headers: the package did not contain $HEADERS/onnxruntime_c_api.h" >&2
    exit 1
fi
