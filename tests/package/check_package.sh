#!/usr/bin/env bash
# check_package.sh BUILD_DIR: the Debian package and the install rules, as a
# packager and an operator meet them.
#   1. `cpack -G DEB` from the build: the package holds exactly the binary,
#      the unit, the configuration and schemas (as conffiles), the manual
#      pages, README, copyright and changelog; its unit runs /usr/bin/nextactd
#      on /etc/nextactd/nextactd.conf; its dependencies name the libraries;
#      lintian reports no error.
#   2. `cmake --install BUILD --prefix P` puts everything under P and the
#      installed unit names P's binary and configuration.
#   3. nextactd.conf(5) documents every key `nextactd --dump-config` prints.
set -euo pipefail
build=$(cd "$1" && pwd)
tmp=$(mktemp -d /tmp/check_package.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then echo "ok: $what"; else echo "FAILED: $what" >&2; fail=1; fi
}

# 1. the package
(cd "$build" && cpack -G DEB -B "$tmp/deb" >"$tmp/cpack.log" 2>&1) || { cat "$tmp/cpack.log" >&2; exit 1; }
deb=$(ls "$tmp"/deb/nextactd_*.deb)
dpkg-deb -c "$deb" | awk '{print $6}' | grep -v '/$' | sort >"$tmp/contents"
cat >"$tmp/want" <<'LIST'
./etc/nextactd/nextactd.conf
./etc/nextactd/schemas/cart.avsc
./etc/nextactd/schemas/click.avsc
./etc/nextactd/schemas/event.avsc
./etc/nextactd/schemas/prediction.avsc
./etc/nextactd/schemas/purchase.avsc
./usr/bin/nextactd
./usr/lib/systemd/system/nextactd.service
./usr/share/doc/nextactd/README.md
./usr/share/doc/nextactd/changelog.gz
./usr/share/doc/nextactd/copyright
./usr/share/man/man5/nextactd.conf.5.gz
./usr/share/man/man8/nextactd.8.gz
LIST
check "package contents" diff -u "$tmp/want" "$tmp/contents"
dpkg-deb -e "$deb" "$tmp/control"
check "conffiles: the configuration and schemas" \
    diff -u <(grep '^./etc/' "$tmp/want" | sed 's#^\.##') "$tmp/control/conffiles"
check "depends on librdkafka, libavro, OpenBLAS, libconfig" \
    bash -c "dpkg-deb -f '$deb' Depends | grep -q librdkafka1 && dpkg-deb -f '$deb' Depends | grep -q libavro && dpkg-deb -f '$deb' Depends | grep -q libopenblas && dpkg-deb -f '$deb' Depends | grep -q libconfig"
dpkg-deb -x "$deb" "$tmp/root"
check "packaged unit runs /usr/bin/nextactd on /etc/nextactd/nextactd.conf" \
    grep -q '^ExecStart=/usr/bin/nextactd run -c /etc/nextactd/nextactd.conf$' \
    "$tmp/root/usr/lib/systemd/system/nextactd.service"
check "the packaged binary runs" "$tmp/root/usr/bin/nextactd" --version
if command -v lintian >/dev/null; then
    lintian --fail-on error "$deb" >"$tmp/lintian.log" 2>&1 || true
    grep -v 'running with root privileges' "$tmp/lintian.log" >&2 || true
    check "lintian: no error" bash -c "! grep -q '^E:' '$tmp/lintian.log'"
else
    echo "FAILED: lintian not installed (scripts/setup installs it)" >&2
    fail=1
fi

# 2. cmake --install --prefix
cmake --install "$build" --prefix "$tmp/p" >/dev/null
for f in bin/nextactd etc/nextactd/nextactd.conf etc/nextactd/schemas/event.avsc \
    lib/systemd/system/nextactd.service share/man/man8/nextactd.8.gz \
    share/man/man5/nextactd.conf.5.gz share/doc/nextactd/copyright; do
    check "--prefix: $f" test -e "$tmp/p/$f"
done
check "--prefix: nothing outside the prefix" test ! -e "$tmp/etc"
check "--prefix: the unit names the prefix" \
    grep -q "^ExecStart=$tmp/p/bin/nextactd run -c $tmp/p/etc/nextactd/nextactd.conf\$" \
    "$tmp/p/lib/systemd/system/nextactd.service"

# 3. the configuration page documents every key
"$build/nextactd" --man-config >"$tmp/conf.5"
# the keys of the table: a "key = {" value (a map) holds entries, not keys
"$build/nextactd" --dump-config | awk '
    inmap { if ($0 ~ /^ *};/) inmap = 0; next }
    /^ *[a-z_0-9]+ = \{ *$/ { print $1; inmap = 1; next }
    /^ *[a-z_0-9]+ = / { print $1 }' | sort -u >"$tmp/keys"
missing=0
while read -r key; do
    grep -q "^\.B .*\b$key\$" "$tmp/conf.5" || { echo "not in nextactd.conf(5): $key" >&2; missing=1; }
done <"$tmp/keys"
check "nextactd.conf(5) has every key ($(wc -l <"$tmp/keys") names)" test $missing = 0
exit $fail
