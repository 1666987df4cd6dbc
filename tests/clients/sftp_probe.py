#!/usr/bin/python3
"""SFTP protocol probe built on paramiko (the library duplicity uses).

Usage: sftp_probe.py PORT USER KEYFILE KNOWN_HOSTS SCENARIO [ARG]

Scenarios:
  semantics       status codes, EOF, EXCL, APPEND, truncation, plain RENAME,
                  many outstanding reads and writes on several handles
  hold-upload P   open P for writing, write 1 MiB, print READY, then wait
  over-quota N    upload N bytes, print REFUSED <message> or ACCEPTED
"""
import errno
import os
import sys
import time

import paramiko


def connect(port, user, keyfile, known_hosts):
    client = paramiko.SSHClient()
    client.load_host_keys(known_hosts)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect("127.0.0.1", port=port, username=user, key_filename=keyfile,
                   allow_agent=False, look_for_keys=False)
    return client


def expect_error(fn, want_errno=None, what=""):
    try:
        fn()
    except IOError as e:
        if want_errno is not None and e.errno != want_errno:
            raise AssertionError(f"{what}: errno {e.errno} ({e}), wanted {want_errno}")
        return e
    raise AssertionError(f"{what}: no error")


def semantics(sftp):
    data = os.urandom(3 * 1024 * 1024 + 123)
    with sftp.open("big", "wb") as f:
        f.set_pipelined(True)
        for i in range(0, len(data), 32768):
            f.write(data[i:i + 32768])
    assert sftp.stat("big").st_size == len(data), "size after upload"

    # paramiko's prefetch issues every READ at once; the reply order and EOF must hold.
    with sftp.open("big", "rb") as f:
        f.prefetch()
        got = f.read()
    assert got == data, "prefetched read differs"
    with sftp.open("big", "rb") as f:
        f.seek(len(data) + 10)
        assert f.read(100) == b"", "read past EOF must be empty"

    # Several handles busy at once, writes interleaved.
    handles = [sftp.open(f"multi-{i}", "wb") for i in range(4)]
    for h in handles:
        h.set_pipelined(True)
    for chunk in range(20):
        for i, h in enumerate(handles):
            h.write(bytes([i]) * 10000)
    for h in handles:
        h.close()
    for i in range(4):
        with sftp.open(f"multi-{i}", "rb") as f:
            assert f.read() == bytes([i]) * 200000, f"multi-{i}"

    # Status codes clients rely on.
    sftp.mkdir("d")
    e = expect_error(lambda: sftp.mkdir("d"), what="mkdir existing")
    assert e.errno != errno.ENOENT, "mkdir of an existing directory must be FAILURE, not NO_SUCH_FILE"
    expect_error(lambda: sftp.mkdir("missing/child"), errno.ENOENT, "mkdir with missing parent")
    expect_error(lambda: sftp.stat("nope"), errno.ENOENT, "stat missing")
    expect_error(lambda: sftp.open("nope", "rb"), errno.ENOENT, "open missing")
    e = expect_error(lambda: sftp.rename("multi-0", "multi-1"), what="plain rename onto existing")
    assert e.errno != errno.ENOENT
    assert sftp.open("multi-1", "rb").read(1) == bytes([1]), "plain rename replaced its target"
    sftp.posix_rename("multi-0", "multi-1")
    assert sftp.open("multi-1", "rb").read(1) == bytes([0]), "posix-rename did not replace"
    expect_error(lambda: sftp.open("big", "wx"), what="EXCL on existing")
    with sftp.open("fresh", "wx") as f:
        f.write(b"excl ok")
    e = expect_error(lambda: sftp.rmdir("/"), what="rmdir root")
    sftp.open("d/f", "wb").close()
    expect_error(lambda: sftp.rmdir("d"), what="rmdir non-empty")

    # APPEND lands at the end; truncate via SETSTAT; FSETSTAT size.
    with sftp.open("app", "wb") as f:
        f.write(b"one")
    with sftp.open("app", "ab") as f:
        f.write(b"two")
    assert sftp.open("app", "rb").read() == b"onetwo", "append"
    sftp.truncate("app", 2)
    assert sftp.open("app", "rb").read() == b"on", "truncate"
    with sftp.open("app", "r+") as f:
        f.truncate(1)
    assert sftp.stat("app").st_size == 1, "ftruncate"

    # Paths: REALPATH of '.', of '<dir>/.', relative names.
    assert sftp.normalize(".") == "/", sftp.normalize(".")
    assert sftp.normalize("d/.") == "/d"
    assert sftp.normalize("../../d") == "/d"
    assert sorted(sftp.listdir(".")) == sorted(["big", "multi-1", "multi-2", "multi-3", "d", "fresh", "app"]), sftp.listdir(".")

    # Symlinks and chmod.
    sftp.symlink("app", "lnk")
    assert sftp.readlink("lnk") == "app"
    sftp.chmod("app", 0o640)
    assert sftp.stat("app").st_mode & 0o777 == 0o640
    sftp.chmod("app", 0o4755)
    assert sftp.stat("app").st_mode & 0o7777 == 0o755, "set-id bits must be dropped"
    print("semantics OK")


def over_quota(sftp, size):
    """Uploads SIZE bytes; prints the server's message when refused."""
    try:
        with sftp.open("over-quota.bin", "wb") as f:
            f.write(os.urandom(int(size)))
    except IOError as e:
        print(f"REFUSED {e}")
        return
    print("ACCEPTED")


def hold_upload(sftp, path):
    f = sftp.open(path, "wb")
    f.write(os.urandom(1024 * 1024))
    f.flush()
    # Make sure the server has the bytes before the test pulls the plug.
    sftp.stat(".")
    print("READY", flush=True)
    time.sleep(60)


def main():
    port, user, keyfile, known_hosts, scenario = sys.argv[1:6]
    client = connect(int(port), user, keyfile, known_hosts)
    sftp = client.open_sftp()
    if scenario == "semantics":
        semantics(sftp)
    elif scenario == "over-quota":
        over_quota(sftp, sys.argv[6])
    elif scenario == "hold-upload":
        hold_upload(sftp, sys.argv[6])
    else:
        sys.exit(f"unknown scenario {scenario}")


if __name__ == "__main__":
    main()
