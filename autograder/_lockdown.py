"""Lock a sandboxed process down: resource limits and a seccomp filter, then no way back.

Loaded by the processes that run student code (the sandbox's child and the
jailed Jupyter kernel), inside bubblewrap, after their trusted start-up
(interpreter, NumPy, SciPy, the kernel's sockets) and before any student code.
Standard library plus ``pyseccomp`` (a thin binding of libseccomp) only, since
it is loaded by path, outside any package.

The filter makes these system calls fail with EPERM for the rest of the
process's life (a seccomp filter cannot be removed, and ``no_new_privs`` is set):
running programs (``execve``), new processes (``fork``, ``vfork``, ``clone``
without ``CLONE_THREAD``; ``clone3`` says ENOSYS so that threads fall back to
``clone``), sockets (all of them; for the kernel, all but Unix-domain, netlink and
IP ones, which reach nothing but the jail's own loopback), tracing other processes,
device files and FIFOs (``mknod``), links and symlinks, extended attributes,
anonymous executable memory files, mounts and namespaces, kernel keyrings,
BPF, perf and the like.
"""

import errno
import resource
import socket

CLONE_THREAD = 0x00010000

DENIED = (
    "execve", "execveat", "fork", "vfork",
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd", "pidfd_open",
    "mknod", "mknodat", "symlink", "symlinkat", "link", "linkat",
    "setxattr", "lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr",
    "memfd_create", "memfd_secret",
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "move_mount", "open_tree",
    "fsopen", "fsmount", "fsconfig", "fspick", "mount_setattr",
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "reboot", "swapon", "swapoff", "acct", "quotactl", "settimeofday", "clock_settime",
    "clock_adjtime", "adjtimex", "sethostname", "setdomainname", "syslog", "personality",
    "ioperm", "iopl", "uselib", "vhangup", "name_to_handle_at", "open_by_handle_at",
    "fanotify_init", "lookup_dcookie",
)


def set_limits(limits: dict) -> None:
    """Apply ``{"RLIMIT_AS": bytes, ...}`` (soft and hard: they cannot be raised again)."""
    for name, value in limits.items():
        resource.setrlimit(getattr(resource, name), (value, value))


def lock_down(local_sockets: bool = False) -> None:
    """Load the seccomp filter into this process (and every thread it starts later).

    ``local_sockets`` lets Unix-domain and IP sockets through, for the kernel: its
    clients talk to it over Unix sockets and ipykernel's own threads over
    127.0.0.1 (ZeroMQ lists the interfaces through netlink first), and the
    sandbox's network namespace has nothing but a private loopback, so there is
    nowhere else to reach, and no capability to change it (or to open a raw
    IP socket). Packet sockets and the other families stay denied.
    """
    import pyseccomp as sc

    deny = sc.ERRNO(errno.EPERM)
    rules = sc.SyscallFilter(defaction=sc.ALLOW)
    for name in DENIED:
        try:
            rules.add_rule(deny, name)
        except (ValueError, OSError, RuntimeError):  # not a system call on this architecture
            pass
    rules.add_rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, CLONE_THREAD, 0))
    rules.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    if local_sockets:
        allowed = (socket.AF_UNIX, socket.AF_INET, socket.AF_INET6, socket.AF_NETLINK)
        for call in ("socket", "socketpair"):
            for family in range(64):  # every other address family
                if family not in allowed:
                    rules.add_rule(deny, call, sc.Arg(0, sc.EQ, family))
    else:
        rules.add_rule(deny, "socket")
        rules.add_rule(deny, "socketpair")
    rules.load()
