#!/bin/sh
# Builds mod_h2x_test.so with apxs into .libs/ next to this script.
# Idempotent: does nothing when .libs/mod_h2x_test.so is newer than the
# source and was built with the same H2X_TEST_CFLAGS. APXS=/path/to/apxs
# overrides the apxs found on PATH. H2X_TEST_CFLAGS: extra compiler flags,
# also used to link (scripts/build passes mod_h2x's sanitizer flags).
set -e
cd "$(dirname "$0")"
APXS=${APXS:-apxs}
flags=${H2X_TEST_CFLAGS:-}
if [ -f .libs/mod_h2x_test.so ] && [ .libs/mod_h2x_test.so -nt mod_h2x_test.c ] \
   && [ "$(cat .libs/build-flags 2>/dev/null)" = "$flags" ]; then
    exit 0
fi
extra=
for f in $flags; do
    extra="$extra -Wc,$f -Wl,$f"
done
rm -f mod_h2x_test.lo mod_h2x_test.slo mod_h2x_test.o .libs/mod_h2x_test.o
# shellcheck disable=SC2086
"$APXS" -c -Wc,-Wall -Wc,-Wextra $extra -o mod_h2x_test.la mod_h2x_test.c
printf '%s' "$flags" > .libs/build-flags
