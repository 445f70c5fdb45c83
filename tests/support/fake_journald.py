"""A stand-in for systemd-journald, for tests/journal.rs.

Run inside a private mount namespace with a tmpfs over /run/systemd (so the host's journal, if
any, is untouched). Binds /run/systemd/journal/socket, starts the command given on the command
line the way systemd starts a service (stderr to a stream named by JOURNAL_STREAM), reads the
native-protocol datagrams it sends, and prints each entry as one JSON object per line.

Usage: fake_journald.py STDERR_FILE UNTIL_TEXT TIMEOUT_S -- COMMAND...
Stops the command with SIGTERM once an entry's MESSAGE contains UNTIL_TEXT (or at the timeout).
"""
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time


def parse(datagram):
    """Native journal protocol: KEY=value lines, or KEY\\n<u64 LE length><value>\\n."""
    fields, i = {}, 0
    while i < len(datagram):
        nl = datagram.index(b"\n", i)
        line = datagram[i:nl]
        if b"=" in line:
            key, value = line.split(b"=", 1)
            i = nl + 1
        else:
            key = line
            (size,) = struct.unpack("<Q", datagram[nl + 1:nl + 9])
            value = datagram[nl + 9:nl + 9 + size]
            i = nl + 9 + size + 1
        fields[key.decode()] = value.decode("utf-8", "replace")
    return fields


def receive(sock):
    """One entry; a large one arrives as a memfd passed with SCM_RIGHTS and an empty payload."""
    data, ancdata, _flags, _addr = sock.recvmsg(1 << 20, socket.CMSG_SPACE(struct.calcsize("i")))
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            (fd,) = struct.unpack("i", payload[: struct.calcsize("i")])
            with os.fdopen(fd, "rb") as memfd:
                memfd.seek(0)
                data = memfd.read()
    # An empty datagram is a client checking that the socket is there; journald ignores it.
    return parse(data) if data else None


def main():
    stderr_path, until, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
    command = sys.argv[sys.argv.index("--") + 1:]
    os.makedirs("/run/systemd/journal", exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("/run/systemd/journal/socket")
    sock.settimeout(0.2)
    with open(stderr_path, "wb") as err:
        st = os.fstat(err.fileno())
        env = dict(os.environ, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
        child = subprocess.Popen(command, stderr=err, stdout=err, env=env)
    deadline = time.monotonic() + timeout
    stopping = False
    while child.poll() is None and time.monotonic() < deadline + 20:
        try:
            entry = receive(sock)
        except socket.timeout:
            entry = None
        if entry is not None:
            print(json.dumps(entry), flush=True)
        hit = entry is not None and until in entry.get("MESSAGE", "")
        if not stopping and (hit or time.monotonic() > deadline):
            child.send_signal(signal.SIGTERM)
            stopping = True
    if child.poll() is None:
        child.kill()
    # Whatever was sent while stopping.
    try:
        while True:
            entry = receive(sock)
            if entry is not None:
                print(json.dumps(entry), flush=True)
    except socket.timeout:
        pass
    sys.exit(0 if child.wait() == 0 else 1)


main()
