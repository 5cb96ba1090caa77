#!/bin/sh
# The alerting rules (conf/prometheus/nextactd.rules.yml): promtool check
# rules, then promtool test rules on tests/prometheus/nextactd.rules.test.yml
# (each alert fires on one series and not on a near miss).
# usage: check_rules.sh SOURCE_DIR
set -eu
src=$1
if ! command -v promtool >/dev/null 2>&1; then
    echo "check_rules: promtool is missing: run scripts/setup (Debian's prometheus package)" >&2
    exit 1
fi
promtool check rules "$src/conf/prometheus/nextactd.rules.yml"
promtool test rules "$src/tests/prometheus/nextactd.rules.test.yml"
