"""critest (the CRI conformance suite) against a private engine: ``make cri-conformance``.

Finds ``critest`` on PATH or in ``$TEU_CRI_TOOLS``. The engine runs in a network namespace of its
own, on Teu's bridge network. No registry is reached: the images the suite names are made from the
busybox image under those names (``ImageStatus`` finds them, so nothing is pulled), and the specs
that must pull from a remote registry are skipped. Prints critest's summary; ``--focus`` and
``--skip`` pass regexes on.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from teu.client import Client
from teu.testing import PAUSE_ENTRYPOINT, PAUSE_IMAGE, PrivateEngine, build_folder, cri_tool
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.types.v1 import types_pb2

ROOT = Path(__file__).resolve().parents[1]
IMAGE_TAR = ROOT / "build" / "busybox.tar"
#: A web server on port 80 with a page at / (busybox's httpd).
WEB = ["sh", "-c", "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 80 -h /www"]
#: The same, first writing the line Apache httpd logs as it starts (critest looks for it in the log).
HTTPD = ["sh", "-c", "echo \"AH00094: Command line: 'httpd -D FOREGROUND'\"; " + WEB[2]]
#: nginx under a process whose command line says "master process", as nginx rewrites its own (critest reads
#: /proc/1/cmdline for it): the stand-in's $0.
NGINX = ["sh", "-c", "trap 'kill $!; exit 0' TERM; nginx & wait", "nginx: master process"]
#: Images critest names that busybox can stand in for: (name, entrypoint, cmd, user).
IMAGES = [
    (PAUSE_IMAGE, PAUSE_ENTRYPOINT, [], ""),
    ("registry.k8s.io/e2e-test-images/busybox:1.29-2", [], ["sh"], ""),
    ("registry.k8s.io/e2e-test-images/nginx:1.14-2", [], NGINX, ""),
    ("registry.k8s.io/e2e-test-images/httpd:2.4.39-4", [], HTTPD, ""),
    ("gcr.io/k8s-staging-cri-tools/test-image-user-uid:latest", [], ["sh"], "1002"),
    ("gcr.io/k8s-staging-cri-tools/test-image-user-uid-group:latest", [], ["sh"], "1003:1004"),
    ("registry.k8s.io/e2e-test-images/nonewprivs:1.3", ["/bin/euid"], [], ""),
    ("gcr.io/k8s-staging-cri-tools/hostnet-nginx-amd64:latest", [], [*WEB[:2], WEB[2].replace("-p 80", "-p 12003")], ""),
]
#: What critest runs in its images that Debian's busybox-static has no applet for, as small scripts.
TOOLS = {
    # pgrep NAME: the pids of the processes called NAME
    "bin/pgrep": b"""#!/bin/sh
ps -o pid,comm | while read -r pid comm; do [ "$comm" = "$1" ] && echo "$pid"; done
exit 0
""",
    # ipcs -m: the System V shared memory segments (the kernel's own table, ids included)
    "bin/ipcs": b"""#!/bin/sh
cat /proc/sysvipc/shm
""",
    # nginx: a web server on port 80 whose process is called nginx and whose pid is in /var/run/nginx.pid
    "usr/sbin/nginx": b"""#!/bin/sh
mkdir -p /www /var/run && echo hello > /www/index.html
echo $$ > /var/run/nginx.pid
httpd -f -p 80 -h /www &
trap 'kill $!; exit 0' TERM
wait
""",
}
#: The nonewprivs image's program: prints "Effective uid: N" (N its geteuid()); installed setuid root, it
#: says 0 unless no_new_privs kept the bit from working. x86-64 machine code, as GNU as assembles:
#:     mov eax, 107; syscall                  # geteuid
#:     lea rsi, [rsp-1]; mov byte ptr [rsi], 10; mov ecx, 10
#: 1:  xor edx, edx; div rcx; add dl, 48; dec rsi; mov [rsi], dl; test rax, rax; jnz 1b   # digits, last first
#:     lea rdi, [rip+msg]; mov ecx, 15
#: 2:  dec rsi; mov al, [rdi+rcx-1]; mov [rsi], al; dec ecx; jnz 2b                     # the prefix before them
#:     mov rdx, rsp; sub rdx, rsi; mov edi, 1; mov eax, 1; syscall                      # write(1, rsi, rdx)
#:     mov eax, 60; xor edi, edi; syscall                                                # exit(0)
#: msg: .ascii "Effective uid: "
EUID_CODE = bytes.fromhex(
    "b86b0000000f05488d7424ffc6060ab90a00000031d248f7f180c23048ffce88164885c075ee488d3d2d000000b90f000000"
    "48ffce8a440fff8806ffc975f34889e24829f2bf01000000b8010000000f05b83c00000031ff0f05456666656374697665207569643a20"
)


def static_elf(code: bytes, base: int = 0x400000) -> bytes:
    """A static x86-64 executable of one loadable segment: ``code`` (position-independent), entered at its start."""
    size = 64 + 56 + len(code)
    # the ELF header (64-bit, little-endian, an x86-64 executable entered past both headers), then one segment
    header = struct.pack(
        "<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01" + bytes(9), 2, 0x3E, 1, base + 120, 64, 0, 0, 64, 56, 1, 64, 0, 0
    )
    segment = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000)  # PT_LOAD, read and execute
    return header + segment + code


#: cri-tools' images/image-predefined-group, built by Teu (busybox-static has no adduser).
PREDEFINED_GROUP = (
    "gcr.io/k8s-staging-cri-tools/test-image-predefined-group:latest",
    "FROM registry.k8s.io/e2e-test-images/busybox:1.29-2\n"
    "RUN echo 'default-user:x:1000:1000::/home/default-user:/bin/sh' >> /etc/passwd && "
    "echo 'default-user:x:1000:' >> /etc/group && echo 'group-defined-in-image:x:50000:default-user' >> /etc/group\n"
    "USER 1000\n",
)
#: Specs that pull from a remote registry: they cannot pass without one.
SKIP = r"Image Manager|benchmark"


def e2e_rootfs(src: Path, out: Path) -> None:
    """The busybox image as Kubernetes' e2e images have it: applets as hard links to busybox (not
    symbolic ones: MaskedPaths masks /bin/ls, which must not mask busybox itself), and the TOOLS."""
    with tarfile.open(src) as tar, tarfile.open(out, "w") as new:
        members = tar.getmembers()
        busybox = next(m for m in members if m.name.lstrip("./") == "bin/busybox")
        new.addfile(busybox, tar.extractfile(busybox))
        for m in members:
            if m is busybox:
                continue
            if m.issym() and m.linkname == "/bin/busybox":
                m.type, m.linkname = tarfile.LNKTYPE, busybox.name
            new.addfile(m, tar.extractfile(m) if m.isreg() else None)
        for name, script, mode in [*((n, b, 0o755) for n, b in TOOLS.items()), ("bin/euid", static_elf(EUID_CODE), 0o4755)]:
            tool = tarfile.TarInfo("./" + name)
            tool.size, tool.mode = len(script), mode
            new.addfile(tool, io.BytesIO(script))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--focus", default="")
    parser.add_argument("--skip", default="")
    args = parser.parse_args()
    critest = cri_tool("critest")
    if critest is None:
        sys.exit("critest not found: put it on PATH or point TEU_CRI_TOOLS at its directory")
    netns = f"teu-cri-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    base = Path(tempfile.mkdtemp(prefix="teu-critest-"))
    try:
        subprocess.run(["ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up"], check=True)
        wrap = ["nsenter", f"--net=/run/netns/{netns}"]  # not ip netns exec: its own /sys would hide the cgroups
        with PrivateEngine(base, wrap=wrap, env={"TEU_DEFAULT_NETWORK": "bridge"}) as eng:
            with Client(eng.target) as c:
                e2e_rootfs(IMAGE_TAR, base / "e2e.tar")
                for name, entrypoint, cmd, user in IMAGES:
                    with (base / "e2e.tar").open("rb") as f:
                        c.import_image(f, name, types_pb2.ImageConfig(entrypoint=entrypoint, cmd=cmd, user=user))
                (base / "predefined").mkdir()
                (base / "predefined" / "Dockerfile").write_text(PREDEFINED_GROUP[1])
                build_folder(c, base / "predefined", gw.BuildOptions(tags=[PREDEFINED_GROUP[0]], network="none"))
            sock = f"unix://{eng.run_dir}/cri.sock"
            argv = [*wrap, critest, f"--runtime-endpoint={sock}", f"--image-endpoint={sock}",
                    "--runtime-service-timeout=60s", "--image-service-timeout=60s",
                    f"--ginkgo.skip={SKIP}" + (f"|{args.skip}" if args.skip else "")]  # fmt: skip
            if args.focus:
                argv.append(f"--ginkgo.focus={args.focus}")
            return subprocess.run(argv, cwd=base, check=False).returncode
    finally:
        subprocess.run(["ip", "netns", "delete", netns], check=False)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
