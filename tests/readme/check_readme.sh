#!/usr/bin/env bash
# check_readme.sh SOURCE_DIR BUILD_DIR: runs every ```sh block of README.md, in
# order, so that the README cannot drift from the code.
#
# - The blocks run in a scratch copy of the source tree whose build/ is
#   BUILD_DIR (and BUILD_DIR is first on PATH, so `nextactd` works too), each
#   under `bash -e -o pipefail`, in a session of its own, with a time limit
#   (NX_README_BLOCK_TIMEOUT seconds, default 120); whatever a block leaves
#   running is killed after it.
# - A block whose first line is `# readme-test: skip (WHY)` is not run; its
#   line and reason are printed. Keep those few: setting up a fresh machine,
#   running the whole suite, downloads.
# - Addresses: the README shows the broker as 127.0.0.1:39092 and the metrics
#   endpoint as 127.0.0.1:9464; they are rewritten to 127.0.0.1:$NX_KAFKA_PORT
#   (the ctest kafka fixture's broker) and a free loopback port. Any other
#   address in a block that is not loopback fails the test.
# - `scripts/kafka stop` in a block does nothing here: the broker belongs to
#   the fixture (kafka_stop stops it).
# Exit 0 if every block that is run exits 0; otherwise each failed block is
# named by its README line and first command.
set -euo pipefail
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
port=${NX_KAFKA_PORT:-39092}
limit=${NX_README_BLOCK_TIMEOUT:-120}
readme=$src/README.md

tmp=$(mktemp -d /tmp/check_readme.XXXXXX)
group=
cleanup() {
    if [ -n "$group" ]; then kill -KILL -- "-$group" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# The scratch tree: the sources (no build directories, no .git), build/ ->
# BUILD_DIR, scripts/kafka that leaves the fixture's broker running.
tree=$tmp/tree
mkdir "$tree"
for e in "$src"/* "$src"/.[!.]*; do
    [ -e "$e" ] || continue
    case ${e##*/} in build | build-* | .git) continue ;; esac
    cp -a "$e" "$tree/"
done
ln -s "$build" "$tree/build"
cat >"$tree/scripts/kafka" <<WRAP
#!/usr/bin/env bash
# check_readme.sh: the broker is ctest's kafka fixture's; it stops it.
if [ "\${1:-}" = stop ]; then
    echo "(readme test: 'scripts/kafka stop' left to the kafka fixture)" >&2
    exit 0
fi
exec "$src/scripts/kafka" "\$@"
WRAP
chmod +x "$tree/scripts/kafka"

metrics_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# Extract the blocks: block-N.sh, with block-N.line (README line of the fence).
awk -v dir="$tmp" '
    /^```sh[[:space:]]*$/ && !inb { inb = 1; n++; f = dir "/block-" n ".sh";
                                    print NR > (dir "/block-" n ".line"); printf "" > f; next }
    /^```[[:space:]]*$/ && inb    { inb = 0; close(f); next }
    inb                           { print > f }
    END { if (inb) { print "README.md: unterminated ```sh block at the end" > "/dev/stderr"; exit 1 } }
' "$readme"
blocks=$(find "$tmp" -maxdepth 1 -name 'block-*.sh' | wc -l)
if [ "$blocks" -eq 0 ]; then
    echo "FAILED: README.md has no \`\`\`sh block" >&2
    exit 1
fi

export NX_KAFKA_PORT=$port
export PATH=$build:$PATH
failed=()
ran=0
skipped=0
for n in $(seq 1 "$blocks"); do
    f=$tmp/block-$n.sh
    line=$(cat "$tmp/block-$n.line")
    first=$(grep -m1 -v '^[[:space:]]*\(#.*\)\?$' "$f" || true)
    first=${first%%  #*}
    first=${first%"${first##*[![:space:]]}"}
    name="block $n (README.md line $line: ${first:0:70})"
    head1=$(head -n1 "$f")
    if [[ $head1 =~ ^#\ readme-test:\ skip ]]; then
        if ! [[ $head1 =~ ^#\ readme-test:\ skip\ \(.+\)$ ]]; then
            echo "FAILED: $name: a skip needs its reason, '# readme-test: skip (why)'" >&2
            failed+=("$name: skip without a reason")
            continue
        fi
        echo "skipped $name: ${head1#\# readme-test: skip }"
        skipped=$((skipped + 1))
        continue
    fi
    sed -i -e "s/127\.0\.0\.1:39092/127.0.0.1:$port/g" \
        -e "s/127\.0\.0\.1:9464/127.0.0.1:$metrics_port/g" "$f"
    # Loopback only: every IPv4 address and URL host must be 127.x or localhost.
    bad=$(grep -oE '([0-9]{1,3}\.){3}[0-9]{1,3}|://[^/:[:space:]]+' "$f" |
        grep -vE '^127\.|^://(127\.|localhost$)' || true)
    if [ -n "$bad" ]; then
        echo "FAILED: $name names a non-loopback address: $(echo $bad)" >&2
        failed+=("$name: non-loopback address")
        continue
    fi
    echo "== $name"
    ran=$((ran + 1))
    # A session of its own (setsid), so that the block and whatever it
    # started in the background are one process group, killed after it;
    # timeout signals that whole group when the block runs too long.
    rc=0
    (cd "$tree" && exec setsid timeout -k 5 "$limit" bash -e -o pipefail "$f") \
        >"$tmp/out-$n" 2>&1 </dev/null &
    group=$!
    wait "$group" || rc=$?
    kill -KILL -- "-$group" 2>/dev/null || true
    group=
    sed 's/^/    /' "$tmp/out-$n" | tail -n 40
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        echo "FAILED: $name: timed out after $limit s" >&2
        failed+=("$name: timed out after $limit s")
    elif [ "$rc" -ne 0 ]; then
        echo "FAILED: $name: exit status $rc" >&2
        failed+=("$name: exit status $rc")
    fi
done

echo "README.md: $blocks blocks, $ran run, $skipped skipped, ${#failed[@]} failed"
if [ ${#failed[@]} -gt 0 ]; then
    printf 'FAILED: %s\n' "${failed[@]}" >&2
    exit 1
fi
