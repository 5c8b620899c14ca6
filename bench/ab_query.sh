#!/usr/bin/env bash
# A/B of two zonecast binaries on the query path, interleaved in one session so that both see
# the same machine: both serve the same 10,002-name file zone on 127.0.0.1 (pinned to CPU 0),
# dnsperf (pinned to CPU 1, -c 4 -q 100) alternates between them, ROUNDS rounds of SECONDS at
# the maximum rate, then SECONDS at 20,000 q/s offered while the server's CPU ticks are counted
# from /proc. Prints each round and the medians with the ratio B/A.
#
# Usage: bench/ab_query.sh A_BINARY B_BINARY [ROUNDS] [SECONDS]
# Needs dnsperf (apt-get install dnsperf). Traffic only to 127.0.0.1; every run is bounded
# (dnsperf -l), and both servers are stopped on exit.
set -euo pipefail
a_bin=${1:?usage: ab_query.sh A_BINARY B_BINARY [ROUNDS] [SECONDS]}
b_bin=${2:?usage: ab_query.sh A_BINARY B_BINARY [ROUNDS] [SECONDS]}
rounds=${3:-5}
seconds=${4:-8}
command -v dnsperf >/dev/null || { echo "needs dnsperf: apt-get install dnsperf" >&2; exit 2; }

dir=$(mktemp -d /tmp/zonecast-ab.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

python3 - "$dir" <<'EOF'
import random, sys
d = sys.argv[1]
names = [f"host{i}" for i in range(10000)]
with open(f"{d}/zone", "w") as f:
    f.write("$ORIGIN example.test.\n$TTL 3600\n@ SOA ns1 hostmaster 1 7200 900 1209600 300\n"
            "@ NS ns1\nns1 A 192.0.2.1\n")
    for i, n in enumerate(names):
        f.write(f"{n} A 192.0.2.{i % 250 + 1}\n")
random.seed(1)
with open(f"{d}/queries", "w") as f:
    for _ in range(100000):
        if random.random() < 0.9:
            f.write(f"{random.choice(names)}.example.test A\n")
        else:
            f.write(f"nx{random.randint(0, 99999)}.example.test A\n")
EOF

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
declare -A port pid
for side in A B; do
  bin=$a_bin; [ "$side" = B ] && bin=$b_bin
  port[$side]=$(free_port)
  cat >"$dir/$side.toml" <<EOF
[node]
data_dir = "$dir/data-$side"
[server]
listen = ["127.0.0.1:${port[$side]}"]
[status]
listen = "127.0.0.1:$(free_port)"
[[zone]]
name = "example.test"
file = "$dir/zone"
EOF
  taskset -c 0 "$bin" run --config "$dir/$side.toml" >"$dir/$side.log" 2>&1 &
  pid[$side]=$!
  pids+=("$!")
done
for side in A B; do
  for _ in $(seq 50); do
    dig +short +time=1 +tries=1 @127.0.0.1 -p "${port[$side]}" host5.example.test | grep -q . && break
    sleep 0.1
  done
done

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR + 1) / 2)]}'; }
declare -A qps_all cpu_all
for round in $(seq "$rounds"); do
  for side in A B; do
    qps=$(taskset -c 1 dnsperf -s 127.0.0.1 -p "${port[$side]}" -d "$dir/queries" -l "$seconds" -c 4 -q 100 2>/dev/null |
      awk '/Queries per second/ {printf "%d", $4}')
    before=$(ticks "${pid[$side]}")
    taskset -c 1 dnsperf -s 127.0.0.1 -p "${port[$side]}" -d "$dir/queries" -l "$seconds" -c 4 -q 100 -Q 20000 >/dev/null 2>&1
    after=$(ticks "${pid[$side]}")
    echo "round $round $side: max q/s $qps, CPU ticks at 20k q/s $((after - before))"
    qps_all[$side]+="$qps "
    cpu_all[$side]+="$((after - before)) "
  done
done
for side in A B; do
  q=$(echo "${qps_all[$side]}" | tr ' ' '\n' | grep . | median)
  c=$(echo "${cpu_all[$side]}" | tr ' ' '\n' | grep . | median)
  echo "$side median: max q/s $q, CPU ticks $c"
  declare "q_$side=$q" "c_$side=$c"
done
awk -v qa="$q_A" -v qb="$q_B" -v ca="$c_A" -v cb="$c_B" \
  'BEGIN {printf "B / A: max q/s %.2f, CPU per query %.2f\n", qb / qa, cb / ca}'
