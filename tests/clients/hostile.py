#!/usr/bin/python3
"""A client with a user's key that behaves as an attacker would, on paramiko.

Usage: hostile.py PORT USER KEYFILE KNOWN_HOSTS SCENARIO [ARG...]

Scenarios (each prints one result line per step and flushes it):
  hold            log in, open an SFTP session and keep it; then read commands
                  from stdin, one per line, and answer each with OK or ERR <why>:
                    put NAME BYTES   upload on a new SFTP channel of the same connection
                    held-put NAME BYTES   upload on the SFTP session opened at the start
                    rm NAME          delete on a new channel
                    alive            is the session opened at the start still served?
                    connected        is the connection still up?
  flood CONNS CHANNELS
                  open CONNS logged-in connections, each asking for CHANNELS
                  SFTP channels; print "LOGGED-IN n CHANNELS k", then hold
                  everything until stdin closes
  banner COUNT SOURCE
                  open COUNT sockets from address SOURCE that send only an SSH
                  banner; print "READY"; on each stdin line print "OPEN n" (how
                  many the server has not closed); stop at stdin's end
  kex-idle SOURCE
                  key exchange from SOURCE, then no login, only SSH_MSG_IGNORE
                  every half second; print "CLOSED-AFTER s" when the server
                  closes the connection (or "OPEN-AFTER s" after 60 s)
  listings DIR HANDLES
                  open HANDLES directory handles on DIR at once and read one
                  batch from each; print "OPENED n ENTRIES m"
  churn COUNT     create and delete COUNT files one after the other; print "DONE"
  long-line MIB   send MIB MiB without a newline to `scp -t .`; print "ENDED"
                  when the server ends the exchange
"""
import os
import socket
import sys
import time

import paramiko


def say(line):
    print(line, flush=True)


def transport(port, user, keyfile, known_hosts, source=None):
    # Logged-in attacks may come from another loopback address, so that a
    # test's victim on 127.0.0.1 shares no per-address limit with them.
    source = source or os.environ.get("HOSTILE_SOURCE", "127.0.0.1")
    sock = socket.create_connection(("127.0.0.1", port), source_address=(source, 0))
    t = paramiko.Transport(sock)
    t.start_client(timeout=30)
    keys = paramiko.HostKeys(known_hosts)
    server_key = t.get_remote_server_key()
    if not any(k == server_key for host in keys.values() for k in host.values()):
        raise SystemExit("host key not in known_hosts")
    try:
        t.auth_publickey(user, paramiko.Ed25519Key.from_private_key_file(keyfile))
    except Exception:
        t.close()
        raise
    return t


def upload(sftp, name, size):
    with sftp.open(name, "wb") as f:
        f.set_pipelined(True)
        left = size
        block = os.urandom(32768)
        while left > 0:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n


def answer(fn):
    try:
        fn()
        say("OK")
    except Exception as e:  # the reason goes back to the test
        say(f"ERR {type(e).__name__}: {e}")


def hold(t):
    held = paramiko.SFTPClient.from_transport(t)
    say("READY")
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        cmd = words[0]
        if cmd == "put":
            def put():
                s = paramiko.SFTPClient.from_transport(t)
                try:
                    upload(s, words[1], int(words[2]))
                finally:
                    s.close()
            answer(put)
        elif cmd == "held-put":
            answer(lambda: upload(held, words[1], int(words[2])))
        elif cmd == "rm":
            def rm():
                s = paramiko.SFTPClient.from_transport(t)
                try:
                    s.remove(words[1])
                finally:
                    s.close()
            answer(rm)
        elif cmd == "alive":
            answer(lambda: held.stat("."))
        elif cmd == "connected":
            say("OK" if t.is_active() else "ERR closed")
        else:
            say(f"ERR unknown command {cmd}")


def flood(args, conns, channels):
    logged_in, opened, held = 0, 0, []
    for _ in range(conns):
        try:
            t = transport(*args)
        except Exception:
            continue
        logged_in += 1
        held.append(t)
        for _ in range(channels):
            try:
                ch = t.open_session(timeout=10)
                ch.invoke_subsystem("sftp")
                held.append(ch)
                opened += 1
            except Exception:
                break
    say(f"LOGGED-IN {logged_in} CHANNELS {opened}")
    sys.stdin.read()


def banner(port, count, source):
    socks = []
    for _ in range(count):
        try:
            s = socket.create_connection(("127.0.0.1", port), source_address=(source, 0), timeout=5)
            s.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
            socks.append(s)
        except OSError:
            pass
    say("READY")
    for _ in sys.stdin:
        still = 0
        for s in socks:
            s.setblocking(False)
            try:
                while True:
                    data = s.recv(65536)
                    if not data:
                        break
            except BlockingIOError:
                still += 1
                continue
            except OSError:
                pass
        say(f"OPEN {still}")


def kex_idle(port, source):
    sock = socket.create_connection(("127.0.0.1", port), source_address=(source, 0))
    t = paramiko.Transport(sock)
    t.start_client(timeout=30)
    start = time.monotonic()
    while time.monotonic() - start < 60:
        if not t.is_active():
            say(f"CLOSED-AFTER {time.monotonic() - start:.1f}")
            return
        try:
            t.send_ignore(16)
        except Exception:
            say(f"CLOSED-AFTER {time.monotonic() - start:.1f}")
            return
        time.sleep(0.5)
    say(f"OPEN-AFTER {time.monotonic() - start:.1f}")


def listings(t, directory, count):
    sftp = paramiko.SFTPClient.from_transport(t)
    handles, entries = [], 0
    for _ in range(count):
        try:
            _, msg = sftp._request(paramiko.sftp.CMD_OPENDIR, directory)
            handles.append(msg.get_binary())
        except Exception:
            break
    for h in handles:
        try:
            _, msg = sftp._request(paramiko.sftp.CMD_READDIR, h)
            entries += msg.get_int()
        except Exception:
            pass
    say(f"OPENED {len(handles)} ENTRIES {entries}")
    for h in handles:
        try:
            sftp._request(paramiko.sftp.CMD_CLOSE, h)
        except Exception:
            pass


def churn(t, count):
    sftp = paramiko.SFTPClient.from_transport(t)
    for i in range(count):
        name = f"churn-{i % 50}"
        with sftp.open(name, "wb") as f:
            f.write(b"x")
        sftp.remove(name)
    say("DONE")


def long_line(t, mib):
    ch = t.open_session(timeout=10)
    ch.exec_command("scp -t .")
    block = b"C" * (1024 * 1024)
    try:
        for _ in range(mib):
            ch.sendall(block)
    except Exception:
        pass
    ch.shutdown_write()
    # Drain whatever comes back (a server must not echo the line) until the exit status.
    ch.settimeout(1.0)
    deadline = time.monotonic() + 60
    while not ch.exit_status_ready() and time.monotonic() < deadline:
        for recv in (ch.recv, ch.recv_stderr):
            try:
                recv(1 << 20)
            except Exception:
                pass
    say("ENDED" if ch.exit_status_ready() else "STUCK")
    ch.close()


def main():
    port, user, keyfile, known_hosts, scenario = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
    rest = sys.argv[6:]
    args = (port, user, keyfile, known_hosts)
    if scenario == "hold":
        hold(transport(*args))
    elif scenario == "flood":
        flood(args, int(rest[0]), int(rest[1]))
    elif scenario == "banner":
        banner(port, int(rest[0]), rest[1])
    elif scenario == "kex-idle":
        kex_idle(port, rest[0])
    elif scenario == "listings":
        listings(transport(*args), rest[0], int(rest[1]))
    elif scenario == "churn":
        churn(transport(*args), int(rest[0]))
    elif scenario == "long-line":
        long_line(transport(*args), int(rest[0]))
    else:
        raise SystemExit(f"unknown scenario {scenario}")


if __name__ == "__main__":
    main()
