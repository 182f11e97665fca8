"""Set up a jail inside fresh user + mount (+ network, pid) namespaces, then run a command.

Run as ``unshare -rm [-n] [-p --fork --mount-proc] --propagation private python -I -S
_jail_setup.py SPEC.json -- command...``. Standard library only: it runs before
anything else, as root of the new user namespace, and:

1. hides directories (the course, the repository, /tmp, home directories...) under
   empty read-only tmpfs mounts, files under /dev/null;
2. binds back the paths the command needs (the Python installation, read-only,
   and its work directory, read-write or read-only);
3. brings the loopback interface up if the network namespace is new (so a
   Jupyter kernel can still talk to its client over 127.0.0.1, and nothing else);
4. enters a nested user namespace, which locks those mounts (the command cannot
   unmount them to see what is underneath) and drops every capability;
5. runs the command and passes on its exit status (a signal N as 128 + N).
"""

import fcntl
import json
import os
import socket
import struct
import subprocess
import sys


def run(*args, **kwargs):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs)


def under(path, root):
    return path == root or path.startswith(root.rstrip("/") + "/")


def loopback_up():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        iff_up, iff_loopback, iff_running = 0x1, 0x8, 0x40
        request = struct.pack("16sH14s", b"lo", iff_up | iff_loopback | iff_running, b"\0" * 14)
        fcntl.ioctl(sock, 0x8914, request)  # SIOCSIFFLAGS
    finally:
        sock.close()


def main():
    separator = sys.argv.index("--")
    with open(sys.argv[1]) as handle:
        spec = json.load(handle)
    command = sys.argv[separator + 1:]
    # Our cwd would keep a handle on the real file system under the mounts: remember
    # it as a path, and enter it again once the mounts are in place.
    start_cwd = os.getcwd()

    keeps = [(os.path.realpath(p), writable) for p, writable in spec["keep"]]
    keeps = [(p, w) for p, w in keeps if os.path.isdir(p)]
    fds = {path: os.open(path, os.O_RDONLY | os.O_DIRECTORY) for path, _ in keeps}

    hides = sorted({os.path.realpath(p) for p in spec["hide"] if os.path.lexists(p)})
    hides = [h for h in hides if not any(under(h, o) and h != o for o in hides)]
    # never hide what we keep, nor a directory holding something we keep by hiding
    # it whole when the kept path is that directory itself
    hides = [h for h in hides if not any(under(h, keep) for keep, _ in keeps)]
    for path in hides:
        if os.path.isdir(path):
            run("mount", "-t", "tmpfs", "-o", "size=64k,mode=755,nosuid,nodev", "tmpfs", path)
            for keep, _ in keeps:  # mount points for what goes back in
                if under(keep, path):
                    os.makedirs(keep, exist_ok=True)
            run("mount", "-o", "remount,ro,bind", path)
        else:
            run("mount", "--bind", "/dev/null", path)

    for path, writable in keeps:
        if not any(under(path, h) for h in hides):
            continue
        fd = fds[path]
        run("mount", "--no-canonicalize", "--bind", f"/proc/self/fd/{fd}", path,
            pass_fds=(fd,))
        if not writable:
            run("mount", "-o", "remount,ro,bind", path)
    for fd in fds.values():
        os.close(fd)

    if spec.get("loopback"):
        loopback_up()
    os.chdir(start_cwd)
    # A nested user namespace locks the mounts above and drops our capabilities. We
    # stay as the namespace's init (PID 1 ignores signals it has no handler for, so
    # the command must not be PID 1) and report a death by signal N as 128 + N.
    child = subprocess.Popen(["unshare", "--user", "--", *command], close_fds=False)
    code = child.wait()
    sys.exit(128 - code if code < 0 else code)


if __name__ == "__main__":
    main()
