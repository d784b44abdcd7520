/* Probe for test_spawn.py: prints what the default seccomp filter lets through (static binary). */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    long r;
    if (argc > 1 && strcmp(argv[1], "x32") == 0) {
        r = syscall(0x40000000 | 39 /* x32 getpid */);
        printf("x32_getpid=%ld\n", r < 0 ? -errno : r);
        r = syscall(0x40000000 | 165 /* x32 mount */, 0, 0, 0, 0, 0);
        printf("x32_mount=%ld\n", r < 0 ? -errno : r);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "i386") == 0) {
        /* The i386 entry point of a 64-bit process: numbers of unistd_32.h, results in eax. */
        static const struct { const char *name; long nr; } calls[] = {
            {"getpid", 20}, {"mount", 21}, {"unshare", 310},
        };
        for (unsigned i = 0; i < sizeof calls / sizeof calls[0]; i++) {
            long ret;
            __asm__ volatile("int $0x80" : "=a"(ret) : "a"(calls[i].nr), "b"(0), "c"(0), "d"(0),
                             "S"(0), "D"(0) : "memory");
            printf("i386_%s=%ld\n", calls[i].name, ret);
        }
        return 0;
    }
    r = syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0);
    if (r == 0) _exit(0);
    if (r > 0) waitpid(r, 0, 0);
    printf("clone_newns=%s\n", r < 0 ? strerror(errno) : "ok");
    r = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (r == 0) _exit(0);
    if (r > 0) waitpid(r, 0, 0);
    printf("clone_plain=%s\n", r < 0 ? strerror(errno) : "ok");
    r = syscall(SYS_clone3, 0, 0);
    printf("clone3=%s\n", strerror(errno));
    r = personality(0xffffffff);
    printf("personality_query=%s\n", r < 0 ? strerror(errno) : "ok");
    r = personality(0x0040000 /* ADDR_NO_RANDOMIZE */);
    printf("personality_norandom=%s\n", r < 0 ? strerror(errno) : "ok");
    r = syscall(SYS_keyctl, 0, 0, 0, 0, 0);
    printf("keyctl=%s\n", r < 0 ? strerror(errno) : "ok");
    r = syscall(SYS_bpf, 0, 0, 0);
    printf("bpf=%s\n", r < 0 ? strerror(errno) : "ok");
    r = syscall(SYS_getpid);
    printf("getpid=%ld\n", r);
    return 0;
}
