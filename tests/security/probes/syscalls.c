/* Tries the syscalls Docker's default seccomp profile refuses and prints "name errno" for each
   (errno 0: the call went through); with the argument "x32", keyctl through the x32 ABI only (x86_64's
   numbers with bit 30 set), which a filter may answer by killing the caller. Built static by the
   security tests and copied into a container. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

static void report(const char *name, long rc) { printf("%s %d\n", name, rc < 0 ? errno : 0); }

int main(int argc, char **argv) {
    errno = 0;
    if (argc > 1) {
        report("keyctl_x32", syscall(0x40000000 | SYS_keyctl, 0, -3, 0));
        return 0;
    }
    report("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */, 0));
    report("add_key", syscall(SYS_add_key, "user", "teu-probe", "x", 1, -3));
    report("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
    report("unshare_user", syscall(SYS_unshare, CLONE_NEWUSER));
    return 0;
}
