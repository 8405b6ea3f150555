#!/usr/bin/env bash
# A real S3 server for the S3 backend's tests: a single-host Ceph cluster (one
# monitor, one memstore OSD) with one RADOS Gateway per requested port, on
# 127.0.0.1, from Debian's packages (ceph-mon ceph-osd radosgw), without systemd.
#
#   s3-test-cluster.sh start DIR MON_PORT RGW_PORT [RGW_PORT...]
#       a port written tls:PORT serves https, with DIR/tls/cert.pem (self-signed
#       for 127.0.0.1; from $S3_TLS_CERT/$S3_TLS_KEY if set, else made by openssl)
#   s3-test-cluster.sh kill-gateway DIR N      # take gateway N (1-based) away (SIGKILL)
#   s3-test-cluster.sh restart-gateway DIR N   # bring it back (same port, same data)
#   s3-test-cluster.sh stop DIR                # stop everything started in DIR
#
# Each gateway is an independent S3 node: gateway N serves its own
# realm/zonegroup/zone "rN/zgN/zN" (pools zN.rgw.*), so each has its own users
# and buckets (an empty namespace) and costs ~35 MB instead of a whole cluster. Each gateway has its own pid file (DIR/run/client.rgwN.pid), so a
# test takes one node away by killing that process. Memstore keeps objects in
# the OSD's memory: they are lost when the OSD dies (fine for tests).
#
# On success, DIR/gateways.tsv holds one line per gateway:
#   N <TAB> http(s)://127.0.0.1:PORT <TAB> ACCESS_KEY <TAB> SECRET_KEY <TAB> PID_FILE
# and the same lines are printed on stdout. On failure the script stops what it
# started, prints the tail of the relevant log on stderr and exits non-zero.
set -euo pipefail

DEADLINE_SECS=${S3_CLUSTER_DEADLINE:-90}

die() { echo "s3-test-cluster: $*" >&2; exit 1; }

usage() {
  sed -n '2,13p' "$0" >&2
  exit 2
}

# Milliseconds since the epoch, from bash itself (no bc or date forks).
now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }
elapsed() { local ms=$(($(now_ms) - $1)); printf '%d.%03d' $((ms / 1000)) $((ms % 1000)); }

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.1 s until it
# succeeds; fail with DESCRIPTION when SECONDS pass.
wait_for() {
  local secs=$1 what=$2; shift 2
  local end=$(($(now_ms) + secs * 1000))
  until "$@" >/dev/null 2>&1; do
    if (($(now_ms) > end)); then
      echo "s3-test-cluster: timed out after ${secs}s waiting for $what" >&2
      return 1
    fi
    sleep 0.1
  done
}


# True once PID has exited. A killed daemon stays a zombie until init reaps
# it (over a second here), but it has closed its sockets by then: count
# zombies as gone.
pid_gone() {
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 0
  [ -z "$state" ] || [ "$state" = Z ]
}

# pid_alive PID_FILE: the process named in PID_FILE is running.
pid_alive() { [ -s "$1" ] && ! pid_gone "$(cat "$1")"; }

# spawn DIR NAME COMMAND...: run a daemon in the foreground (-f) as a
# background job, its pid file written by us at once. (Daemonizing would
# write the pid file only after a fork, so a failed start could leave a
# daemon that stop cannot find.) No standard stream stays attached: the
# caller may be reading our stdout to its end.
spawn() {
  local d=$1 name=$2; shift 2
  "$@" -f </dev/null >>"$d/log/$name.out" 2>&1 &
  echo $! >"$d/run/$name.pid"
}

# wait_up SECONDS WHAT PID_FILE COMMAND...: like wait_for, but give up as soon
# as the daemon in PID_FILE has died (a taken port, a bad option).
wait_up() {
  local secs=$1 what=$2 pid_file=$3; shift 3
  local end=$(($(now_ms) + secs * 1000))
  until "$@" >/dev/null 2>&1; do
    if ! pid_alive "$pid_file"; then
      echo "s3-test-cluster: $what: the process exited" >&2
      return 1
    fi
    if (($(now_ms) > end)); then
      echo "s3-test-cluster: timed out after ${secs}s waiting for $what" >&2
      return 1
    fi
    sleep 0.1
  done
}

# Stop every daemon whose pid file is in DIR/run. SIGKILL: nothing in a test
# cluster is worth keeping (memstore), and a memstore OSD lingers for seconds
# on SIGTERM once its monitor is gone. Waits until every process is gone.
stop_dir() {
  local d=$1 f pid pids=()
  [ -d "$d/run" ] || return 0
  for f in "$d"/run/*.pid; do
    [ -s "$f" ] || continue
    pid=$(cat "$f")
    kill -KILL "$pid" 2>/dev/null && pids+=("$pid")
  done
  for pid in "${pids[@]}"; do
    wait_for 10 "pid $pid to exit" pid_gone "$pid" || true
  done
  rm -f "$d"/run/*.pid
}

require_binaries() {
  local missing=() b
  for b in ceph-mon ceph-osd radosgw radosgw-admin ceph rados ceph-authtool monmaptool curl; do
    command -v "$b" >/dev/null || missing+=("$b")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    die "missing ${missing[*]}: install the Debian packages with scripts/install-s3-deps.sh" \
        "(apt-get install --no-install-recommends ceph-mon ceph-osd radosgw curl)"
  fi
}

show_log() {
  local f=$1
  if [ -f "$f" ]; then
    echo "--- last lines of $f:" >&2
    tail -n 20 "$f" >&2
  fi
}

# The zone flags for gateway N (radosgw-admin spelling). Always explicit: a
# command without them would use the default realm, which is whichever realm
# was created first.
zone_flags() {
  echo "--rgw-realm=r$1 --rgw-zonegroup=zg$1 --rgw-zone=z$1"
}

# launch_gateway DIR N URL: start radosgw N for zone N, serving URL.
launch_gateway() {
  local d=$1 i=$2 url=$3
  local port=${url##*:} frontend
  if [[ $url == https:* ]]; then
    frontend="beast ssl_endpoint=127.0.0.1:$port ssl_certificate=$d/tls/cert.pem ssl_private_key=$d/tls/key.pem"
  else
    frontend="beast endpoint=127.0.0.1:$port"
  fi
  spawn "$d" "client.rgw$i" radosgw -n "client.rgw$i" --rgw_frontends "$frontend" \
    --rgw_realm "r$i" --rgw_zonegroup "zg$i" --rgw_zone "z$i"
}

# wait_gateway DIR N URL: poll until gateway N answers on URL and is ours.
wait_gateway() {
  local d=$1 i=$2 url=$3
  # -k: readiness only; the tests check certificates properly.
  wait_up "$DEADLINE_SECS" "gateway $i on $url" "$d/run/client.rgw$i.pid" \
    curl -sk -o /dev/null "$url" \
    || { show_log "$d/log/client.rgw$i.log"; exit 1; }
  # Whoever answered must be our gateway, not a stranger on a taken port.
  pid_alive "$d/run/client.rgw$i.pid" \
    || { show_log "$d/log/client.rgw$i.log"; die "gateway $i is not running (port taken?)"; }
}

# make_cert DIR: DIR/tls/{cert,key}.pem for 127.0.0.1.
make_cert() {
  local d=$1
  mkdir -p "$d/tls"
  if [ -n "${S3_TLS_CERT:-}" ] && [ -n "${S3_TLS_KEY:-}" ]; then
    cp "$S3_TLS_CERT" "$d/tls/cert.pem"; cp "$S3_TLS_KEY" "$d/tls/key.pem"
  elif command -v openssl >/dev/null; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
      -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
      -keyout "$d/tls/key.pem" -out "$d/tls/cert.pem" >>"$d/log/setup.log" 2>&1
  else
    die "tls: ports need openssl, or S3_TLS_CERT and S3_TLS_KEY"
  fi
}

# EXIT trap of start: on failure, stop whatever was started.
stop_on_failure() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then stop_dir "$1"; fi
}

start_cluster() {
  [ $# -ge 3 ] || usage
  local d mon_port
  d=$(realpath -m "$1"); mon_port=$2; shift 2
  local urls=() spec n=$#
  for spec in "$@"; do
    case $spec in
      tls:*) urls+=("https://127.0.0.1:${spec#tls:}") ;;
      *) urls+=("http://127.0.0.1:$spec") ;;
    esac
  done
  require_binaries
  if [ -e "$d/run" ] && compgen -G "$d/run/*.pid" >/dev/null; then
    die "$d already holds a running cluster; stop it first"
  fi
  local url
  for url in "http://127.0.0.1:$mon_port" "${urls[@]}"; do
    # Fail now rather than after ceph-mon's 15 s of bind retries.
    if (exec 3<>"/dev/tcp/127.0.0.1/${url##*:}") 2>/dev/null; then
      die "port ${url##*:} is already in use"
    fi
  done
  mkdir -p "$d"/{mon,osd/0,run,log}
  local conf="$d/ceph.conf"
  export CEPH_CONF="$conf"
  # Anything failing from here on: stop what was started, say where to look.
  # shellcheck disable=SC2064  # $d is meant to be expanded now
  trap "stop_on_failure '$d'" EXIT

  local fsid; fsid=$(cat /proc/sys/kernel/random/uuid)
  cat > "$conf" <<EOF
[global]
fsid = $fsid
mon_host = v2:127.0.0.1:$mon_port
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
# Without this the gateways hang at startup when auth is none.
ms_mon_client_mode = crc
ms_bind_msgr1 = false
run_dir = $d/run
pid_file = $d/run/\$name.pid
admin_socket = $d/run/\$name.asok
log_file = $d/log/\$name.log
keyring = $d/keyring
mon_data = $d/mon/\$id
osd_data = $d/osd/\$id
osd_objectstore = memstore
memstore_device_bytes = 1073741824
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
# One placement group per pool: every zone adds ~6 pools, and creating and
# peering PGs is most of a gateway's startup time.
osd_pool_default_pg_num = 1
osd_pool_default_pgp_num = 1
osd_pool_default_pg_autoscale_mode = off
mon_max_pg_per_osd = 1000
osd_crush_chooseleaf_type = 0
osd_memory_target = 536870912
# Commit monitor proposals quickly: pool creation waits on them.
paxos_propose_interval = 0.05
paxos_min_wait = 0.01
# The test peer needs neither garbage collection nor lifecycle threads.
rgw_enable_gc_threads = false
rgw_enable_lc_threads = false
rgw_thread_pool_size = 32
# One bucket-index shard instead of 11: a test creates many small buckets.
rgw_override_bucket_index_max_shards = 1
rgw_dns_name = localhost
EOF
  local t0; t0=$(now_ms)
  ceph-authtool --create-keyring "$d/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$d/monmap" >/dev/null
  ceph-mon --mkfs -i a --monmap "$d/monmap" --keyring "$d/keyring" 2>>"$d/log/setup.log"
  spawn "$d" mon.a ceph-mon -i a
  wait_up "$DEADLINE_SECS" "the monitor" "$d/run/mon.a.pid" ceph --connect-timeout 2 mon stat \
    || { show_log "$d/log/mon.a.log"; exit 1; }

  local osd_uuid; osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  ceph osd new "$osd_uuid" >/dev/null   # -> osd.0
  ceph-osd --mkfs -i 0 --osd-uuid "$osd_uuid" >>"$d/log/setup.log" 2>&1
  spawn "$d" osd.0 ceph-osd -i 0
  wait_up "$DEADLINE_SECS" "the OSD to be up" "$d/run/osd.0.pid" \
    bash -c "ceph osd stat 2>/dev/null | grep -q '1 up'" \
    || { show_log "$d/log/osd.0.log"; exit 1; }
  echo "s3-test-cluster: mon+osd up in $(elapsed "$t0")s" >&2

  # A realm per gateway, all at once (each is ~1.5 s of radosgw-admin round
  # trips; the realms share nothing, and every command names its realm).
  local i pids=()
  for ((i = 1; i <= n; i++)); do
    (
      set -e
      radosgw-admin realm create --rgw-realm="r$i"
      radosgw-admin zonegroup create --rgw-realm="r$i" --rgw-zonegroup="zg$i" --master
      # shellcheck disable=SC2046
      radosgw-admin zone create $(zone_flags "$i") --master
      # All three flags: with the realm alone the commit sees the default
      # zonegroup as a second master and fails.
      # shellcheck disable=SC2046
      radosgw-admin period update --commit $(zone_flags "$i")
    ) >>"$d/log/realm$i.log" 2>&1 &
    pids+=($!)
  done
  for ((i = 1; i <= n; i++)); do
    wait "${pids[$((i - 1))]}" || { show_log "$d/log/realm$i.log"; die "creating realm r$i failed"; }
  done
  echo "s3-test-cluster: realms made in $(elapsed "$t0")s" >&2

  if [[ " ${urls[*]}" == *" https:"* ]]; then make_cert "$d"; fi
  # All gateways start at once: each creates its zone's pools on first start,
  # which is the slow part, and the monitor batches those proposals.
  for ((i = 1; i <= n; i++)); do launch_gateway "$d" "$i" "${urls[$((i - 1))]}"; done
  for ((i = 1; i <= n; i++)); do wait_gateway "$d" "$i" "${urls[$((i - 1))]}"; done
  echo "s3-test-cluster: $n gateway(s) up in $(elapsed "$t0")s" >&2

  # One user per gateway, in parallel too.
  local access=() secret=()
  pids=()
  for ((i = 1; i <= n; i++)); do
    access+=("S3TESTNODE${i}ACCESS")
    secret+=("$(tr -d '-' </proc/sys/kernel/random/uuid)")
    # shellcheck disable=SC2046
    radosgw-admin user create $(zone_flags "$i") --uid="test$i" --display-name="test$i" \
      --access-key="${access[$((i - 1))]}" --secret-key="${secret[$((i - 1))]}" \
      >>"$d/log/user$i.log" 2>&1 &
    pids+=($!)
  done
  : >"$d/gateways.tsv.tmp"
  for ((i = 1; i <= n; i++)); do
    wait "${pids[$((i - 1))]}" \
      || { show_log "$d/log/user$i.log"; die "creating the user of gateway $i failed"; }
    printf '%s\t%s\t%s\t%s\t%s\n' "$i" "${urls[$((i - 1))]}" "${access[$((i - 1))]}" \
      "${secret[$((i - 1))]}" "$d/run/client.rgw$i.pid" >>"$d/gateways.tsv.tmp"
  done
  mv "$d/gateways.tsv.tmp" "$d/gateways.tsv"
  echo "s3-test-cluster: ready in $(elapsed "$t0")s" >&2
  cat "$d/gateways.tsv"
  trap - EXIT
}

kill_gateway() {
  [ $# -eq 2 ] || usage
  local d; d=$(realpath -m "$1")
  local f="$d/run/client.rgw$2.pid"
  [ -s "$f" ] || die "no pid file $f"
  local pid; pid=$(cat "$f")
  kill -KILL "$pid" 2>/dev/null || true
  wait_for 10 "gateway $2 (pid $pid) to exit" pid_gone "$pid"
  rm -f "$f"
}

# Start gateway N again after kill-gateway, with the port and zone it had.
restart_gateway() {
  [ $# -eq 2 ] || usage
  local d; d=$(realpath -m "$1")
  local i=$2
  export CEPH_CONF="$d/ceph.conf"
  local url; url=$(awk -F'\t' -v n="$i" '$1 == n {print $2}' "$d/gateways.tsv")
  [ -n "$url" ] || die "no gateway $i in $d/gateways.tsv"
  if pid_alive "$d/run/client.rgw$i.pid"; then return 0; fi
  # The killed gateway's watches on its zone's control objects outlive it (for
  # osd_client_watch_timeout), and a new gateway's startup notifications wait
  # ~10 s on each of them. Only this gateway serves its zone, so every watcher
  # left there is stale: blocklist its address, which drops its watches at once.
  local pool="z$i.rgw.control"
  # One client watches all of the zone's notify.N objects: notify.0 names it.
  local addr
  rados -p "$pool" listwatchers notify.0 2>/dev/null \
    | sed -n 's/^watcher=\([^ ]*\) .*/\1/p' | sort -u | while read -r addr; do
    ceph osd blocklist add "$addr" 3600 >>"$d/log/setup.log" 2>&1 || true
  done
  launch_gateway "$d" "$i" "$url"
  wait_gateway "$d" "$i" "$url"
}

case "${1:-}" in
  start) shift; start_cluster "$@" ;;
  stop) [ $# -eq 2 ] || usage; stop_dir "$(realpath -m "$2")" ;;
  kill-gateway) shift; kill_gateway "$@" ;;
  restart-gateway) shift; restart_gateway "$@" ;;
  *) usage ;;
esac
