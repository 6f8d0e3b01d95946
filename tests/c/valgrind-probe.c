/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Does this valgrind know the system calls libsysext makes? Run under valgrind by
 * capi/tests/c_programs.rs: an unknown system call makes valgrind warn ("unhandled
 * syscall") and fail it with ENOSYS; a wrong wrapper reports a bogus error. Every call
 * here is harmless: invalid fds or names, or a read-only open of "/".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct mount_attr_probe {
    uint64_t attr_set, attr_clr, propagation, userns_fd;
};

static int failed;

static void expect_known(const char *name, long r) {
    if (r < 0 && errno == ENOSYS) {
        fprintf(stderr, "valgrind-probe: %s: ENOSYS\n", name);
        failed = 1;
    }
}

int main(void) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = O_PATH | O_CLOEXEC;
    how.resolve = RESOLVE_IN_ROOT;
    long fd = syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof how);
    expect_known("openat2", fd);
    if (fd >= 0)
        close((int) fd);
    expect_known("open_tree", syscall(SYS_open_tree, -1, "", 0x1000 /* AT_EMPTY_PATH */));
    expect_known("move_mount", syscall(SYS_move_mount, -1, "", -1, "", 0x4 | 0x40 /* F_, T_EMPTY_PATH */));
    expect_known("fsopen", syscall(SYS_fsopen, "libsysext-probe-no-such-fs", 0));
    expect_known("fsconfig", syscall(SYS_fsconfig, -1, 0 /* FSCONFIG_SET_FLAG */, "ro", NULL, 0));
    expect_known("fsmount", syscall(SYS_fsmount, -1, 0, 0));
    struct mount_attr_probe attr;
    memset(&attr, 0, sizeof attr);
    expect_known("mount_setattr", syscall(SYS_mount_setattr, -1, "", 0x1000, &attr, sizeof attr));
    return failed;
}
