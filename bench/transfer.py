#!/usr/bin/env python3
"""Transfer benchmark: a 1,000,000-record zone moved between two zonecast nodes over QUIC, TLS
and TCP, and from a BIND primary over TCP, side by side with kdig AXFR of the same zone from the
same source. Reports wall time, records/s and the receiver's peak RSS, as medians of interleaved
runs.

Usage: bench/transfer.py [--records N] [--runs N]   (needs bind9, knot-dnsutils; builds
zonecast in release mode). Everything runs on 127.0.0.1; every wait is bounded.
"""

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZONE = "bench.test"
SERIAL = 2026112201
WAIT_S = 600


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.bind(("127.0.0.1", 0))
        port = tcp.getsockname()[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", port))
    return port


def need(program, package):
    if shutil.which(program) is None:
        sys.exit(f"{program} is missing: apt-get install {package}")


def write_zone(path, records):
    with open(path, "w") as out:
        out.write(f"$TTL 3600\n@ IN SOA ns1 hostmaster {SERIAL} 3600 900 1209600 300\n")
        out.write("@ IN NS ns1\nns1 IN A 192.0.2.1\n")
        for i in range(records - 3):
            out.write(f"h{i} IN A 198.51.{(i >> 8) & 255}.{i & 255}\n")


def soa_serial(port):
    """The served serial, or None (one bounded UDP query via dig)."""
    result = subprocess.run(
        ["dig", "+short", "+time=1", "+tries=1", f"@127.0.0.1", "-p", str(port), ZONE, "SOA"],
        capture_output=True, text=True, timeout=5,
    )
    fields = result.stdout.split()
    return int(fields[2]) if len(fields) >= 3 and fields[2].isdigit() else None


def wait_serial(port, deadline_s=WAIT_S):
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        if soa_serial(port) == SERIAL:
            return time.monotonic() - started
        time.sleep(0.05)
    raise SystemExit(f"serial {SERIAL} not served on port {port} within {deadline_s} s")


class Node:
    """A zonecast process; stop() returns its peak RSS in MiB (from wait4)."""

    def __init__(self, binary, work, name, toml):
        self.dir = os.path.join(work, name)
        os.makedirs(self.dir, exist_ok=True)
        path = os.path.join(self.dir, "zonecast.toml")
        with open(path, "w") as out:
            out.write(toml)
        self.log = open(os.path.join(self.dir, "zonecast.log"), "w")
        self.process = subprocess.Popen([binary, "run", "--config", path], stdout=self.log, stderr=self.log)

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        _, status, usage = os.wait4(self.process.pid, 0)
        self.log.close()
        return usage.ru_maxrss / 1024


def node_toml(work, name, dns_port, status_port, source, extra=""):
    return f"""[node]
data_dir = "{os.path.join(work, name, 'data')}"
[server]
listen = ["127.0.0.1:{dns_port}"]
{extra}
[status]
listen = "127.0.0.1:{status_port}"
[tls]
certificate = "{work}/{name}.crt"
private_key = "{work}/{name}.key"
ca = "{work}/ca.crt"
[transfer]
allow = [{{ prefix = "127.0.0.1" }}]
[limits]
transfer_timeout = "10m"
query_timeout = "30s"
[[zone]]
name = "{ZONE}"
{source}
"""


def timed(command):
    """Wall seconds and the child's peak RSS (MiB) of one command."""
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.monotonic() - started
    if status != 0:
        raise SystemExit(f"{' '.join(command)} failed: {process.stderr.read().decode()[-500:]}")
    return elapsed, usage.ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    need("named", "bind9")
    need("kdig", "knot-dnsutils")
    need("dig", "bind9-dnsutils")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "zonecast"], cwd=ROOT, check=True)
    binary = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "zonecast")
    work = tempfile.mkdtemp(prefix="zonecast-bench-")
    print(f"work directory {work}; {args.records} records, {args.runs} runs", flush=True)
    subprocess.run([binary, "cert", "init-ca", "--dir", work], check=True, capture_output=True)
    for name in ["source", "receiver"]:
        subprocess.run([binary, "cert", "issue", name, "--ca-dir", work, "--out", work], check=True, capture_output=True)
    write_zone(os.path.join(work, f"{ZONE}.zone"), args.records)

    # The BIND primary.
    bind_port, control = free_port(), free_port()
    with open(os.path.join(work, "named.conf"), "w") as out:
        out.write(f"""options {{ directory "{work}"; listen-on port {bind_port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }};
 pid-file "{work}/named.pid"; recursion no; notify no; allow-transfer {{ any; }}; dnssec-validation no; }};
zone "{ZONE}" {{ type primary; file "{work}/{ZONE}.zone"; }};
""")
    named = subprocess.Popen(["named", "-g", "-n", "2", "-c", os.path.join(work, "named.conf")],
                             stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "named.log"), "w"))
    try:
        wait_serial(bind_port)
        print("BIND primary loaded", flush=True)
        # The source node: loaded from BIND once, then serving TCP, XoT and XoQ.
        dns, status, xot, xoq = free_port(), free_port(), free_port(), free_port()
        source = Node(binary, work, "source", node_toml(
            work, "source", dns, status,
            f'primaries = [{{ address = "127.0.0.1:{bind_port}" }}]',
            f'xot_listen = ["127.0.0.1:{xot}"]\nxoq_listen = ["127.0.0.1:{xoq}"]'))
        wait_serial(dns)
        print("source node loaded", flush=True)
        sources = {
            "zonecast → zonecast, QUIC": f'peers = [{{ address = "127.0.0.1:{xoq}", name = "source" }}]',
            "zonecast → zonecast, TLS": f'primaries = [{{ address = "127.0.0.1:{xot}", transport = "tls", tls_name = "source", tls_ca = "{work}/ca.crt" }}]',
            "zonecast → zonecast, TCP": f'primaries = [{{ address = "127.0.0.1:{dns}" }}]',
            "BIND → zonecast, TCP": f'primaries = [{{ address = "127.0.0.1:{bind_port}" }}]',
        }
        kdigs = {
            "kdig AXFR from zonecast, TLS": ["kdig", f"+tls-ca={work}/ca.crt", "+tls-hostname=source", "@127.0.0.1", "-p", str(xot), ZONE, "AXFR"],
            "kdig AXFR from zonecast, TCP": ["kdig", "@127.0.0.1", "-p", str(dns), ZONE, "AXFR"],
            "kdig AXFR from BIND, TCP": ["kdig", "@127.0.0.1", "-p", str(bind_port), ZONE, "AXFR"],
        }
        results = {label: [] for label in list(sources) + list(kdigs)}
        for run in range(args.runs):
            for label, source_line in sources.items():
                name = "receiver"
                shutil.rmtree(os.path.join(work, name, "data"), ignore_errors=True)
                port, status_port = free_port(), free_port()
                node = Node(binary, work, name, node_toml(work, name, port, status_port, source_line))
                elapsed = wait_serial(port)
                rss = node.stop()
                results[label].append((elapsed, rss))
                print(f"run {run + 1}: {label}: {elapsed:.2f} s, peak RSS {rss:.0f} MiB", flush=True)
            for label, command in kdigs.items():
                elapsed, rss = timed(command)
                results[label].append((elapsed, rss))
                print(f"run {run + 1}: {label}: {elapsed:.2f} s, peak RSS {rss:.0f} MiB", flush=True)
        source.stop()
    finally:
        named.send_signal(signal.SIGTERM)
        named.wait(timeout=30)

    print()
    print(f"| transfer of {args.records:,} records | median wall s | records/s | receiver peak RSS MiB |")
    print("|---|---:|---:|---:|")
    for label, runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        rss = statistics.median(r[1] for r in runs)
        print(f"| {label} | {wall:.2f} | {args.records / wall:,.0f} | {rss:.0f} |")
    print("\nWall time for zonecast receivers runs from process start to the new serial answered;")
    print("for kdig from start to end of the transfer (kdig parses and prints, to /dev/null).")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
