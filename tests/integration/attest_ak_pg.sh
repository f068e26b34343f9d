#!/bin/bash
# attest_ak.sh with the verifier's registry on a PostgreSQL server the
# test starts itself (tests/pg.lib; skipped, counted, without PostgreSQL).
ATTEST_REGISTRY=postgresql exec "$(dirname "$0")/attest_ak.sh"
