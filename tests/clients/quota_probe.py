#!/usr/bin/python3
"""Quota probes on paramiko, driven as a hostile key would.

Usage: quota_probe.py PORT USER KEYFILE KNOWN_HOSTS SCENARIO [ARG]

Scenarios:
  empty-files N   create N empty files in a new directory, print READY,
                  then keep the session open until standard input closes
  mkdirs P N      make up to N directories P0, P1, …; print MADE <count>
                  and, if one was refused, REFUSED <message>
  upload NAME N   upload N bytes to NAME; print ACCEPTED or REFUSED <message>
"""
import os
import sys

import paramiko


def connect(port, user, keyfile, known_hosts):
    client = paramiko.SSHClient()
    client.load_host_keys(known_hosts)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect("127.0.0.1", port=port, username=user, key_filename=keyfile,
                   allow_agent=False, look_for_keys=False)
    return client


def empty_files(sftp, count):
    d = "empty-%d" % os.getpid()
    sftp.mkdir(d)
    for i in range(count):
        with sftp.open("%s/f%d" % (d, i), "wb"):
            pass
    print("READY", flush=True)
    sys.stdin.read()


def mkdirs(sftp, prefix, count):
    made = 0
    refused = None
    for i in range(count):
        try:
            sftp.mkdir("%s%d" % (prefix, i))
            made += 1
        except IOError as e:
            refused = str(e)
            break
    print("MADE %d" % made, flush=True)
    if refused is not None:
        print("REFUSED %s" % refused, flush=True)


def upload(sftp, name, size):
    try:
        with sftp.open(name, "wb") as f:
            chunk = b"\x5a" * 32768
            left = size
            while left > 0:
                f.write(chunk[:min(left, len(chunk))])
                left -= len(chunk)
        print("ACCEPTED", flush=True)
    except IOError as e:
        print("REFUSED %s" % e, flush=True)


def main():
    port, user, keyfile, known_hosts, scenario = sys.argv[1:6]
    args = sys.argv[6:]
    client = connect(int(port), user, keyfile, known_hosts)
    sftp = client.open_sftp()
    if scenario == "empty-files":
        empty_files(sftp, int(args[0]))
    elif scenario == "mkdirs":
        mkdirs(sftp, args[0], int(args[1]))
    elif scenario == "upload":
        upload(sftp, args[0], int(args[1]))
    else:
        sys.exit("unknown scenario " + scenario)
    sftp.close()
    client.close()


if __name__ == "__main__":
    main()
