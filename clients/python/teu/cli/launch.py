"""The ``teu`` command's launcher: hands the command to the user's resident client (resident.py), which
already holds grpc and the stubs, and exits with its exit code; runs it in this process instead
when there is no resident (and starts one for the next command).

Only the standard library's lightest modules are imported here: this file is what each command
costs before the resident takes over. The command gets this process's stdin, stdout and stderr
themselves (SCM_RIGHTS), its arguments, environment and working directory; the signals this
process receives (Ctrl-C in a cooked terminal, SIGTERM, window changes) go on to it. TEU_RESIDENT=0
keeps every command in this process.
"""

# the C modules under signal and socket: their Python wrappers import enum, a few ms each (and no
# `from __future__`: a module to load, for annotations that evaluate as they are)
import _signal  # type: ignore[import-not-found]  # (no stubs: the module under signal)
import _socket
import os
import sys

#: Signals handed on to the command while it runs.
FORWARDED = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT, _signal.SIGWINCH, _signal.SIGUSR1, _signal.SIGUSR2)
#: The launcher's stdin, stdout and stderr, as SCM_RIGHTS carries them (three C ints).
STDIO = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2))
#: Largest request (argv and environment) sent in one packet; a larger one runs here.
MAX_REQUEST = 128 << 10


def runtime_dir() -> str:
    """The user's private folder for the resident's socket (made 0700; refused unless it is the user's
    own and closed to others, so no one else can stand in for the resident)."""
    uid = os.getuid()
    base = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    path = os.path.join(base, f"teu-cli-{uid}")
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if st.st_uid != uid or st.st_mode & 0o077 or not os.path.isdir(path) or os.path.islink(path):
        raise PermissionError(f"{path} is not the user's own private folder")
    return path


def identity() -> str:
    """What the resident must match to serve this launcher: the interpreter and the code it would run
    (the newest modification of the SDK's and the contracts' modules), so an upgraded or edited
    client never reaches a resident that imported the old one."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../teu
    newest = 0
    for folder in (here, os.path.join(here, "cli"), *_contract_dirs()):
        try:
            with os.scandir(folder) as entries:
                newest = max([newest, *(e.stat().st_mtime_ns for e in entries if e.name.endswith(".py"))])
        except OSError:
            continue
    # the groups decide who may use the engine's socket, the locale how output is encoded: a resident
    # started under others would not run the command as this process would
    groups = ",".join(str(g) for g in sorted({os.getgid(), *os.getgroups()}))
    locale = "|".join(os.environ.get(k, "") for k in ("LC_ALL", "LC_CTYPE", "LANG", "PYTHONIOENCODING", "PYTHONUTF8"))
    return f"{sys.executable}|{here}|{newest}|{groups}|{locale}"


def _contract_dirs() -> list[str]:
    for entry in sys.path:
        api = os.path.join(entry, "teu_api")
        if os.path.isdir(api):
            return [api, os.path.join(api, "gateway", "v1"), os.path.join(api, "types", "v1")]
    return []


def socket_path(ident: str) -> str:
    """The resident's socket for this interpreter and code (one resident per user and install)."""
    h = 0x811C9DC5  # FNV-1a: in a few µs, where zlib's crc32 is a library to load first
    for byte in ident.encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return os.path.join(runtime_dir(), f"{h:08x}.sock")


def main() -> None:
    """Entry point of ``teu``."""
    if os.environ.get("TEU_RESIDENT") != "0":
        try:
            ident = identity()
            path = socket_path(ident)
        except OSError:
            path = ""
        if path:
            code = _through_resident(path, ident)
            if code is not None:
                os._exit(code)
            _start_resident(path)
    if sys.flags.no_site:  # `teu` skips site for speed: the in-process path needs the installed packages
        import site

        site.main()
    from teu.cli.main import main as plain

    plain()


def _through_resident(path: str, ident: str) -> int | None:
    """The command run by the resident: its exit code, or None if no resident took it (a resident that
    goes away mid-command leaves it at 125, the engine-error code)."""
    umask = os.umask(0o022)
    os.umask(umask)
    head = [ident.encode(), os.fsencode(os.getcwd()), str(umask).encode(), str(len(sys.argv)).encode()]
    env = (os.fsencode(f"{k}={v}") for k, v in os.environ.items())
    request = b"\0".join([*head, *(os.fsencode(a) for a in sys.argv), *env])
    if len(request) > MAX_REQUEST:
        return None
    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
    try:
        conn.connect(path)
        conn.sendmsg([request], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, STDIO)])
        reply = conn.recv(64)
    except OSError:
        conn.close()
        return None
    if not reply.startswith(b"pid "):
        conn.close()
        return None  # a resident of other code: it goes, and this command runs here
    pid = int(reply[4:])

    def forward(sig: int, _frame: object) -> None:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
        if sig == _signal.SIGTSTP:  # Ctrl-Z: the command stops, and so does this process, as one job
            os.kill(os.getpid(), _signal.SIGSTOP)

    for sig in (*FORWARDED, _signal.SIGTSTP, _signal.SIGCONT):
        _signal.signal(sig, forward)
    while True:
        try:
            reply = conn.recv(64)
            break
        except InterruptedError:
            continue
    conn.close()
    if reply.startswith(b"signal "):  # the command died of a signal: so does this process, as the plain one would
        sig = int(reply[7:])
        _signal.signal(sig, _signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        return 128 + sig
    return int(reply[5:]) if reply.startswith(b"exit ") else 125


def _start_resident(path: str) -> None:
    """Starts the resident for the next command, detached from this one (its own session, no tie to
    this command's files)."""
    try:
        pid = os.fork()
    except OSError:
        return
    if pid:
        os.waitpid(pid, 0)
        return
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.closerange(3, 1 << 16)
        os.execv(sys.executable, [sys.executable, "-m", "teu.cli.resident", path])
    finally:
        os._exit(127)
