#!/bin/sh
# check_layout.sh SOURCE_DIR: README.md's Layout section names every room of
# daemon/, features/ and model/ (each .c/.h file stem; the private _int.h
# headers go with their module), so the map a newcomer reads cannot fall
# behind the tree. Exit 1 naming each stem the section does not mention.
set -eu
src=$1
layout=$(awk '/^## Layout/ {on = 1; next} /^## / {on = 0} on' "$src/README.md")
[ -n "$layout" ] || { echo "README.md: no ## Layout section" >&2; exit 1; }
missing=0
for f in "$src"/daemon/*.[ch] "$src"/features/*.[ch] "$src"/model/*.[ch]; do
    stem=$(basename "$f"); stem=${stem%.*}
    case $stem in *_int) continue ;; esac
    if ! printf '%s\n' "$layout" | grep -qw -- "$stem"; then
        echo "README.md Layout does not name ${f#"$src"/} ($stem)" >&2
        missing=1
    fi
done
exit $missing
