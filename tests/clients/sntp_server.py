#!/usr/bin/python3
"""A minimal SNTP server for tests: answers every request on 127.0.0.1:PORT
with the host's time plus OFFSET seconds (stratum 2). Prints "ready" once bound."""
import socket
import struct
import sys
import time

NTP_EPOCH = 2208988800


def ntp(t):
    secs = int(t)
    return (secs + NTP_EPOCH) << 32 | int((t - secs) * (1 << 32))


def main():
    port, offset = int(sys.argv[1]), float(sys.argv[2])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    print("ready", flush=True)
    while True:
        data, peer = sock.recvfrom(512)
        if len(data) < 48:
            continue
        received = ntp(time.time() + offset)
        origin = data[40:48]
        reply = struct.pack("!BBbbII4sQ", (0 << 6) | (4 << 3) | 4, 2, 6, -20, 0, 0, b"TEST", received)
        reply += origin + struct.pack("!QQ", received, ntp(time.time() + offset))
        sock.sendto(reply, peer)


if __name__ == "__main__":
    main()
