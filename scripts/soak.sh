#!/usr/bin/env bash
# make soak: wrk at high load for SOAK_SECONDS (default 600) against a mix
# of the module's routes on a 2-worker nginx (loopback), sampling the RSS
# of master and workers and the zones' used bytes (/api/metrics
# linguamate_shm_zone_bytes{kind="used"}) every SOAK_SAMPLE seconds (30);
# prints every sample, before/after and the max.  Fails when the RSS of
# master+workers grows by more than SOAK_RSS_BOUND_KB (default 8192) from
# the first sample after warm-up (SOAK_WARMUP, 60 s) to the last, or any
# zone's use grows past its warm-up value by more than 10% + 64 KB.
# Not part of "make test" (docs/reliability.md).
exec "$(dirname "$0")/faults.sh" soak
