#!/usr/bin/env python3
"""An independent zone-transfer client for zonecast's cluster tests.

It asks for AXFR or IXFR over DNS-over-QUIC (RFC 9250), with dnspython's QUIC connection
(aioquic underneath) and a TLS client certificate; or over XFR-over-TLS (RFC 9103, Python's
ssl module, ALPN "dot"); or over plain TCP -- all with the same message handling -- and prints
what it got as one JSON object:

    {"rcode": "NOERROR", "messages": 1, "records": ["example.test. 300 IN SOA ...", ...],
     "stream_finished": true, "transfers": 1, "identical": true}

`records` keeps the order of the stream, one record per entry, in dnspython's presentation
format with absolute names. `stream_finished` says whether the server ended every QUIC stream
(FIN) after its last message, as RFC 9250 section 4.2 requires (always true over TLS and TCP).
With `--repeat N` the same request is made N times on one connection -- over QUIC on N streams
opened and sent before any answer is read (concurrent transfers), over TLS and TCP one after
another -- and `identical` says whether every answer had the same records as the first.
A transport failure (handshake, closed connection, timeout) prints the reason on standard error
and exits with status 2.

dnspython's `dns.query.quic` sends one query and reads one answer; a transfer has many answers on
one stream, so this script opens streams itself through `dns.quic.SyncQuicManager`, whose
aioquic `QuicConfiguration` carries the client certificate (`load_cert_chain`).
"""

import argparse
import json
import socket
import ssl
import struct
import sys
import time

import aioquic.quic.configuration
import dns.exception
import dns.message
import dns.name
import dns.quic
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.quic._common import UnexpectedEOF

# A transfer of a test zone has a handful of messages; this bounds a runaway stream.
MESSAGES_MAX = 10_000
# At most this many requests on one connection.
REPEAT_MAX = 16


def build_query(zone, ixfr_serial, message_id):
    rdtype = dns.rdatatype.AXFR if ixfr_serial is None else dns.rdatatype.IXFR
    query = dns.message.make_query(zone, rdtype)
    query.flags = 0
    if ixfr_serial is not None:
        soa = dns.rrset.from_text(
            dns.name.from_text(zone), 0, "IN", "SOA", f". . {ixfr_serial} 0 0 0 0"
        )
        query.authority.append(soa)
    if message_id is not None:
        query.id = message_id
    return query


class Collector:
    """Follows one transfer stream and says when it is complete."""

    def __init__(self, ixfr):
        self.ixfr = ixfr
        self.records = []
        self.messages = 0
        self.rcode = "NOERROR"
        self.first_serial = None
        self.soa_seen = 0

    def add(self, wire):
        """Takes one message; returns True when the transfer is complete."""
        # No origin: names stay absolute in the output.
        message = dns.message.from_wire(wire, xfr=True, one_rr_per_rrset=True)
        self.messages += 1
        self.rcode = dns.rcode.to_text(message.rcode())
        if message.rcode() != dns.rcode.NOERROR:
            return True
        done = False
        for rrset in message.answer:
            for rdata in rrset:
                self.records.append(
                    f"{rrset.name.to_text()} {rrset.ttl} "
                    f"{dns.rdataclass.to_text(rrset.rdclass)} "
                    f"{dns.rdatatype.to_text(rrset.rdtype)} {rdata.to_text(relativize=False)}"
                )
                if rrset.rdtype == dns.rdatatype.SOA:
                    self.soa_seen += 1
                    if self.first_serial is None:
                        self.first_serial = rdata.serial
                    elif rdata.serial == self.first_serial:
                        # The stream ends with the second occurrence of the first SOA.
                        done = True
        if self.ixfr and self.soa_seen == 1 and len(self.records) == 1:
            # A single SOA: the client is up to date.
            done = True
        if not self.records:
            done = True
        return done


def transfer_quic(args, query, collectors):
    """One stream per collector, all sent before any is read; returns whether every stream
    was finished by the server after its last message."""
    configuration = aioquic.quic.configuration.QuicConfiguration(
        alpn_protocols=["doq"],
        is_client=True,
        verify_mode=ssl.CERT_REQUIRED,
        server_name=args.hostname,
    )
    configuration.load_verify_locations(cafile=args.ca)
    if args.cert:
        configuration.load_cert_chain(args.cert, args.key)
    deadline = time.monotonic() + args.timeout
    manager = dns.quic.SyncQuicManager(conf=configuration)
    with manager:
        connection = manager.connect(args.server, args.port)
        streams = []
        try:
            for _ in collectors:
                stream = connection.make_stream(args.timeout)
                stream.send(query.to_wire(), True)
                streams.append(stream)
        except (UnexpectedEOF, dns.exception.Timeout) as error:
            raise ConnectionError(
                f"QUIC handshake failed: {close_reason(connection) or type(error).__name__}"
            ) from error
        finished = True
        for stream, collector in zip(streams, collectors):
            with stream:
                done = False
                while not done and collector.messages < MESSAGES_MAX:
                    try:
                        wait_readable(stream, connection, deadline)
                        wire = stream.receive(max(deadline - time.monotonic(), 0.1))
                    except (UnexpectedEOF, dns.exception.Timeout) as error:
                        # The server may have closed the connection (a refused client
                        # certificate is only noticed after the client's handshake is done).
                        reason = close_reason(connection) or "no close reason recorded"
                        raise ConnectionError(
                            f"no complete answer ({type(error).__name__}, after "
                            f"{collector.messages} messages): {reason}"
                        ) from error
                    done = collector.add(wire)
                # After the last message the server must end the stream (FIN).
                try:
                    wait_readable(stream, connection, min(deadline, time.monotonic() + 2.0))
                    stream.receive(0.1)
                    finished = False
                except UnexpectedEOF:
                    pass
                except dns.exception.Timeout:
                    finished = False
    return finished


def wait_readable(stream, connection, deadline):
    """Waits until the stream has the start of a message or has ended, or the connection is
    closed (UnexpectedEOF), or the deadline passes (Timeout).

    dnspython's blocking `receive` only wakes up for stream data, so a connection the server
    closes (say, refusing the client certificate) would look like a timeout. This looks at
    dnspython's internal state (`_buffer`, `_lock`, `_done`); without it, it returns at once
    and `receive` waits as usual."""
    buffer = getattr(stream, "_buffer", None)
    lock = getattr(stream, "_lock", None)
    if buffer is None or lock is None or not hasattr(connection, "_done"):
        return
    while True:
        with lock:
            if buffer.have(2):  # raises UnexpectedEOF once the stream has ended
                return
        if connection._done:
            raise UnexpectedEOF
        if time.monotonic() >= deadline:
            raise dns.exception.Timeout
        time.sleep(0.01)


def close_reason(connection):
    """The reason aioquic recorded for a closed connection, if any."""
    event = getattr(getattr(connection, "_connection", None), "_close_event", None)
    if event is None:
        return None
    return f"error code {event.error_code:#x}: {event.reason_phrase}"


def transfer_stream(args, query, collectors):
    """Plain TCP, or TLS with `--tls`: the requests one after another on one connection."""
    deadline = time.monotonic() + args.timeout
    with socket.create_connection((args.server, args.port), timeout=args.timeout) as raw:
        sock = raw
        if args.tls:
            context = ssl.create_default_context(cafile=args.ca)
            context.minimum_version = ssl.TLSVersion.TLSv1_3
            context.set_alpn_protocols(["dot"])
            if args.cert:
                context.load_cert_chain(args.cert, args.key)
            sock = context.wrap_socket(raw, server_hostname=args.hostname)
            if sock.selected_alpn_protocol() != "dot":
                raise ConnectionError(
                    f"ALPN {sock.selected_alpn_protocol()!r} negotiated, not 'dot'"
                )
        for collector in collectors:
            wire = query.to_wire()
            sock.sendall(struct.pack("!H", len(wire)) + wire)
            done = False
            while not done and collector.messages < MESSAGES_MAX:
                sock.settimeout(max(deadline - time.monotonic(), 0.1))
                (length,) = struct.unpack("!H", read_exactly(sock, 2))
                done = collector.add(read_exactly(sock, length))
    return True


def read_exactly(sock, amount):
    data = b""
    while len(data) < amount:
        chunk = sock.recv(amount - len(data))
        if not chunk:
            raise ConnectionError("connection closed inside a message")
        data += chunk
    return data


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True, help="IP address (loopback in tests)")
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--zone", required=True)
    parser.add_argument("--ixfr", type=int, help="ask for IXFR from this serial")
    transport = parser.add_mutually_exclusive_group()
    transport.add_argument("--tcp", action="store_true", help="plain TCP instead of QUIC")
    transport.add_argument("--tls", action="store_true", help="XFR-over-TLS instead of QUIC")
    parser.add_argument("--ca", help="CA file the server's certificate must chain to")
    parser.add_argument("--hostname", help="the name the server's certificate must carry")
    parser.add_argument("--cert", help="client certificate (PEM)")
    parser.add_argument("--key", help="client private key (PEM)")
    parser.add_argument("--repeat", type=int, default=1, help="requests on one connection")
    parser.add_argument(
        "--message-id", type=int, help="message ID (default: 0 over QUIC, random otherwise)"
    )
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    if not args.tcp and not (args.ca and args.hostname):
        parser.error("QUIC and TLS need --ca and --hostname")
    if not 1 <= args.repeat <= REPEAT_MAX:
        parser.error(f"--repeat must be between 1 and {REPEAT_MAX}")

    quic = not (args.tcp or args.tls)
    message_id = args.message_id
    if message_id is None and quic:
        # RFC 9250 section 4.2.1: the Message ID is 0 over QUIC.
        message_id = 0
    query = build_query(args.zone, args.ixfr, message_id)
    collectors = [Collector(ixfr=args.ixfr is not None) for _ in range(args.repeat)]
    try:
        if quic:
            finished = transfer_quic(args, query, collectors)
        else:
            finished = transfer_stream(args, query, collectors)
    except (ConnectionError, OSError, dns.exception.DNSException, UnexpectedEOF) as error:
        print(f"transfer failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    first = collectors[0]
    print(
        json.dumps(
            {
                "rcode": first.rcode,
                "messages": first.messages,
                "records": first.records,
                "stream_finished": finished,
                "transfers": len(collectors),
                "identical": all(c.records == first.records for c in collectors),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
