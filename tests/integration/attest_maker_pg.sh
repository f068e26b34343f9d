#!/bin/bash
# attest_maker.sh (maker CA, quotes, nonces, reference PCRs) with the
# verifier's registry on a PostgreSQL server the test starts itself
# (tests/pg.lib; skipped, counted, without PostgreSQL).
ATTEST_REGISTRY=postgresql exec "$(dirname "$0")/attest_maker.sh"
