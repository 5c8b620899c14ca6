#!/usr/bin/env python3
"""Side-by-side benchmark of zonecast, NSD, Knot and BIND, all as real processes on 127.0.0.1.

Sections (run all, or some with --only):
  query    dnsperf against one ~10k-name zone (wildcard, delegations with glue): the most queries
           per second each server answers (server on CPU 0, dnsperf on CPU 1), and at a fixed
           offered rate the latency (median, p99) and the server's CPU seconds per million
           answered queries (utime+stime of its processes, from /proc).
  ingest   a 1,000,000-record zone transferred from one BIND primary into zonecast, Knot and NSD
           secondaries, each started fresh with an empty data directory: wall time from start to
           the new serial answered, CPU seconds (cgroup cpuacct, forked children included), peak
           memory (cgroup: resident anonymous + mapped file pages, sampled every 20 ms) and bytes
           on disk (allocated blocks of the data directory).
  ixfr     one dynamic update (nsupdate) of N records on the BIND primary, which NOTIFYs the
           secondaries: time from the update acknowledged to each one answering the new serial.
  restart  each secondary stopped (SIGTERM) and started again with its stored zone: time to the
           first correct answer (the serial and one changed record).
  zones    10,000 and 100,000 small zones loaded from files: time until every sampled zone
           answers, CPU seconds, memory, and queries per second spread across the zones.

Usage:
  bench/bench.py                       full run (about 16 min on 2 cores; 6 min with --runs 1)
  bench/bench.py --quick --runs 1      small sizes, to check that everything works (~1.5 min)
  bench/bench.py --only query,zones --runs 5 --json /tmp/bench.json

Needs the Debian packages bind9, bind9-dnsutils, nsd, knot, dnsperf; run as root for cgroup
accounting (otherwise /proc is polled). Medians of interleaved runs; each table ends with the
ratio zonecast / best peer (for every column, "best" is the peer with the highest q/s or the
lowest time, CPU, memory, disk or loss). Traffic only to 127.0.0.1; every wait is bounded and
every process started here is killed on exit. Each section also says how much CPU other
processes on the machine used meanwhile: on a shared machine, compare only quiet runs.
"""

import argparse
import atexit
import json
import os
import random
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_ZONECAST = os.path.join(ROOT, "target", "release", "zonecast")
SERVERS = ["zonecast", "nsd", "knot", "bind"]
LABEL = {"zonecast": "zonecast", "nsd": "NSD", "knot": "Knot", "bind": "BIND"}
SECTIONS = ["query", "ingest", "ixfr", "restart", "zones"]
SERVER_CPU = 0
CLIENT_CPU = 1
QUERY_ZONE = "perf.test"
XFR_ZONE = "bench.test"
XFR_SERIAL = 2026112201
STARTED = time.monotonic()


class BenchError(Exception):
    """A measurement that failed; the run goes on without it."""


def log(message):
    print(f"[{time.monotonic() - STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Programs and ports


PROGRAMS = {
    "named": "bind9",
    "nsd": "nsd",
    "knotd": "knot",
    "dnsperf": "dnsperf",
    "nsupdate": "bind9-dnsutils",
    "dig": "bind9-dnsutils",
}


def require_programs(names):
    missing = [(name, PROGRAMS[name]) for name in names if shutil.which(name) is None]
    if missing:
        packages = sorted({package for _, package in missing})
        sys.exit("missing program(s): " + ", ".join(f"{name} (Debian package {package})" for name, package in missing)
                 + f"\ninstall with: apt-get install {' '.join(packages)}")


def program_version(argv, prefix=""):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        text = [line for line in (out.stdout + out.stderr).strip().splitlines() if line.startswith(prefix)]
        return text[0] if text else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def free_port():
    """A port free for both TCP and UDP on 127.0.0.1 (bounded attempts)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise BenchError("no free port found")


# ---------------------------------------------------------------------------------------------
# A tiny DNS client (UDP, no dependencies)


def build_query(qid, name, qtype):
    message = struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        raw = label.encode()
        message += bytes([len(raw)]) + raw
    return message + b"\0" + struct.pack("!HH", qtype, 1)


def skip_name(message, offset):
    for _ in range(128):
        length = message[offset]
        if length == 0:
            return offset + 1
        if length & 0xC0 == 0xC0:
            return offset + 2
        offset += 1 + length
    raise ValueError("name too long")


def parse_response(message):
    """(id, rcode, answers as [(type, rdata offset, rdata length)])."""
    qid, flags, qdcount, ancount, _, _ = struct.unpack_from("!HHHHHH", message, 0)
    offset = 12
    for _ in range(qdcount):
        offset = skip_name(message, offset) + 4
    answers = []
    for _ in range(ancount):
        offset = skip_name(message, offset)
        rtype, _, _, rdlength = struct.unpack_from("!HHIH", message, offset)
        offset += 10
        answers.append((rtype, offset, rdlength))
        offset += rdlength
    return qid, flags & 0xF, answers


def soa_serial_of(message):
    try:
        _, rcode, answers = parse_response(message)
        if rcode != 0:
            return None
        for rtype, offset, _ in answers:
            if rtype == 6:
                offset = skip_name(message, skip_name(message, offset))
                return struct.unpack_from("!I", message, offset)[0]
    except (ValueError, IndexError, struct.error):
        pass
    return None


def has_a(message, address):
    want = socket.inet_aton(address)
    try:
        _, rcode, answers = parse_response(message)
        return rcode == 0 and any(t == 1 and message[o:o + n] == want for t, o, n in answers)
    except (ValueError, IndexError, struct.error):
        return False


class Check:
    """One question polled until its answer is accepted; done_at is when it was."""

    def __init__(self, port, qname, qtype, accept, label=""):
        self.port, self.qname, self.qtype, self.accept, self.label = port, qname, qtype, accept, label
        self.done_at = None


def soa_check(port, zone, serial, label=""):
    return Check(port, zone, 6, lambda m: soa_serial_of(m) == serial if serial is not None
                 else soa_serial_of(m) is not None, label)


def a_check(port, name, address, label=""):
    return Check(port, name, 1, lambda m: has_a(m, address), label)


def wait_checks(checks, timeout, interval=0.002, alive=None):
    """Sends every pending check's query each `interval` seconds until all are accepted.
    Raises BenchError after `timeout` s, or when alive() turns false (a daemon died)."""
    deadline = time.monotonic() + timeout
    pending = [check for check in checks if check.done_at is None]
    sent = {}
    next_id = random.randrange(65536)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        rounds = 0
        while pending:
            now = time.monotonic()
            if now > deadline:
                raise BenchError("no answer within %.0f s for %s" % (
                    timeout, ", ".join(f"{c.label} {c.qname}/{c.qtype}" for c in pending[:5])))
            rounds += 1
            if alive is not None and rounds % 50 == 0 and not alive():
                raise BenchError("the server exited while being waited for")
            for check in pending:
                next_id = (next_id + 1) & 0xFFFF
                sent[next_id] = check
                try:
                    sock.sendto(build_query(next_id, check.qname, check.qtype), ("127.0.0.1", check.port))
                except (BlockingIOError, ConnectionRefusedError):
                    pass
            round_end = now + interval
            while True:
                remaining = round_end - time.monotonic()
                if remaining <= 0:
                    break
                ready, _, _ = select.select([sock], [], [], remaining)
                if not ready:
                    break
                for _ in range(1000):
                    try:
                        data = sock.recv(65535)
                    except (BlockingIOError, ConnectionRefusedError):
                        break
                    if len(data) < 12:
                        continue
                    check = sent.pop(struct.unpack_from("!H", data)[0], None)
                    if check is not None and check.done_at is None and check.accept(data):
                        check.done_at = time.monotonic()
                pending = [check for check in pending if check.done_at is None]
                if not pending:
                    break
    return checks


def query_serial(port, zone, timeout=5.0):
    """The SOA serial `port` answers for `zone` now."""
    found = {}

    def accept(message):
        found["serial"] = soa_serial_of(message)
        return found["serial"] is not None

    wait_checks([Check(port, zone, 6, accept, "serial")], timeout, interval=0.1)
    return found["serial"]


# ---------------------------------------------------------------------------------------------
# Processes, cgroups and accounting


def own_cgroup_dir(controller):
    """The directory of this process's cgroup v1 for `controller`, or None."""
    mount = f"/sys/fs/cgroup/{controller}"
    try:
        with open("/proc/self/cgroup") as lines:
            for line in lines:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                if controller in controllers.split(","):
                    directory = os.path.join(mount, path.lstrip("/"))
                    return directory if os.path.isdir(directory) else None
    except OSError:
        pass
    return None


class Cgroup:
    """A cpuacct + memory cgroup (v1) below this process's own, holding one daemon and every
    process it forks. None of it when cgroups cannot be made (then /proc is polled)."""

    counter = 0
    available = None

    @classmethod
    def make(cls, label):
        if cls.available is False:
            return None
        bases = {ctl: own_cgroup_dir(ctl) for ctl in ("cpuacct", "memory")}
        if not all(bases.values()):
            cls.available = False
            return None
        Cgroup.counter += 1
        paths = {}
        try:
            for ctl, base in bases.items():
                path = os.path.join(base, f"zcbench-{os.getpid()}-{Cgroup.counter}-{label}")
                os.mkdir(path)
                paths[ctl] = path
        except OSError as error:
            for path in paths.values():
                try:
                    os.rmdir(path)
                except OSError:
                    pass
            if cls.available is None:
                log(f"cgroups unavailable ({error}); polling /proc instead")
            cls.available = False
            return None
        cls.available = True
        cgroup = cls()
        cgroup.paths = paths
        # Opened here: the child only writes its pid (no allocation between fork and exec).
        cgroup.procs_files = [os.path.join(p, "cgroup.procs") for p in paths.values()]
        return cgroup

    def enter(self):
        pid = str(os.getpid()).encode()
        for path in self.procs_files:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)

    def pids(self):
        try:
            with open(self.procs_files[0]) as procs:
                return [int(line) for line in procs if line.strip()]
        except OSError:
            return []

    def cpu_s(self):
        with open(os.path.join(self.paths["cpuacct"], "cpuacct.usage")) as usage:
            return int(usage.read()) / 1e9

    def memory(self):
        """Resident bytes now: anonymous + shared memory pages (NSD keeps zones in shared
        memory), each page counted once however many processes map it. File-backed pages
        (binaries, libraries, mmapped files) are left out: cgroup v1 charges a cached file page
        to whichever cgroup touched it first, so they would count only for the first run."""
        stat = {}
        with open(os.path.join(self.paths["memory"], "memory.stat")) as lines:
            for line in lines:
                key, value = line.split()
                stat[key] = int(value)
        return stat.get("total_rss", stat.get("rss", 0)) + stat.get("total_shmem", stat.get("shmem", 0))

    def max_usage(self):
        with open(os.path.join(self.paths["memory"], "memory.max_usage_in_bytes")) as usage:
            return int(usage.read())

    def remove(self):
        for path in self.paths.values():
            for _ in range(50):
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)


def proc_children():
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(entry))
            except (OSError, IndexError):
                pass
    return children


def proc_tree(pid):
    children = proc_children()
    tree, todo = [], [pid]
    while todo and len(tree) < 10000:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def proc_cpu(pids, with_children=False):
    """utime+stime (and cutime+cstime) in seconds, summed over `pids` (threads included)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
            if with_children:
                total += int(fields[13]) + int(fields[14])
        except (OSError, IndexError):
            pass
    return total / ticks


def proc_rss(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith(("RssAnon:", "RssShmem:")):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def disk_bytes(path):
    """Allocated bytes (st_blocks) under `path`, as du counts them: sparse files count only
    what is written."""
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
            except OSError:
                pass
    return total


DAEMONS = []


class Daemon:
    """A server process (and everything it forks) with its own cgroup, optionally pinned to
    one CPU. Memory is sampled every 20 ms by one background thread."""

    def __init__(self, label, argv, log_path, cwd=None, cpu=None, env=None):
        self.label = label
        self.log_path = log_path
        self.cgroup = Cgroup.make(label)
        self.peak_memory = 0
        self.cpu_base = 0.0  # /proc fallback: CPU of processes that have exited
        cgroup = self.cgroup

        def prepare():
            if cgroup is not None:
                cgroup.enter()
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})

        with open(log_path, "ab") as out:
            self.started = time.monotonic()
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                            cwd=cwd, env=env, preexec_fn=prepare, start_new_session=True)
        DAEMONS.append(self)
        Sampler.ensure()

    def alive(self):
        return self.process.poll() is None

    def pids(self):
        if self.cgroup is not None:
            return self.cgroup.pids()
        return proc_tree(self.process.pid) if self.alive() else []

    def cpu_s(self):
        """CPU seconds of the daemon and all it forked, since start."""
        if self.cgroup is not None:
            return self.cgroup.cpu_s()
        return proc_cpu(self.pids(), with_children=True)

    def proc_cpu_s(self):
        """utime+stime from /proc of the live processes (for deltas over a steady state)."""
        return proc_cpu(self.pids())

    def memory(self):
        if self.cgroup is not None:
            return self.cgroup.memory()
        return proc_rss(self.pids())

    def sample(self):
        try:
            self.peak_memory = max(self.peak_memory, self.memory())
        except (OSError, ValueError):
            pass

    def log_tail(self, lines=15):
        try:
            with open(self.log_path, errors="replace") as text:
                return "".join(text.readlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout=60):
        """SIGTERM, wait for every process of the daemon to exit; SIGKILL after `timeout`.
        Returns the seconds the graceful stop took (None when it had to be killed)."""
        if self in DAEMONS:
            DAEMONS.remove(self)
        started = time.monotonic()
        graceful = None
        if self.alive():
            try:
                self.process.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=timeout)
                deadline = time.monotonic() + 10
                while self.pids() and time.monotonic() < deadline:
                    time.sleep(0.01)
                graceful = time.monotonic() - started
            except subprocess.TimeoutExpired:
                log(f"{self.label} did not stop within {timeout} s after SIGTERM; killing it")
        self.kill()
        return graceful

    def kill(self):
        if self in DAEMONS:
            DAEMONS.remove(self)
        for _ in range(50):
            pids = set(self.pids())
            if self.alive():
                pids.add(self.process.pid)
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                self.process.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
            time.sleep(0.02)
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup_removed = True


class Sampler:
    thread = None

    @classmethod
    def ensure(cls):
        if cls.thread is None:
            cls.thread = threading.Thread(target=cls.loop, daemon=True)
            cls.thread.start()

    @staticmethod
    def loop():
        while True:
            for daemon in list(DAEMONS):
                daemon.sample()
            time.sleep(0.02)


def kill_everything():
    for daemon in list(DAEMONS):
        try:
            daemon.kill()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


# ---------------------------------------------------------------------------------------------
# Zone files


def write_query_zone(path, hosts, delegations, serial=1):
    """A zone of about hosts + 3 * delegations + 200 names: hosts with A (every 4th with AAAA),
    CNAMEs, a wildcard below `wild`, and delegations with two in-bailiwick glue addresses."""
    with open(path, "w") as out:
        out.write(f"$TTL 3600\n@ IN SOA ns1 hostmaster {serial} 3600 900 1209600 300\n")
        out.write("@ IN NS ns1\n@ IN NS ns2\nns1 IN A 192.0.2.1\nns2 IN A 192.0.2.2\n@ IN A 192.0.2.10\n"
                  "@ IN MX 10 mail\nmail IN A 192.0.2.20\n@ IN TXT \"v=spf1 -all\"\n"
                  "*.wild IN A 192.0.2.30\n*.wild IN TXT \"synthesised\"\n")
        for i in range(hosts):
            out.write(f"h{i} IN A 198.51.{(i >> 8) & 255}.{i & 255}\n")
            if i % 4 == 0:
                out.write(f"h{i} IN AAAA 2001:db8::{i:x}\n")
        for i in range(200):
            out.write(f"c{i} IN CNAME h{i}\n")
        for j in range(delegations):
            out.write(f"d{j} IN NS ns1.d{j}\nd{j} IN NS ns2.d{j}\n"
                      f"ns1.d{j} IN A 203.0.113.{j % 256}\nns2.d{j} IN A 198.18.{j // 256}.{j % 256}\n")


def write_query_file(path, zone, hosts, delegations, count, seed=1):
    """Queries: ~70% existing names, 10% NXDOMAIN, 10% wildcard-synthesised, 10% referrals."""
    rng = random.Random(seed)
    with open(path, "w") as out:
        for n in range(count):
            r = rng.random()
            if r < 0.55:
                out.write(f"h{rng.randrange(hosts)}.{zone} A\n")
            elif r < 0.60:
                out.write(f"h{4 * rng.randrange(hosts // 4)}.{zone} AAAA\n")
            elif r < 0.65:
                out.write(f"c{rng.randrange(200)}.{zone} A\n")
            elif r < 0.70:
                out.write(f"{zone} {rng.choice(['SOA', 'NS', 'MX', 'A', 'TXT'])}\n")
            elif r < 0.80:
                out.write(f"nx{n}.{zone} A\n")
            elif r < 0.90:
                out.write(f"w{n}.wild.{zone} {rng.choice(['A', 'A', 'TXT'])}\n")
            else:
                out.write(f"host{n}.d{rng.randrange(delegations)}.{zone} A\n")


def write_big_zone(path, records, serial):
    """`records` records: SOA, NS, glue and records - 3 host A records (as bench/transfer.py)."""
    with open(path, "w") as out:
        out.write(f"$TTL 3600\n@ IN SOA ns1 hostmaster {serial} 3600 900 1209600 300\n")
        out.write("@ IN NS ns1\nns1 IN A 192.0.2.1\n")
        block = []
        for i in range(records - 3):
            block.append(f"h{i} IN A 198.51.{(i >> 8) & 255}.{i & 255}\n")
            if len(block) >= 10000:
                out.write("".join(block))
                block = []
        out.write("".join(block))


def small_zone_name(i):
    return f"z{i}.test"


def write_small_zones(directory, count):
    os.makedirs(directory, exist_ok=True)
    for i in range(count):
        name = small_zone_name(i)
        with open(os.path.join(directory, f"{name}.zone"), "w") as out:
            out.write(f"$TTL 3600\n@ IN SOA ns1.{name}. hostmaster.{name}. 1 3600 900 1209600 300\n"
                      f"@ IN NS ns1\n@ IN MX 10 mail\nns1 IN A 192.0.2.1\n"
                      f"www IN A 198.51.{(i >> 8) & 255}.{i & 255}\nmail IN A 192.0.2.25\n")


def write_small_zone_queries(path, zones, count, seed=2):
    rng = random.Random(seed)
    with open(path, "w") as out:
        for n in range(count):
            name = small_zone_name(rng.randrange(zones))
            r = rng.random()
            if r < 0.4:
                out.write(f"www.{name} A\n")
            elif r < 0.6:
                out.write(f"{name} MX\n")
            elif r < 0.8:
                out.write(f"ns1.{name} A\n")
            elif r < 0.9:
                out.write(f"{name} NS\n")
            else:
                out.write(f"nx{n}.{name} A\n")


# ---------------------------------------------------------------------------------------------
# Server configurations. Each server gets a directory: configuration, log and pid file in it,
# everything it stores in DIR/data (what "bytes on disk" counts).


class Server:
    """How to start one kind of server serving either local zone files (`files`: [(zone, path)])
    or one secondary zone (`secondary`: (zone, primary port))."""

    def __init__(self, kind, directory, port, zonecast=None, files=None, secondary=None,
                 bind_threads=None, bind_notify=None):
        self.kind = kind
        self.dir = directory
        self.data = os.path.join(directory, "data")
        self.port = port
        self.zonecast = zonecast
        self.files = files or []
        self.secondary = secondary
        self.bind_threads = bind_threads
        self.bind_notify = bind_notify or []
        os.makedirs(directory, exist_ok=True)
        self.config = getattr(self, f"_config_{kind}")()

    def wipe(self):
        shutil.rmtree(self.data, ignore_errors=True)
        os.makedirs(self.data)
        if self.kind == "knot":
            os.makedirs(os.path.join(self.data, "db"))

    def start(self, cpu=None):
        log_path = os.path.join(self.dir, f"{self.kind}.log")
        if self.kind == "zonecast":
            argv = [self.zonecast, "run", "--config", self.config]
        elif self.kind == "nsd":
            argv = ["nsd", "-d", "-c", self.config]
        elif self.kind == "knot":
            argv = ["knotd", "-c", self.config]
        else:
            argv = ["named", "-g", "-c", self.config] + (["-n", str(self.bind_threads)] if self.bind_threads else [])
        os.makedirs(self.data, exist_ok=True)
        return Daemon(f"{self.kind}", argv, log_path, cwd=self.dir, cpu=cpu)

    def _write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as out:
            out.write(text)
        return path

    def _config_zonecast(self):
        status_port = free_port()
        parts = [f'[node]\ndata_dir = "{self.data}"\n\n[server]\nlisten = ["127.0.0.1:{self.port}"]\n\n'
                 f'[status]\nlisten = "127.0.0.1:{status_port}"\n\n'
                 '[limits]\ntransfer_timeout = "10m"\nquery_timeout = "30s"\n\n']
        for zone, path in self.files:
            parts.append(f'[[zone]]\nname = "{zone}"\nfile = "{path}"\n\n')
        if self.secondary:
            zone, primary = self.secondary
            parts.append(f'[[zone]]\nname = "{zone}"\nprimaries = [{{ address = "127.0.0.1:{primary}" }}]\n'
                         'notify_allow = ["127.0.0.1"]\n')
        return self._write("zonecast.toml", "".join(parts))

    def _config_nsd(self):
        d = self.data
        parts = [f"""server:
    ip-address: 127.0.0.1@{self.port}
    port: {self.port}
    do-ip4: yes
    do-ip6: no
    database: ""
    zonesdir: "{d}"
    pidfile: "{self.dir}/nsd.pid"
    xfrdfile: "{d}/xfrd.state"
    xfrdir: "{d}"
    zonelistfile: "{d}/zone.list"
    username: ""
    chroot: ""
    server-count: 1
    rrl-ratelimit: 0
    minimal-responses: yes
    verbosity: 1
remote-control:
    control-enable: no
"""]
        for zone, path in self.files:
            parts.append(f'zone:\n    name: "{zone}"\n    zonefile: "{path}"\n')
        if self.secondary:
            zone, primary = self.secondary
            # With database "", NSD writes a transferred zone to its file only every
            # zonefiles-write seconds (default 3600), not at exit: 1 s keeps it on disk for the
            # restart test, as Knot's default (zonefile-sync: 0) does.
            parts[0] = parts[0].replace("    verbosity: 1\n", "    verbosity: 1\n    zonefiles-write: 1\n")
            parts.append(f'zone:\n    name: "{zone}"\n    zonefile: "{zone}.zone"\n'
                         f'    request-xfr: 127.0.0.1@{primary} NOKEY\n    allow-notify: 127.0.0.1 NOKEY\n')
        return self._write("nsd.conf", "".join(parts))

    def _config_knot(self):
        d = self.data
        text = f"""server:
    rundir: "{self.dir}"
    pidfile: "{self.dir}/knot.pid"
    listen: 127.0.0.1@{self.port}
    udp-workers: 1
    tcp-workers: 1
database:
    storage: "{d}/db"
log:
  - target: stderr
    any: info
control:
    listen: "{self.dir}/knot.sock"
"""
        if self.secondary:
            zone, primary = self.secondary
            # Knot's defaults for a secondary: zone file written after each change
            # (zonefile-sync: 0), changes kept in the journal.
            text += f"""remote:
  - id: primary
    address: 127.0.0.1@{primary}
acl:
  - id: notify_from_primary
    address: 127.0.0.1
    action: notify
template:
  - id: default
    storage: "{d}"
    file: "%s.zone"
zone:
  - domain: {zone}
    master: primary
    acl: notify_from_primary
"""
        else:
            directory = os.path.dirname(self.files[0][1])
            text += f"""template:
  - id: default
    storage: "{d}"
    file: "{directory}/%s.zone"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
"""
            text += "".join(f"  - domain: {zone}\n" for zone, _ in self.files)
        return self._write("knot.conf", text)

    def _config_bind(self):
        d = self.data
        text = f"""options {{
    directory "{d}";
    pid-file "{self.dir}/named.pid";
    session-keyfile "{self.dir}/session.key";
    managed-keys-directory "{d}";
    listen-on port {self.port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    minimal-responses yes;
    allow-transfer {{ 127.0.0.0/8; }};
    transfer-source 127.0.0.1;
    notify-source 127.0.0.1;
    notify-delay 0;
    notify-rate 1000;
    startup-notify-rate 1000;
    max-ixfr-ratio unlimited;
    notify {'explicit' if self.bind_notify else 'no'};
}};
controls {{ }};
"""
        for zone, path in self.files:
            if self.bind_notify:
                targets = "".join(f"127.0.0.1 port {port}; " for port in self.bind_notify)
                text += (f'zone "{zone}" {{ type primary; file "{path}"; allow-update {{ 127.0.0.1; }};\n'
                         f'    also-notify {{ {targets}}}; }};\n')
            else:
                text += f'zone "{zone}" {{ type primary; file "{path}"; }};\n'
        return self._write("named.conf", text)


def start_and_wait(server, checks, timeout, cpu=None, interval=0.002):
    """Starts `server`, waits until `checks` pass; returns (daemon, seconds from start)."""
    daemon = server.start(cpu=cpu)
    try:
        wait_checks(checks, timeout, interval=interval, alive=daemon.alive)
    except BenchError as error:
        tail = daemon.log_tail()
        daemon.kill()
        raise BenchError(f"{LABEL[server.kind]}: {error}\n--- log tail ({daemon.log_path}) ---\n{tail}")
    done = max(check.done_at for check in checks)
    return daemon, done - daemon.started


# ---------------------------------------------------------------------------------------------
# dnsperf


def dnsperf(port, query_file, seconds, rate=None, verbose=False):
    argv = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", query_file, "-l", str(seconds),
            "-q", "100", "-c", "4", "-t", "1"]
    if rate:
        argv += ["-Q", str(rate)]
    if verbose:
        argv += ["-v"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: os.sched_setaffinity(0, {CLIENT_CPU}))
    try:
        out, err = process.communicate(timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise BenchError("dnsperf did not finish in time")
    if process.returncode != 0:
        raise BenchError(f"dnsperf failed ({process.returncode}): {err[-500:]}")

    def number(pattern):
        found = re.search(pattern, out)
        return float(found.group(1)) if found else None

    result = {
        "sent": number(r"Queries sent:\s+(\d+)"),
        "completed": number(r"Queries completed:\s+(\d+)"),
        "lost": number(r"Queries lost:\s+(\d+)"),
        "qps": number(r"Queries per second:\s+([\d.]+)"),
        "avg_latency_ms": (number(r"Average Latency \(s\):\s+([\d.]+)") or 0) * 1000,
    }
    codes = re.search(r"Response codes:\s+(.*)", out)
    result["rcodes"] = dict((name, int(count)) for name, count in
                            re.findall(r"([A-Z]+) (\d+) \(", codes.group(1))) if codes else {}
    if verbose:
        latencies = []
        for line in out.splitlines():
            if line.startswith("> "):
                try:
                    latencies.append(float(line.rsplit(None, 1)[1]))
                except (ValueError, IndexError):
                    pass
        latencies.sort()
        if latencies:
            result["median_latency_ms"] = latencies[len(latencies) // 2] * 1000
            result["p99_latency_ms"] = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    if not result["completed"]:
        raise BenchError(f"dnsperf completed no query:\n{out[-800:]}")
    return result


# ---------------------------------------------------------------------------------------------
# Results


class Results:
    def __init__(self):
        self.data = {}  # section -> server -> metric -> [per run]
        self.notes = {}

    def add(self, section, server, metric, value):
        self.data.setdefault(section, {}).setdefault(server, {}).setdefault(metric, []).append(value)

    def note(self, section, text):
        self.notes.setdefault(section, []).append(text)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, digits):
    if value is None:
        return "fail"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def print_table(results, section, title, columns, servers):
    """columns: [(metric, heading, digits, higher_is_better)]."""
    table = results.data.get(section, {})
    print(f"\n### {title}\n")
    print("| server | " + " | ".join(heading for _, heading, _, _ in columns) + " |")
    print("|---|" + "---:|" * len(columns))
    medians = {}
    for server in servers:
        if server not in table:
            continue
        row = []
        for metric, _, digits, _ in columns:
            value = median(table[server].get(metric, []))
            medians[(server, metric)] = value
            row.append(fmt(value, digits))
        print(f"| {LABEL[server]} | " + " | ".join(row) + " |")
    if "zonecast" in table:
        row = []
        for metric, _, _, higher in columns:
            mine = medians.get(("zonecast", metric))
            peers = [(medians.get((s, metric)), s) for s in servers if s != "zonecast" and s in table]
            peers = [(v, s) for v, s in peers if v is not None]
            if mine is None or not peers:
                row.append("–")
                continue
            value, best = (max if higher else min)(peers)
            if value == 0:
                row.append(f"– (best: 0, {LABEL[best]})" if mine else "– (all 0)")
            else:
                row.append(f"{mine / value:.2f} ({LABEL[best]})")
        print("| **zonecast / best peer** | " + " | ".join(row) + " |")
    print("\nRaw per-run values:")
    for server in servers:
        if server not in table:
            continue
        parts = []
        for metric, heading, digits, _ in columns:
            runs = table[server].get(metric, [])
            parts.append(f"{heading}: " + " / ".join(fmt(v, digits) for v in runs))
        print(f"- {LABEL[server]}: " + "; ".join(parts))
    for text in results.notes.get(section, []):
        print(f"\nNote: {text}")
    return {f"{s}.{m}": v for (s, m), v in medians.items()}


def check_rcodes(results, section, kind, run, rcodes):
    """Both query sets are 10% NXDOMAIN, the rest NOERROR: anything else is worth a note."""
    total = sum(rcodes.values()) or 1
    nxdomain = rcodes.get("NXDOMAIN", 0) / total
    other = sum(v for k, v in rcodes.items() if k not in ("NOERROR", "NXDOMAIN")) / total
    if abs(nxdomain - 0.10) > 0.02 or other > 0.01:
        results.note(section, f"{LABEL[kind]} run {run + 1}: unexpected response codes {rcodes}")


def load_average():
    try:
        with open("/proc/loadavg") as text:
            return float(text.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0


def machine_busy_s():
    """user + nice + system CPU seconds of the whole machine since boot (/proc/stat)."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()[1:]
    return sum(int(v) for v in fields[:3]) / os.sysconf("SC_CLK_TCK")


def own_busy_s():
    """CPU seconds of this script and every child it has reaped (the servers once stopped,
    dnsperf, nsupdate), with what those reaped in turn (NSD's forked processes)."""
    mine = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return mine.ru_utime + mine.ru_stime + children.ru_utime + children.ru_stime


class ForeignLoad:
    """Measures the CPU that processes not started here used during a section: the machine's
    user+system time less this script's and its children's. On a shared machine (someone
    building or testing) this says how much to trust the section's figures."""

    def __init__(self, results, sections):
        self.results, self.sections = results, sections

    def __enter__(self):
        self.started = time.monotonic()
        self.machine, self.own = machine_busy_s(), own_busy_s()
        return self

    def __exit__(self, *_):
        wall = time.monotonic() - self.started
        foreign = max(0.0, (machine_busy_s() - self.machine) - (own_busy_s() - self.own))
        share = foreign / (wall * (os.cpu_count() or 1)) if wall > 0 else 0.0
        text = (f"other processes on this machine used {foreign:.0f} CPU-s during this section "
                f"({share:.0%} of all CPUs over its {wall / 60:.1f} min)")
        if share > 0.05:
            text += ": figures are disturbed, rerun on a quiet machine to compare closely"
            log("warning: " + text)
        for section in self.sections:
            self.results.note(section, text)
        return False


def rotate(items, run):
    shift = run % len(items)
    return items[shift:] + items[:shift]


# ---------------------------------------------------------------------------------------------
# Section 1: queries


def section_query(args, work, results):
    directory = os.path.join(work, "query")
    os.makedirs(directory)
    zone_path = os.path.join(directory, f"{QUERY_ZONE}.zone")
    write_query_zone(zone_path, args.query_hosts, args.query_delegations)
    query_file = os.path.join(directory, "queries.txt")
    write_query_file(query_file, QUERY_ZONE, args.query_hosts, args.query_delegations, 100_000)
    with open(zone_path) as text:
        records = sum(1 for line in text if not line.startswith("$"))
    log(f"query: zone {QUERY_ZONE} with {records:,} records; servers on CPU {SERVER_CPU}, dnsperf on CPU {CLIENT_CPU}")
    daemons = {}
    try:
        for kind in SERVERS:
            server = Server(kind, os.path.join(directory, kind), free_port(), zonecast=args.zonecast_copy,
                            files=[(QUERY_ZONE, zone_path)], bind_threads=1)
            server.wipe()
            try:
                daemons[kind], elapsed = start_and_wait(server, [soa_check(server.port, QUERY_ZONE, 1, kind)], 120,
                                                        cpu=SERVER_CPU, interval=0.01)
                daemons[kind].port = server.port
                log(f"query: {LABEL[kind]} up in {elapsed:.2f} s (pid {daemons[kind].process.pid})")
                dnsperf(server.port, query_file, 1)  # warm-up
            except BenchError as error:
                log(f"query: {error}")
        for run in range(args.runs):
            for kind in rotate([k for k in SERVERS if k in daemons], run):
                daemon = daemons[kind]
                try:
                    top = dnsperf(daemon.port, query_file, args.duration)
                    cpu_before, cg_before = daemon.proc_cpu_s(), daemon.cpu_s()
                    fixed = dnsperf(daemon.port, query_file, args.fixed_duration, rate=args.rate, verbose=True)
                    cpu = daemon.proc_cpu_s() - cpu_before
                    cg_cpu = daemon.cpu_s() - cg_before
                except BenchError as error:
                    log(f"query: run {run + 1} {LABEL[kind]}: {error}")
                    for metric in ("qps", "avg_latency_ms", "lost", "cpu_per_m", "median_latency_ms",
                                   "p99_latency_ms", "fixed_lost"):
                        results.add("query", kind, metric, None)
                    continue
                per_million = cpu / fixed["completed"] * 1e6
                results.add("query", kind, "qps", top["qps"])
                results.add("query", kind, "avg_latency_ms", top["avg_latency_ms"])
                results.add("query", kind, "lost", top["lost"])
                results.add("query", kind, "cpu_per_m", per_million)
                results.add("query", kind, "cgroup_cpu_per_m", cg_cpu / fixed["completed"] * 1e6)
                results.add("query", kind, "fixed_qps", fixed["qps"])
                results.add("query", kind, "fixed_avg_latency_ms", fixed["avg_latency_ms"])
                results.add("query", kind, "median_latency_ms", fixed.get("median_latency_ms"))
                results.add("query", kind, "p99_latency_ms", fixed.get("p99_latency_ms"))
                results.add("query", kind, "fixed_lost", fixed["lost"])
                results.add("query", kind, "rcodes", top["rcodes"])
                check_rcodes(results, "query", kind, run, top["rcodes"])
                log(f"query: run {run + 1} {LABEL[kind]}: {top['qps']:,.0f} q/s, avg {top['avg_latency_ms']:.3f} ms, "
                    f"lost {top['lost']:.0f}; at {args.rate} q/s: {per_million:.2f} CPU s per 1M, "
                    f"median {fixed.get('median_latency_ms', 0):.3f} ms, lost {fixed['lost']:.0f}")
    finally:
        for daemon in daemons.values():
            daemon.stop(timeout=20)
    codes = {LABEL[k]: v["rcodes"][-1] for k, v in results.data.get("query", {}).items() if v.get("rcodes")}
    results.note("query", "response codes of the last max-rate run: " + "; ".join(
        f"{name} " + ", ".join(f"{c} {n}" for c, n in sorted(v.items())) for name, v in codes.items() if v))


# ---------------------------------------------------------------------------------------------
# Sections 2-4: ingest, IXFR, restart (one pipeline per run)


def nsupdate(port, zone, changes, run, records):
    """Replaces the A record of `changes` names in one update; returns (names with their new
    address, seconds nsupdate took)."""
    changed = []
    lines = [f"server 127.0.0.1 {port}", f"zone {zone}."]
    for k in range(changes):
        n = run * changes + k
        name = f"h{n % (records - 3)}.{zone}."
        address = f"198.18.{n // 250 % 250 + 1}.{n % 250 + 1}"
        lines.append(f"update delete {name} A")
        lines.append(f"update add {name} 3600 A {address}")
        changed.append((name.rstrip("."), address))
    lines += ["send", ""]
    started = time.monotonic()
    result = subprocess.run(["nsupdate", "-v", "-t", "30"], input="\n".join(lines), capture_output=True,
                            text=True, timeout=60)
    if result.returncode != 0:
        raise BenchError(f"nsupdate failed: {result.stderr[-500:]}")
    return changed, time.monotonic() - started


def settle_disk(path, limit=20.0):
    """Allocated bytes under `path` once they stop changing for 1.5 s (at most `limit` s)."""
    deadline = time.monotonic() + limit
    last = disk_bytes(path)
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = disk_bytes(path)
        if now != last:
            last, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since >= 1.5:
            break
    return last


def section_transfers(args, work, results, wanted):
    secondaries = ["zonecast", "nsd", "knot"]
    directory = os.path.join(work, "xfr")
    os.makedirs(directory)
    zone_path = os.path.join(directory, f"{XFR_ZONE}.zone")
    log(f"ingest: writing a {args.records:,}-record zone")
    write_big_zone(zone_path, args.records, XFR_SERIAL)
    ports = {kind: free_port() for kind in secondaries}
    bind = Server("bind", os.path.join(directory, "bind-primary"), free_port(), files=[(XFR_ZONE, zone_path)],
                  bind_notify=list(ports.values()))
    bind.wipe()
    primary, elapsed = start_and_wait(bind, [soa_check(bind.port, XFR_ZONE, XFR_SERIAL, "bind")], 900, interval=0.05)
    log(f"ingest: BIND primary loaded {args.records:,} records in {elapsed:.1f} s")
    servers = {kind: Server(kind, os.path.join(directory, kind), ports[kind], zonecast=args.zonecast_copy,
                            secondary=(XFR_ZONE, bind.port)) for kind in secondaries}
    sample = ("h1." + XFR_ZONE, "198.51.0.1")
    try:
        for run in range(args.runs):
            order = rotate(secondaries, run)
            serial = query_serial(bind.port, XFR_ZONE)
            running = {}
            try:
                for kind in order:
                    server = servers[kind]
                    server.wipe()
                    try:
                        daemon, wall = start_and_wait(server, [soa_check(server.port, XFR_ZONE, serial, kind)],
                                                      args.load_timeout, interval=0.003)
                    except BenchError as error:
                        log(f"ingest: run {run + 1}: {error}")
                        for metric in ("wall_s", "records_per_s", "cpu_s", "peak_rss_mib", "disk_mib"):
                            results.add("ingest", kind, metric, None)
                        continue
                    cpu = daemon.cpu_s()
                    disk = settle_disk(server.data)
                    daemon.sample()
                    peak = daemon.peak_memory / 2**20
                    max_usage = daemon.cgroup.max_usage() / 2**20 if daemon.cgroup else None
                    running[kind] = daemon
                    results.add("ingest", kind, "wall_s", wall)
                    results.add("ingest", kind, "records_per_s", args.records / wall)
                    results.add("ingest", kind, "cpu_s", cpu)
                    results.add("ingest", kind, "peak_rss_mib", peak)
                    results.add("ingest", kind, "cgroup_max_usage_mib", max_usage)
                    results.add("ingest", kind, "disk_mib", disk / 2**20)
                    log(f"ingest: run {run + 1} {LABEL[kind]}: {wall:.2f} s, CPU {cpu:.2f} s, peak {peak:.0f} MiB, "
                        f"disk {disk / 2**20:.0f} MiB")

                if "ixfr" in wanted or "restart" in wanted:
                    if "ixfr" in wanted:
                        changed, update_s = nsupdate(bind.port, XFR_ZONE, args.changes, run, args.records)
                        acknowledged = time.monotonic()
                        serial += 1  # BIND's serial-update-method increment; checked below
                        sample = changed[-1]
                        checks = {kind: soa_check(servers[kind].port, XFR_ZONE, serial, kind) for kind in running}
                        try:
                            wait_checks(list(checks.values()), 60, interval=0.001)
                        except BenchError as error:
                            log(f"ixfr: run {run + 1}: {error}")
                        primary_serial = query_serial(bind.port, XFR_ZONE)
                        if primary_serial != serial:
                            raise BenchError(f"BIND serial after the update is {primary_serial}, expected {serial}")
                        for kind in running:
                            done = checks[kind].done_at
                            ms = (done - acknowledged) * 1000 if done else None
                            results.add("ixfr", kind, "ms", ms)
                            results.add("ixfr", kind, "nsupdate_ms", update_s * 1000)
                        # Every secondary must now answer the changed records.
                        verify = [a_check(servers[k].port, name, address, k) for k in running
                                  for name, address in (changed[0], changed[-1])]
                        try:
                            wait_checks(verify, 10, interval=0.01)
                        except BenchError as error:
                            results.note("ixfr", f"run {run + 1}: changed records not answered: {error}")
                        log(f"ixfr: run {run + 1}: serial {serial}, nsupdate {update_s * 1000:.0f} ms; " + ", ".join(
                            f"{LABEL[k]} {fmt(results.data['ixfr'][k]['ms'][-1], 1)} ms" for k in running))
                    if "restart" in wanted:
                        for kind in order:
                            if kind not in running:
                                continue
                            server = servers[kind]
                            settle_disk(server.data)
                            stop_s = running.pop(kind).stop(timeout=60)
                            disk = disk_bytes(server.data)
                            checks = [soa_check(server.port, XFR_ZONE, serial, kind),
                                      a_check(server.port, sample[0], sample[1], kind)]
                            try:
                                daemon, wall = start_and_wait(server, checks, args.load_timeout, interval=0.002)
                            except BenchError as error:
                                log(f"restart: run {run + 1}: {error}")
                                for metric in ("wall_s", "cpu_s", "peak_rss_mib", "stop_s", "disk_mib"):
                                    results.add("restart", kind, metric, None)
                                continue
                            cpu = daemon.cpu_s()
                            daemon.sample()
                            results.add("restart", kind, "wall_s", wall)
                            results.add("restart", kind, "cpu_s", cpu)
                            results.add("restart", kind, "peak_rss_mib", daemon.peak_memory / 2**20)
                            results.add("restart", kind, "stop_s", stop_s)
                            results.add("restart", kind, "disk_mib", disk / 2**20)
                            log(f"restart: run {run + 1} {LABEL[kind]}: first correct answer after {wall:.3f} s "
                                f"(CPU {cpu:.2f} s); stop took {fmt(stop_s, 2)} s; {disk / 2**20:.0f} MiB on disk")
                            daemon.stop(timeout=60)
            finally:
                for daemon in running.values():
                    daemon.stop(timeout=30)
    finally:
        primary.stop(timeout=30)


# ---------------------------------------------------------------------------------------------
# Section 5: many zones


def section_zones(args, work, results):
    for count in args.zone_counts:
        section = f"zones{count}"
        directory = os.path.join(work, section)
        zones_dir = os.path.join(directory, "zones")
        log(f"zones: writing {count:,} zone files")
        write_small_zones(zones_dir, count)
        query_file = os.path.join(directory, "queries.txt")
        write_small_zone_queries(query_file, count, 100_000)
        files = [(small_zone_name(i), os.path.join(zones_dir, f"{small_zone_name(i)}.zone")) for i in range(count)]
        kinds = ["zonecast", "nsd", "knot"]
        if count <= args.bind_zones_max:
            kinds.append("bind")
        else:
            results.note(section, f"BIND skipped at {count:,} zones (it is only run up to --bind-zones-max "
                                  f"{args.bind_zones_max:,} zones, to keep the run short)")
        servers = {kind: Server(kind, os.path.join(directory, kind), free_port(), zonecast=args.zonecast_copy,
                                files=files, bind_threads=1) for kind in kinds}
        rng = random.Random(count)
        sample = sorted({0, count - 1} | set(rng.sample(range(count), min(count, 98))))
        failed = set()
        for run in range(args.runs):
            for kind in rotate(kinds, run):
                if kind in failed:
                    continue
                server = servers[kind]
                server.wipe()
                last = [soa_check(server.port, small_zone_name(count - 1), 1, kind)]
                daemon = None
                try:
                    daemon, _ = start_and_wait(server, last, args.zones_timeout, cpu=SERVER_CPU, interval=0.01)
                    checks = [soa_check(server.port, small_zone_name(i), 1, kind) for i in sample]
                    wait_checks(checks, args.zones_timeout, interval=0.01, alive=daemon.alive)
                    loaded = max([c.done_at for c in checks] + [last[0].done_at]) - daemon.started
                    cpu = daemon.cpu_s()
                    daemon.sample()
                    peak = daemon.peak_memory / 2**20
                    time.sleep(0.5)
                    rss = daemon.memory() / 2**20
                    perf = dnsperf(server.port, query_file, args.duration)
                except BenchError as error:
                    log(f"zones: {count:,} run {run + 1}: {error}")
                    for metric in ("load_s", "cpu_s", "rss_mib", "peak_rss_mib", "qps", "lost"):
                        results.add(section, kind, metric, None)
                    if run == 0:
                        failed.add(kind)
                        results.note(section, f"{LABEL[kind]} failed in run 1 and was not run again: "
                                              f"{str(error).splitlines()[0]}")
                    continue
                finally:
                    if daemon is not None:
                        daemon.stop(timeout=60)
                results.add(section, kind, "load_s", loaded)
                results.add(section, kind, "cpu_s", cpu)
                results.add(section, kind, "rss_mib", rss)
                results.add(section, kind, "peak_rss_mib", peak)
                results.add(section, kind, "qps", perf["qps"])
                results.add(section, kind, "lost", perf["lost"])
                results.add(section, kind, "rcodes", perf["rcodes"])
                check_rcodes(results, section, kind, run, perf["rcodes"])
                log(f"zones: {count:,} run {run + 1} {LABEL[kind]}: loaded in {loaded:.2f} s (CPU {cpu:.2f} s), "
                    f"RSS {rss:.0f} MiB (peak {peak:.0f}), {perf['qps']:,.0f} q/s, lost {perf['lost']:.0f}")
        shutil.rmtree(zones_dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes and short runs, to check the script")
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs per measurement (default 3)")
    parser.add_argument("--only", default="", help="comma-separated sections: " + ",".join(SECTIONS))
    parser.add_argument("--zonecast", default=DEFAULT_ZONECAST, help="zonecast binary (default: %(default)s)")
    parser.add_argument("--json", help="write every raw number to this file")
    parser.add_argument("--records", type=int, help="records of the ingest zone (default 1,000,000; quick 50,000)")
    parser.add_argument("--changes", type=int, default=100, help="records replaced by the IXFR update (default 100)")
    parser.add_argument("--zones", help="zone counts for the many-zones section (default 10000,100000; quick 1000,5000)")
    parser.add_argument("--duration", type=int, help="seconds of each max-rate dnsperf run (default 10; quick 3)")
    parser.add_argument("--rate", type=int, default=20000, help="offered q/s of the fixed-rate run (default 20000)")
    parser.add_argument("--fixed-duration", type=int, help="seconds of the fixed-rate run (default 10; quick 3)")
    parser.add_argument("--bind-zones-max", type=int, default=100000,
                        help="largest zone count BIND is run with in the zones section (default 100000)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (configs, logs)")
    args = parser.parse_args()
    args.only = [s.strip() for s in args.only.split(",") if s.strip()] or list(SECTIONS)
    unknown = [s for s in args.only if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    args.records = args.records or (50_000 if args.quick else 1_000_000)
    if args.records < 1000:
        parser.error("--records must be at least 1000")
    args.zone_counts = [int(n) for n in (args.zones or ("1000,5000" if args.quick else "10000,100000")).split(",")]
    args.duration = args.duration or (3 if args.quick else 10)
    args.fixed_duration = args.fixed_duration or (3 if args.quick else 10)
    args.query_hosts = 9500
    args.query_delegations = 100
    args.load_timeout = 600
    args.zones_timeout = 300
    return args


def locate_zonecast(args):
    path = args.zonecast
    if not os.path.isfile(path):
        if os.path.abspath(path) != DEFAULT_ZONECAST:
            sys.exit(f"--zonecast {path}: no such file")
        log(f"{path} is missing: cargo build --release -p zonecast (in {ROOT})")
        if subprocess.run(["cargo", "build", "--release", "-p", "zonecast"], cwd=ROOT).returncode != 0:
            sys.exit("cargo build --release -p zonecast failed")
    return path


def main():
    args = parse_args()
    needed = set()
    if "query" in args.only or "zones" in args.only:
        needed |= {"named", "nsd", "knotd", "dnsperf"}
    if {"ingest", "ixfr", "restart"} & set(args.only):
        needed |= {"named", "nsd", "knotd", "nsupdate"}
    require_programs(sorted(needed))
    if os.cpu_count() is None or os.cpu_count() < 2:
        sys.exit("needs at least 2 CPUs (server on CPU 0, dnsperf on CPU 1)")
    binary = locate_zonecast(args)
    work = tempfile.mkdtemp(prefix="zonecast-bench-", dir="/tmp")
    # A private copy: the binary at the given path may be rebuilt while this runs.
    args.zonecast_copy = os.path.join(work, "zonecast")
    shutil.copy2(binary, args.zonecast_copy)
    versions = {
        "zonecast": program_version([args.zonecast_copy, "--version"]) + f" ({binary}, built "
        + time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(binary))) + ")",
        "nsd": program_version(["nsd", "-v"]),
        "knot": program_version(["knotd", "-V"]),
        "bind": program_version(["named", "-v"]),
        "dnsperf": "dnsperf " + program_version(["dnsperf", "-h"], "Version"),
    }
    log(f"work directory {work}; sections {', '.join(args.only)}; {args.runs} run(s); "
        f"load average {load_average():.2f}")
    results = Results()
    timings = {}
    failed = False
    try:
        if "query" in args.only:
            with ForeignLoad(results, ["query"]) as section:
                section_query(args, work, results)
            timings["query"] = time.monotonic() - section.started
        wanted = [s for s in ("ingest", "ixfr", "restart") if s in args.only]
        if wanted:
            with ForeignLoad(results, wanted) as section:
                section_transfers(args, work, results, wanted)
            timings["/".join(wanted)] = time.monotonic() - section.started
        if "zones" in args.only:
            with ForeignLoad(results, [f"zones{count}" for count in args.zone_counts]) as section:
                section_zones(args, work, results)
            timings["zones"] = time.monotonic() - section.started
    except BaseException as error:
        failed = True
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            log("interrupted: stopping every server started here")
        raise
    finally:
        kill_everything()
        if failed or args.keep:
            log(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    print(f"# zonecast benchmark ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, "
          f"{args.runs} run(s){', quick' if args.quick else ''})\n")
    for name, version in versions.items():
        print(f"- {name}: {version}")
    print("\nMedians of interleaved runs; the last row of each table is zonecast's median divided by the best "
          "peer's (highest q/s, lowest of everything else), with that peer named.")
    summary = {}
    if "query" in args.only:
        summary["query"] = print_table(
            results, "query",
            f"1. Queries: {args.query_hosts + 3 * args.query_delegations + 200 + 5:,}-name zone, mixed queries "
            f"(70% existing, 10% NXDOMAIN, 10% wildcard, 10% referral); server on CPU {SERVER_CPU}, dnsperf on "
            f"CPU {CLIENT_CPU} (-q 100 -c 4); max rate for {args.duration} s, then {args.rate:,} q/s offered for "
            f"{args.fixed_duration} s",
            [("qps", "max q/s", 0, True), ("avg_latency_ms", "avg latency ms (max rate)", 3, False),
             ("lost", "lost (max rate)", 0, False),
             ("cpu_per_m", f"CPU s per 1M answered @{args.rate // 1000}k q/s", 2, False),
             ("median_latency_ms", f"median latency ms @{args.rate // 1000}k", 3, False),
             ("p99_latency_ms", f"p99 latency ms @{args.rate // 1000}k", 3, False),
             ("fixed_lost", f"lost @{args.rate // 1000}k", 0, False)],
            SERVERS)
        print("\nCPU per million: utime+stime of all the server's processes (/proc) during the fixed-rate run, "
              "divided by the queries answered. Latencies at the fixed rate are dnsperf's per-query times (-v).")
    secondaries = ["zonecast", "nsd", "knot"]
    if "ingest" in args.only:
        summary["ingest"] = print_table(
            results, "ingest",
            f"2. Ingest of a {args.records:,}-record zone from a BIND primary (AXFR), fresh secondary with an empty "
            f"data directory (one secondary at a time; nothing pinned, both CPUs)",
            [("wall_s", "wall s (start → serial answered)", 2, False), ("records_per_s", "records/s", 0, True),
             ("cpu_s", "CPU s until loaded", 2, False), ("peak_rss_mib", "peak RSS MiB", 0, False),
             ("disk_mib", "disk MiB after load", 0, False)],
            secondaries)
        print("\nCPU: the secondary's cgroup (cpuacct), forked processes included, at the moment the serial is "
              "answered. Peak RSS: the cgroup's resident anonymous + shared memory (memory.stat rss + shmem; "
              "binaries, libraries and mmapped files left out), sampled every 20 ms until the data directory "
              "stopped changing. Disk: allocated blocks of the data directory (du) then. "
              "Configurations: Knot's defaults for a secondary (zone file written after each change, journal), "
              "NSD with database \"\" and zonefiles-write: 1 (NSD writes the zone file only every zonefiles-write "
              "seconds, default 3600, and not at exit; 1 s puts the zone on disk for the restart test).")
    if "ixfr" in args.only:
        summary["ixfr"] = print_table(
            results, "ixfr",
            f"3. IXFR: one dynamic update replacing the A record of {args.changes} names ({2 * args.changes} "
            f"records in the IXFR), BIND NOTIFY to all secondaries at once",
            [("ms", "ms from update acknowledged to new serial answered", 1, False)],
            secondaries)
    if "restart" in args.only:
        summary["restart"] = print_table(
            results, "restart",
            f"4. Restart with the {args.records:,}-record zone stored (SIGTERM, wait, start again)",
            [("wall_s", "s to first correct answer", 3, False), ("cpu_s", "CPU s until then", 2, False),
             ("peak_rss_mib", "peak RSS MiB", 0, False), ("stop_s", "SIGTERM → exit s", 2, False),
             ("disk_mib", "disk MiB after stop", 0, False)],
            secondaries)
        print("\nFirst correct answer: the current SOA serial and a record changed by the last IXFR both answered "
              "(polled every 2 ms).")
    if "zones" in args.only:
        for count in args.zone_counts:
            section = f"zones{count}"
            summary[section] = print_table(
                results, section,
                f"5. {count:,} zones of 6 records each, loaded from files; server on CPU {SERVER_CPU}, "
                f"dnsperf on CPU {CLIENT_CPU} over names spread across the zones for {args.duration} s",
                [("load_s", "load s (start → all sampled zones answer)", 2, False),
                 ("cpu_s", "CPU s until loaded", 2, False), ("rss_mib", "RSS MiB after load", 0, False),
                 ("peak_rss_mib", "peak RSS MiB", 0, False), ("qps", "q/s", 0, True), ("lost", "lost", 0, False)],
                SERVERS)
        print("\nLoaded: the last configured zone, the first and 98 random others answer their SOA.")
    print("\nSection wall times: " + ", ".join(f"{name} {seconds / 60:.1f} min" for name, seconds in timings.items())
          + f"; total {(time.monotonic() - STARTED) / 60:.1f} min")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"args": {k: v for k, v in vars(args).items()}, "versions": versions, "timings_s": timings,
                       "runs": results.data, "medians": summary, "notes": results.notes}, out, indent=1)
        log(f"raw numbers written to {args.json}")


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    atexit.register(kill_everything)
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
