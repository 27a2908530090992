#!/usr/bin/env bash
# Runs every fuzz target of the module, one after another, each for
# FUZZTIME (default 3m). The targets are found with `go test -list`, so a
# target added, renamed or moved is fuzzed without editing a list: a list
# kept by hand once went on naming a target that no longer existed, and
# `go test -fuzz` passes when its pattern matches nothing.
#
# Environment: GO (go), FUZZTIME (3m), FUZZPKGS (./...: the packages to
# search), FUZZFLAGS (more flags for each run, e.g. -parallel 2).
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
FUZZTIME=${FUZZTIME:-3m}
FUZZPKGS=${FUZZPKGS:-./...}

# `go test -list` prints a package's matching names, then its "ok" line;
# a package with no test files prints only "?" and is skipped.
list=$("$GO" test -list '^Fuzz' $FUZZPKGS)
targets=$(awk '
	/^Fuzz[A-Za-z0-9_]*$/ { names[++n] = $1; next }
	/^ok[ \t]/ { for (i = 1; i <= n; i++) print $2, names[i]; n = 0 }
' <<<"$list")
if [[ -z $targets ]]; then
	echo "fuzz.sh: no fuzz targets in $FUZZPKGS" >&2
	exit 1
fi

count=$(wc -l <<<"$targets")
echo "fuzz.sh: $count targets, $FUZZTIME each"
while read -r pkg name; do
	echo "== $name ($pkg)"
	# shellcheck disable=SC2086 # FUZZFLAGS is a list of flags
	"$GO" test -run '^$' -fuzz "^$name\$" -fuzztime "$FUZZTIME" ${FUZZFLAGS:-} "$pkg"
done <<<"$targets"
