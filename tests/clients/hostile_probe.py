#!/usr/bin/python3
"""Attacks on one session worker, driven with paramiko as a client holding
a user's key would.

Usage: hostile_probe.py PORT USER KEYFILE KNOWN_HOSTS SCENARIO [ARG...]

Scenarios:
  inode-reuse FULL_KEY N
        KEYFILE is an append-only key, FULL_KEY a full key of the same user.
        The append-only session creates N files and keeps them until they
        are gone (half it deletes, half the full key deletes); the full key
        then uploads N files, which the file system gives the freed inode
        numbers; the append-only session, still connected, tries to remove,
        overwrite, append to, truncate, chmod and rename each. Prints
        CHANGED <what> <path> for every change that went through, then
        OWN <result> for finishing a file it still has, then DONE.
  scp-line COMMAND FIRST TOTAL
        Runs exec COMMAND (`scp -t .`, `scp -f FILE`), sends the byte FIRST
        (hex) and then up to TOTAL bytes without a newline. Prints
        SENT <bytes> EXIT <status> SECONDS <s> and the output (repr).
  many-opendir DIR N
        Opens DIR up to N times (one READDIR on each handle), prints
        OPENED <count> [REFUSED <message>], then HOLDING, and keeps the
        handles open until standard input closes.
"""
import sys
import time

import paramiko
from paramiko.sftp import CMD_OPENDIR, CMD_READDIR


def connect(port, user, keyfile, known_hosts):
    client = paramiko.SSHClient()
    client.load_host_keys(known_hosts)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect("127.0.0.1", port=port, username=user, key_filename=keyfile,
                   allow_agent=False, look_for_keys=False)
    return client


def attempt(changed, what, path, fn):
    try:
        fn()
    except IOError:
        return
    changed.append(f"{what} {path}")


def inode_reuse(append, full, n):
    # One directory for both keys, as when they back up to the same place:
    # ext4 gives a file an inode near its directory's, so the numbers the
    # append-only session frees are the next ones handed out there.
    append.mkdir("backup")
    for i in range(n):
        with append.open(f"backup/own-{i}", "wb") as f:
            f.write(b"x")
    with append.open("keep", "wb") as f:
        f.write(b"mine")
    for i in range(n):
        # Half removed by the session that made them, half by another key:
        # either way the numbers go back to the file system.
        (append if i % 2 == 0 else full).remove(f"backup/own-{i}")
    for i in range(n):
        with full.open(f"backup/v-{i}", "wb") as f:
            f.write(b"history %d" % i)
    changed = []

    def write(path, mode):
        with append.open(path, mode) as f:
            f.write(b"rewritten")

    for i in range(n):
        p = f"backup/v-{i}"
        attempt(changed, "overwrite", p, lambda: write(p, "wb"))
        attempt(changed, "append", p, lambda: write(p, "ab"))
        attempt(changed, "write-in-place", p, lambda: write(p, "r+"))
        attempt(changed, "truncate", p, lambda: append.truncate(p, 0))
        attempt(changed, "chmod", p, lambda: append.chmod(p, 0o600))
        attempt(changed, "rename", p, lambda: append.rename(p, p + ".moved"))
        attempt(changed, "remove", p, lambda: append.remove(p))
    for c in changed:
        print("CHANGED", c)
    # A file the session made and still has can be finished as before.
    try:
        with append.open("keep", "ab") as f:
            f.write(b" and more")
        append.remove("keep")
        print("OWN finished")
    except IOError as e:
        print(f"OWN refused: {e}")
    print("DONE", flush=True)


def scp_line(client, command, first, total):
    chan = client.get_transport().open_session()
    chan.exec_command(command)
    chunk = b"a" * (1 << 20)
    sent = 0
    start = time.time()
    try:
        chan.sendall(bytes.fromhex(first))
        while sent < total and not chan.exit_status_ready():
            n = chan.send(chunk[:min(len(chunk), total - sent)])
            if n <= 0:
                break
            sent += n
        chan.shutdown_write()
    except (OSError, EOFError, paramiko.SSHException):
        pass
    status = chan.recv_exit_status()
    seconds = time.time() - start
    out = b""
    while chan.recv_ready():
        out += chan.recv(65536)
    print(f"SENT {sent} EXIT {status} SECONDS {seconds:.1f}")
    print(f"OUTPUT {out!r}", flush=True)


def many_opendir(sftp, path, n):
    opened = []
    refused = ""
    for _ in range(n):
        try:
            _, msg = sftp._request(CMD_OPENDIR, path)
            handle = msg.get_binary()
            sftp._request(CMD_READDIR, handle)
            opened.append(handle)
        except IOError as e:
            refused = f" REFUSED {e}"
            break
    print(f"OPENED {len(opened)}{refused}")
    print("HOLDING", flush=True)
    sys.stdin.read()


def main():
    port, user, keyfile, known_hosts, scenario = sys.argv[1:6]
    args = sys.argv[6:]
    client = connect(int(port), user, keyfile, known_hosts)
    if scenario == "inode-reuse":
        full = connect(int(port), user, args[0], known_hosts)
        inode_reuse(client.open_sftp(), full.open_sftp(), int(args[1]))
    elif scenario == "scp-line":
        scp_line(client, args[0], args[1], int(args[2]))
    elif scenario == "many-opendir":
        many_opendir(client.open_sftp(), args[0], int(args[1]))
    else:
        sys.exit(f"unknown scenario {scenario}")


if __name__ == "__main__":
    main()
