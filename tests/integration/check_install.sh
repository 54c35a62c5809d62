#!/usr/bin/env bash
# check_install.sh - install the build into a scratch DESTDIR with prefix
# /usr, as a Debian package would, and check the tree: every file tally
# ships, a unit whose paths point at the installed files, a default
# configuration that a reinstall does not overwrite, programs that run, and
# a header and libraries a program can be built against.
#
#   check_install.sh BUILD_DIR DEST_DIR [CMAKE] [CC] [CFLAGS]
#
# CFLAGS are added when building the test program (the sanitizer flags of a
# sanitizer build).
# DEST_DIR is emptied first.  Exit status 0 when everything holds, 1 with
# one line per problem otherwise.
set -uo pipefail

usage="usage: check_install.sh BUILD_DIR DEST_DIR [CMAKE] [CC] [CFLAGS]"
build=${1:?$usage}
dest=${2:?$usage}
cmake=${3:-cmake}
cc=${4:-cc}
extra_cflags=${5:-}
src=$(cd "$(dirname "$0")/../.." && pwd)

failures=0
fail() {
    echo "check_install: $*" >&2
    failures=$((failures + 1))
}

install_tree() {
    if ! DESTDIR="$dest" "$cmake" --install "$build" --prefix /usr >"$dest.log" 2>&1; then
        cat "$dest.log" >&2
        echo "check_install: cmake --install failed" >&2
        exit 1
    fi
}

rm -rf "$dest"
mkdir -p "$dest"
install_tree

# ---- the file list ---------------------------------------------------------

expect_file() { # PATH (relative to dest): a regular file
    [ -f "$dest/$1" ] || fail "missing $1"
}
expect_exec() {
    if [ ! -f "$dest/$1" ] || [ ! -x "$dest/$1" ]; then fail "missing or not executable: $1"; fi
}
expect_man() { # SECTION NAME: plain or gzipped
    [ -f "$dest/usr/share/man/man$1/$2.$1" ] || [ -f "$dest/usr/share/man/man$1/$2.$1.gz" ] ||
        fail "missing man page usr/share/man/man$1/$2.$1[.gz]"
}

expect_exec usr/sbin/tallyd
expect_exec usr/bin/tally
expect_file usr/include/tally.h
expect_file usr/include/tally_error.h
expect_file usr/lib/systemd/system/tallyd.service
expect_file etc/tallyd/tallyd.conf
expect_file etc/tallyd/tallyd.conf.example
expect_file usr/share/tally/tally.rules.yml
expect_man 1 tally
expect_man 8 tallyd
expect_man 5 tallyd.conf

# The library directory: usr/lib, or usr/lib/<multiarch> when the build was
# configured with prefix /usr.
so=$(find "$dest/usr/lib" -maxdepth 2 -name 'libtally.so' -print -quit)
if [ -z "$so" ]; then
    fail "missing usr/lib[/<multiarch>]/libtally.so"
    libdir=$dest/usr/lib
else
    libdir=$(dirname "$so")
    rel=${libdir#"$dest"/}
    [ -L "$so" ] || fail "$rel/libtally.so is not a symlink (to the versioned library)"
    [ -L "$libdir/libtally.so.1" ] || fail "missing $rel/libtally.so.1 (the soname link)"
    [ -n "$(find "$libdir" -maxdepth 1 -type f -name 'libtally.so.1.*')" ] ||
        fail "missing $rel/libtally.so.1.X.Y"
    expect_file "$rel/libtally.a"
    expect_file "$rel/pkgconfig/libtally.pc"
fi

# ---- the unit points at what was installed ----------------------------------

unit=$dest/usr/lib/systemd/system/tallyd.service
if [ -f "$unit" ]; then
    grep -v '^#' "$unit" | grep -qE '@[A-Za-z_]+@' &&
        fail "tallyd.service has unsubstituted @VARIABLES@"
    exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
    [ "$exec_start" = "/usr/sbin/tallyd --config /etc/tallyd/tallyd.conf" ] ||
        fail "tallyd.service: ExecStart=$exec_start (expected /usr/sbin/tallyd --config /etc/tallyd/tallyd.conf)"
    grep -qx 'Type=notify' "$unit" || fail "tallyd.service is not Type=notify"
    grep -qx 'StateDirectory=tallyd' "$unit" || fail "tallyd.service has no StateDirectory=tallyd"
fi

# ---- the configuration -----------------------------------------------------

conf=$dest/etc/tallyd/tallyd.conf
example=$dest/etc/tallyd/tallyd.conf.example
cmp -s "$example" "$src/systemd/tallyd.conf.example" ||
    fail "etc/tallyd/tallyd.conf.example differs from systemd/tallyd.conf.example"
cmp -s "$conf" "$example" || fail "a fresh etc/tallyd/tallyd.conf is not the example"

# A reinstall (an upgrade) keeps the site's configuration and refreshes the
# example.
if [ -f "$conf" ] && [ -f "$example" ]; then
    echo "; edited by the site" >>"$conf"
    echo "; stale" >>"$example"
    install_tree
    tail -n 1 "$conf" | grep -qx '; edited by the site' ||
        fail "a reinstall overwrote etc/tallyd/tallyd.conf"
    cmp -s "$example" "$src/systemd/tallyd.conf.example" ||
        fail "a reinstall did not refresh etc/tallyd/tallyd.conf.example"
    grep -q 'Keeping:.*tallyd.conf' "$dest.log" ||
        fail "a reinstall did not say it kept etc/tallyd/tallyd.conf"
fi

# ---- the programs run --------------------------------------------------------

if [ -x "$dest/usr/sbin/tallyd" ]; then
    out=$("$dest/usr/sbin/tallyd" --version 2>&1) || fail "installed tallyd --version failed: $out"
    [[ $out == "tallyd "* ]] || fail "installed tallyd --version printed '$out'"
    # The man pages' footers name the version the programs print (they
    # said 0.1.0 after 0.2.0 shipped).
    version=$(printf '%s\n' "$out" | awk '{print $2}')
    for page in man1/tally.1 man8/tallyd.8 man5/tallyd.conf.5; do
        grep -q "^\.TH .*\"tally $version\"" "$dest/usr/share/man/$page" ||
            fail "usr/share/man/$page does not name tally $version in its .TH line"
    done
    out=$("$dest/usr/sbin/tallyd" --check-config "$example" 2>&1) ||
        fail "installed tallyd rejects the installed example: $out"
fi
if [ -x "$dest/usr/bin/tally" ]; then
    out=$("$dest/usr/bin/tally" --version 2>&1) || fail "installed tally --version failed: $out"
    [[ $out == "tally "* ]] || fail "installed tally --version printed '$out'"
fi

# ---- a program builds against the installed header and libraries ------------

pc_dir=$libdir/pkgconfig
if [ -f "$pc_dir/libtally.pc" ] && command -v pkg-config >/dev/null; then
    work=$dest.cc
    rm -rf "$work"
    mkdir -p "$work"
    cat >"$work/use.c" <<'EOF'
#include <stdio.h>
#include <string.h>
#include <tally.h>
#include <tally_error.h>
int main(void)
{
    printf("%s %s\n", tally_version(), tally_errname(TALLY_EUNKMETRIC));
    return strcmp(tally_errname(TALLY_EUNKMETRIC), "UNKNOWN_METRIC") != 0;
}
EOF
    # The .pc file must name the prefix it was installed under (or find it
    # from its own place, with ${pcfiledir}); then pkg-config finds the
    # staged files with the DESTDIR as the sysroot.
    pcfile=$pc_dir/libtally.pc
    pc_prefix=$(sed -n 's/^prefix=//p' "$pcfile")
    pc_ok=1
    if grep -q 'pcfiledir' "$pcfile"; then
        pc() { PKG_CONFIG_PATH=$pc_dir pkg-config "$@" libtally; }
    elif [ "$pc_prefix" = /usr ]; then
        pc() { PKG_CONFIG_SYSROOT_DIR=$dest PKG_CONFIG_PATH=$pc_dir pkg-config "$@" libtally; }
    else
        fail "libtally.pc says prefix=$pc_prefix, but it was installed with prefix /usr" \
            "(a program cannot be built with it; not tried)"
        pc_ok=0
    fi
    if [ "$pc_ok" -eq 0 ]; then
        :
    elif ! flags=$(pc --cflags --libs 2>&1); then
        fail "pkg-config libtally: $flags"
    else
        # shellcheck disable=SC2086
        if ! out=$("$cc" $extra_cflags -o "$work/use-shared" "$work/use.c" $flags 2>&1); then
            fail "cannot build against the installed libtally.so: $out"
        elif ! out=$(LD_LIBRARY_PATH=$libdir "$work/use-shared" 2>&1); then
            fail "a program using the installed libtally.so failed: $out"
        elif [[ $out != *" UNKNOWN_METRIC" ]]; then
            fail "a program using the installed libtally.so printed '$out'"
        fi
        # The static library carries the codec: with it and what the .pc
        # file's private requirements name (libzmq, libsodium, libm,
        # threads; not msgpack, whose inline functions the codec compiled
        # in) a program links.  (Not `pkg-config --static`: Debian's
        # libzmq.pc names a libprotokit.a that is not installed.)
        cflags=$(pc --cflags)
        deps="$(pkg-config --libs libzmq libsodium) -lm -pthread"
        if ! grep -q '^Requires.private: libzmq libsodium$' "$pcfile"; then
            fail "libtally.pc's private requirements: $(grep Requires "$pcfile")"
        fi
        # shellcheck disable=SC2086
        if ! out=$("$cc" $extra_cflags -o "$work/use-static" "$work/use.c" $cflags \
            "$libdir/libtally.a" $deps 2>&1); then
            fail "cannot build against the installed libtally.a: $out"
        elif ! out=$("$work/use-static" 2>&1); then
            fail "a program using the installed libtally.a failed: $out"
        fi
        # Only tally_* is global in it, as in the shared library: a program
        # with functions of the library's internal names links.
        if command -v nm >/dev/null; then
            others=$(nm -g --defined-only "$libdir/libtally.a" 2>/dev/null |
                awk 'NF == 3 && $3 !~ /^tally_/ {print $3}' | head -5)
            [ -z "$others" ] || fail "libtally.a defines global symbols beside tally_*: $others"
        fi
        # (tally_client_new pulls in the library's spool.o and text.o.)
        cat >"$work/clash.c" <<'EOF'
#include <stddef.h>
#include <tally.h>
int spool_open(void) { return 0; }
int text_copy(void) { return 0; }
int main(void)
{
    int (*volatile make)(const char *, const char *, const tally_client_opts_t *,
                         tally_client_t **) = tally_client_new;
    return make == NULL || spool_open() != 0 || text_copy() != 0;
}
EOF
        # shellcheck disable=SC2086
        if ! out=$("$cc" $extra_cflags -o "$work/clash" "$work/clash.c" $cflags \
            "$libdir/libtally.a" $deps 2>&1); then
            fail "a program with a function spool_open cannot link libtally.a: $out"
        elif ! out=$("$work/clash" 2>&1); then
            fail "a program with a function spool_open, linked with libtally.a, failed: $out"
        fi
        # A C++ program: the headers' declarations have C linkage,
        # tally_error.h's too.
        if command -v c++ >/dev/null; then
            cp "$work/use.c" "$work/use.cpp"
            # shellcheck disable=SC2086
            if ! out=$(c++ $extra_cflags -o "$work/use-cxx" "$work/use.cpp" $flags 2>&1); then
                fail "a C++ program cannot build against the installed libtally.so: $out"
            elif ! out=$(LD_LIBRARY_PATH=$libdir "$work/use-cxx" 2>&1); then
                fail "a C++ program using the installed libtally.so failed: $out"
            fi
        fi
    fi
fi

if [ "$failures" -gt 0 ]; then
    echo "check_install: $failures problem(s) in the tree installed in $dest" >&2
    exit 1
fi
echo "check_install: the tree installed in $dest is complete"
