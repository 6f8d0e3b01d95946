/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Helpers of the C test programs of libsysext: checks, and building test roots.
 *
 * Every program takes one argument, a scratch directory it may fill (the harness,
 * capi/tests/c_programs.rs, creates and removes it), and exits 0 when all checks pass.
 * Programs that mount run in a private mount namespace (unshare -m --propagation private).
 */
#ifndef SYSEXT_TEST_COMMON_H
#define SYSEXT_TEST_COMMON_H

#define _GNU_SOURCE
#include <sysext.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static int test_failures;
static const char *test_scratch;
static int test_overlay_baseline;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);  \
            test_failures++;                                                          \
        }                                                                             \
    } while (0)

/* A fatal check: later steps make no sense without it. */
#define REQUIRE(cond)                                                                 \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "%s:%d: requirement failed: %s\n", __FILE__, __LINE__, #cond); \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

/* Compare two strings, either of which may be NULL. */
#define CHECK_STR(got, want)                                                          \
    do {                                                                              \
        const char *g_ = (got), *w_ = (want);                                         \
        if (!((g_ == NULL && w_ == NULL) || (g_ && w_ && strcmp(g_, w_) == 0))) {     \
            fprintf(stderr, "%s:%d: %s is \"%s\", expected \"%s\"\n", __FILE__, __LINE__, \
                    #got, g_ ? g_ : "(null)", w_ ? w_ : "(null)");                    \
            test_failures++;                                                          \
        }                                                                             \
    } while (0)

/* Check that a libsysext call returned `want`; print the error object if it did not. */
#define CHECK_RC(call_with_err, err, want)                                            \
    do {                                                                              \
        int rc_ = (call_with_err);                                                    \
        if (rc_ != (want)) {                                                          \
            fprintf(stderr, "%s:%d: %s returned %d (%s), expected %d: %s\n", __FILE__, __LINE__, \
                    #call_with_err, rc_, rc_ < 0 ? strerror(-rc_) : "ok", (want),     \
                    (err) ? sysext_error_get_message(err) : "(no error object)");     \
            test_failures++;                                                          \
        }                                                                             \
    } while (0)

/* Check a call succeeded; on failure print its error and stop. */
#define OK(call_with_err, err)                                                        \
    do {                                                                              \
        int rc_ = (call_with_err);                                                    \
        if (rc_ != 0) {                                                               \
            fprintf(stderr, "%s:%d: %s failed: %d (%s): %s\n", __FILE__, __LINE__,    \
                    #call_with_err, rc_, strerror(-rc_),                              \
                    (err) ? sysext_error_get_message(err) : "(no error object)");     \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

static inline void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* A path below a directory; the result lives in one of a few rotating buffers. */
static inline const char *pathf(const char *fmt, ...) {
    static char bufs[8][4096];
    static unsigned next;
    char *b = bufs[next++ % 8];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b, sizeof bufs[0], fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t) n >= sizeof bufs[0])
        die("path too long");
    return b;
}

static inline void mkdir_p(const char *path, mode_t mode) {
    char tmp[4096];
    size_t len = strlen(path);
    if (len >= sizeof tmp)
        die("path too long: %s", path);
    memcpy(tmp, path, len + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
            die("mkdir %s: %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, mode) < 0 && errno != EEXIST)
        die("mkdir %s: %s", tmp, strerror(errno));
}

/* Write a file, creating its parent directories. */
static inline void write_file(const char *path, const char *content) {
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", path);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = 0;
        mkdir_p(parent, 0755);
    }
    FILE *f = fopen(path, "we");
    if (!f)
        die("open %s: %s", path, strerror(errno));
    fputs(content, f);
    if (fclose(f) != 0)
        die("write %s: %s", path, strerror(errno));
}

/* The contents of a small file, or NULL if it cannot be read; in a static buffer. */
static inline const char *read_file(const char *path) {
    static char buf[4096];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0)
        return NULL;
    buf[n] = 0;
    return buf;
}

static inline int exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Add a directory extension `name` to a root; `release` is its extension-release. */
static inline void add_sysext(const char *root, const char *name, const char *release) {
    write_file(pathf("%s/var/lib/extensions/%s/usr/lib/extension-release.d/extension-release.%s", root, name, name),
               release);
    write_file(pathf("%s/var/lib/extensions/%s/usr/bin/%s", root, name, name), name);
}

/* Add a directory confext `name` to a root. */
static inline void add_confext(const char *root, const char *name, const char *release) {
    write_file(pathf("%s/var/lib/confexts/%s/etc/extension-release.d/extension-release.%s", root, name, name),
               release);
    write_file(pathf("%s/var/lib/confexts/%s/etc/%s.conf", root, name, name), name);
}

/*
 * A minimal root below the scratch directory: usr/lib/os-release (debian 12), usr/bin/base,
 * opt/, etc/ and one extension "foo" (ID=_any) with usr/bin/foo. Returns its path (static).
 */
static inline const char *make_root(const char *name) {
    static char roots[8][4096];
    static unsigned next;
    char *root = roots[next++ % 8];
    snprintf(root, sizeof roots[0], "%s/%s", test_scratch, name);
    mkdir_p(root, 0755);
    write_file(pathf("%s/usr/lib/os-release", root), "ID=debian\nVERSION_ID=12\n");
    write_file(pathf("%s/usr/bin/base", root), "base");
    mkdir_p(pathf("%s/opt", root), 0755);
    mkdir_p(pathf("%s/etc", root), 0755);
    add_sysext(root, "foo", "ID=_any\n");
    return root;
}

/* Options for a root with one mutable mode and no callback, at level 257 (the tests count
 * overlays as 257 makes them; 262 also merges hierarchies without extension content in the
 * mutable modes). */
static inline sysext_options *options_for(int image_class, const char *root, int mode) {
    sysext_options *o = sysext_options_new(image_class);
    REQUIRE(o);
    sysext_error *err = NULL;
    OK(sysext_options_set_root(o, root, &err), err);
    OK(sysext_options_set_compat(o, 257, &err), err);
    if (mode >= 0)
        OK(sysext_options_set_mutable_mode(o, mode, &err), err);
    return o;
}

static inline sysext_context *context_for(int image_class, const char *root, int mode) {
    sysext_options *o = options_for(image_class, root, mode);
    sysext_context *c = NULL;
    sysext_error *err = NULL;
    OK(sysext_context_new(o, &c, &err), err);
    sysext_options_free(o);
    return c;
}

/* Records what the log callback receives. */
struct log_record {
    int n;
    int levels[256];
    char messages[256][512];
};

static inline void record_log(void *userdata, int level, const char *message) {
    struct log_record *r = userdata;
    if (r->n >= 256)
        return;
    r->levels[r->n] = level;
    snprintf(r->messages[r->n], sizeof r->messages[0], "%s", message);
    r->n++;
}

/* Whether a message containing `needle` was logged at `level` (any level if negative). */
static inline int log_has(const struct log_record *r, int level, const char *needle) {
    for (int i = 0; i < r->n; i++)
        if ((level < 0 || r->levels[i] == level) && strstr(r->messages[i], needle))
            return 1;
    return 0;
}

static inline void log_dump(const struct log_record *r) {
    for (int i = 0; i < r->n; i++)
        fprintf(stderr, "  log <%d> %s\n", r->levels[i], r->messages[i]);
}

/* The number of overlay file systems mounted in this mount namespace (distinct devices:
 * a writable merge also binds its meta directory read-only, a second mount of the same
 * overlay). */
static inline int overlay_mounts_raw(void) {
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        die("open /proc/self/mountinfo: %s", strerror(errno));
    char line[8192], devs[256][32];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        char dev[32];
        if (!strstr(line, " - overlay ") || sscanf(line, "%*s %*s %31s", dev) != 1)
            continue;
        int seen = 0;
        for (int i = 0; i < n; i++)
            if (strcmp(devs[i], dev) == 0)
                seen = 1;
        if (!seen && n < 256)
            memcpy(devs[n++], dev, sizeof dev);
    }
    fclose(f);
    return n;
}

/* The number of overlay mounts added since the program started. */
static inline int overlay_mounts(void) {
    return overlay_mounts_raw() - test_overlay_baseline;
}

static inline void require_root(const char *prog) {
    if (geteuid() == 0)
        return;
    const char *skip = getenv("SYSEXT_SKIP_ROOT_TESTS");
    if (skip && strcmp(skip, "1") == 0) {
        printf("%s: skipped (not root, SYSEXT_SKIP_ROOT_TESTS=1)\n", prog);
        exit(0);
    }
    die("%s: needs root (CAP_SYS_ADMIN to mount); set SYSEXT_SKIP_ROOT_TESTS=1 to skip", prog);
}

static inline void test_init(int argc, char **argv) {
    if (argc != 2)
        die("usage: %s SCRATCH_DIR", argv[0]);
    test_scratch = argv[1];
    umask(022);
    test_overlay_baseline = overlay_mounts_raw();
    /* The tests set everything through options; the environment must not interfere. */
    unsetenv("SYSTEMD_SYSEXT_MUTABLE_MODE");
    unsetenv("SYSTEMD_CONFEXT_MUTABLE_MODE");
    unsetenv("SYSTEMD_SYSEXT_HIERARCHIES");
    unsetenv("SYSTEMD_CONFEXT_HIERARCHIES");
    unsetenv("SYSTEMD_OS_RELEASE");
    unsetenv("SYSEXT_FAULT_INJECT");
    setenv("SYSTEMD_IN_INITRD", "0", 1);
}

static inline int test_finish(const char *prog) {
    if (test_failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", prog, test_failures);
        return 1;
    }
    printf("%s: all checks passed\n", prog);
    return 0;
}

#endif
