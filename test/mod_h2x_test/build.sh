#!/bin/sh
# Builds mod_h2x_test.so with apxs into .libs/ next to this script.
# Idempotent: does nothing when .libs/mod_h2x_test.so is newer than the
# source. APXS=/path/to/apxs overrides the apxs found on PATH.
set -e
cd "$(dirname "$0")"
APXS=${APXS:-apxs}
if [ -f .libs/mod_h2x_test.so ] && [ .libs/mod_h2x_test.so -nt mod_h2x_test.c ]; then
    exit 0
fi
"$APXS" -c -Wc,-Wall -Wc,-Wextra -o mod_h2x_test.la mod_h2x_test.c
