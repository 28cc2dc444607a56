#!/bin/sh
# llamafleet's build helper, uploaded to <base>/libexec/ and run by the `build.*` operations.
#
#   llamafleet-build.sh compile CMAKE_ARGS...   configure + compile LF_TARGETS, install them as
#                                               LF_INSTALL says, stage a release, swap it in
#   llamafleet-build.sh pack                    tar the current release for the class's twins
#   llamafleet-build.sh install                 unpack a twin's copy, verify it, swap it in
#
# Inputs come as LF_* environment variables (set by llamafleet/operations/build.py). POSIX sh:
# it runs under Termux's dash as well as Debian's.
#
# Safety rules:
# - <base>/bin is a symlink to a complete release directory; it only ever changes by an atomic
#   rename of a new symlink, so a build killed at any point leaves the previous binaries and
#   their stamp in place.
# - One build at a time per device (a lock directory: mkdir is atomic everywhere, flock is not
#   installed on every phone). A lock left by a killed build is taken over once its processes
#   are gone; a build still running from an interrupted deploy is waited for, not duplicated.
# - SIGPIPE is ignored: if the controller disconnects, the build still finishes and installs.
set -u
trap '' PIPE

mode=${1:?mode}
shift

log=$LF_LOG
lock=$LF_RUN/build.lock
mkdir -p "$(dirname "$log")" "$LF_RUN" "$LF_RELEASES" || exit 1

say() {
    printf 'llamafleet: %s\n' "$*" >>"$log"
    printf 'llamafleet: %s\n' "$*" 2>/dev/null || true
}

fail() {
    status=$1
    shift
    say "$mode failed: $* (exit $status)"
    {
        echo "llamafleet: $mode failed on $LF_HOST: $*"
        echo "llamafleet: last 40 lines of $log:"
        tail -n 40 "$log"
    } >&2 2>/dev/null
    exit 1
}

alive() {
    [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null
}

take_lock() {
    announced=""
    while ! mkdir "$lock" 2>/dev/null; do
        holder=$(cat "$lock/pid" 2>/dev/null)
        worker=$(cat "$lock/worker" 2>/dev/null)
        if alive "$holder" || alive "$worker"; then
            if [ -z "$announced" ]; then
                say "waiting for an earlier build (pid $holder) to finish"
                announced=1
            fi
            sleep 3
        elif [ -z "$holder" ] && [ -z "$announced" ]; then
            # Another run may be between mkdir and writing its pid: look again shortly.
            announced=1
            sleep 2
        else
            say "taking over the lock of a build that was killed (pid ${holder:-unknown})"
            rm -rf "$lock"
        fi
    done
    echo $$ >"$lock/pid"
    trap 'rm -rf "$lock"' EXIT
    trap 'exit 143' TERM
    trap 'exit 130' INT
    trap 'exit 129' HUP
}

# Make <base>/bin point at releases/<name> with one rename, then keep only it and the one before.
swap_in() {
    release_name=$1
    base=$(dirname "$LF_BIN")
    previous=""
    if [ -L "$LF_BIN" ]; then
        previous=$(basename "$(readlink "$LF_BIN")")
    elif [ -e "$LF_BIN" ]; then
        mv "$LF_BIN" "$LF_BIN.replaced-$$" || fail $? "cannot move the old $LF_BIN aside"
    fi
    rm -f "$LF_BIN.new"
    ln -s "releases/$release_name" "$LF_BIN.new" || fail $? "cannot create the bin symlink"
    mv -T "$LF_BIN.new" "$LF_BIN" || fail $? "cannot swap the bin symlink"
    for old in "$LF_RELEASES"/* "$LF_RELEASES"/.staging-*; do
        [ -e "$old" ] || continue
        name=$(basename "$old")
        [ "$name" = "$release_name" ] || [ "$name" = "$previous" ] || rm -rf "$old"
    done
    rm -rf "$base"/bin.replaced-* 2>/dev/null
    say "installed $LF_KEY as releases/$release_name"
}

new_release_name() {
    echo "$LF_KEY-$(date +%Y%m%d%H%M%S)-$$"
}

# A binary linked against libllama/libggml from the build tree would not run on a twin.
check_self_contained() {
    command -v readelf >/dev/null 2>&1 || return 0
    needed=$(readelf -d "$1" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\].*/\1/p' | grep -E '^lib(llama|ggml|mtmd)' || true)
    if [ -n "$needed" ]; then
        fail 1 "$(basename "$1") needs $needed from the build tree: build static (BUILD_SHARED_LIBS=OFF; check llama_cmake_args)"
    fi
}

compile() {
    take_lock
    # A build tree belongs to one set of inputs: CMake keeps old cache entries and ninja trusts
    # file times (an unpacked archive keeps its old ones), so a change of inputs starts afresh.
    # The same inputs resume the tree as it is: that is how a killed build finishes.
    if [ "$(cat "$LF_BUILD/.llamafleet-key" 2>/dev/null)" != "$LF_KEY" ]; then
        rm -rf "$LF_BUILD"
    fi
    mkdir -p "$LF_BUILD" || fail $? "cannot create $LF_BUILD"
    echo "$LF_KEY" >"$LF_BUILD/.llamafleet-key"

    if command -v ccache >/dev/null 2>&1; then
        set -- "$@" -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache
    fi
    say "configure $LF_KEY ($LF_SRC)"
    cmake -S "$LF_SRC" -B "$LF_BUILD" -G Ninja \
        -DCMAKE_C_COMPILER="$LF_CC" -DCMAKE_CXX_COMPILER="$LF_CXX" "$@" >>"$log" 2>&1 \
        || fail $? "cmake configure"

    say "compile start $LF_KEY $LF_TARGETS"
    started=$(date +%s)
    # In the background so the lock records the compiler's pid too (see take_lock).
    # shellcheck disable=SC2086
    cmake --build "$LF_BUILD" --target $LF_TARGETS -j "$LF_JOBS" >>"$log" 2>&1 &
    worker=$!
    echo "$worker" >"$lock/worker"
    wait "$worker" || fail $? "compile"
    say "compile done $LF_KEY in $(( $(date +%s) - started ))s"

    release=$(new_release_name)
    stage="$LF_RELEASES/.staging-$release"
    rm -rf "$stage"
    mkdir -p "$stage" || fail $? "cannot create $stage"
    # LF_INSTALL: "target:name" pairs; the RPC server keeps one name whatever the ref calls it.
    names=""
    for pair in $LF_INSTALL; do
        target=${pair%%:*}
        name=${pair#*:}
        built="$LF_BUILD/bin/$target"
        [ -f "$built" ] || built=$(find "$LF_BUILD" -type f -name "$target" 2>/dev/null | head -n 1)
        [ -n "$built" ] && [ -f "$built" ] || fail 1 "the build produced no $target"
        cp "$built" "$stage/$name" || fail $? "cannot copy $target"
        check_self_contained "$stage/$name"
        names="$names $name"
    done
    # shellcheck disable=SC2086
    (cd "$stage" && sha256sum $names >SHA256SUMS) || fail $? "sha256sum"
    printf '%s' "$LF_STAMP" >"$stage/build-stamp.json" || fail $? "cannot write the stamp"
    mv "$stage" "$LF_RELEASES/$release" || fail $? "cannot move the release into place"
    swap_in "$release"
}

pack() {
    take_lock
    current=$(cd "$LF_BIN" 2>/dev/null && pwd -P) || fail 1 "no release installed at $LF_BIN"
    grep -q "\"class_key\": \"$LF_KEY\"" "$current/build-stamp.json" 2>/dev/null \
        || fail 1 "the installed release is not class $LF_KEY"
    (cd "$current" && sha256sum -c SHA256SUMS >/dev/null 2>&1) || fail 1 "the installed release does not match its SHA256SUMS"
    tar -czf "$LF_ARCHIVE.part" -C "$current" . || fail $? "tar"
    mv "$LF_ARCHIVE.part" "$LF_ARCHIVE" || fail $? "mv"
    say "packed $LF_KEY for the class's twins"
    sha256sum "$LF_ARCHIVE" | cut -c1-64
}

install_copy() {
    take_lock
    say "install start $LF_KEY from $LF_SOURCE_HOST"
    echo "$LF_SHA256  $LF_ARCHIVE" | sha256sum -c - >/dev/null 2>&1 || fail 1 "$LF_ARCHIVE does not match sha256 $LF_SHA256"
    name=$(new_release_name)
    stage="$LF_RELEASES/.staging-$name"
    rm -rf "$stage"
    mkdir -p "$stage" || fail $? "cannot create $stage"
    tar -xzf "$LF_ARCHIVE" -C "$stage" >>"$log" 2>&1 || fail $? "cannot unpack $LF_ARCHIVE"
    (cd "$stage" && sha256sum -c SHA256SUMS) >>"$log" 2>&1 || fail 1 "unpacked binaries do not match SHA256SUMS"
    grep -q "\"class_key\": \"$LF_KEY\"" "$stage/build-stamp.json" 2>/dev/null || fail 1 "the copy's stamp is not class $LF_KEY"
    mv "$stage" "$LF_RELEASES/$name" || fail $? "cannot move the release into place"
    swap_in "$name"
    rm -f "$LF_ARCHIVE"
}

case "$mode" in
    compile) compile "$@" ;;
    pack) pack ;;
    install) install_copy ;;
    *) echo "llamafleet-build.sh: unknown mode $mode" >&2; exit 2 ;;
esac
