#!/usr/bin/env bash
# Installs Ceph's monitor, OSD and RADOS Gateway from Debian's packages, for the
# S3 backend's tests (scripts/s3-test-cluster.sh). Does nothing when they are
# already there; exits non-zero when they cannot be installed (not root, no apt),
# in which case the S3 tests skip with a visible reason.
set -euo pipefail
if command -v radosgw >/dev/null && command -v ceph-mon >/dev/null && command -v ceph-osd >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "install-s3-deps: need root and apt-get to install ceph-mon ceph-osd radosgw" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends ceph-mon ceph-osd radosgw >/dev/null
