/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * mini-init: merge system and configuration extensions at boot, the way an init system
 * (or systemd-sysext.service / systemd-confext.service) does, with libsysext.
 *
 *   mini-init [--root=DIR] [--mutable=MODE] [--force] [--no-confext] [--quiet]
 *
 * Options may also come from the environment (command line wins):
 *   SYSEXT_ROOT      root directory (default: /)
 *   SYSEXT_MUTABLE   mutable mode for both classes (no, yes, auto, import, ephemeral,
 *                    ephemeral-import); by default libsysext reads
 *                    SYSTEMD_SYSEXT_MUTABLE_MODE / SYSTEMD_CONFEXT_MUTABLE_MODE.
 *
 * For each class it refreshes the merge: it merges, and if a merge is already in place
 * (-EBUSY, e.g. from the initrd) it refreshes it without a gap. It logs through the
 * library's callback with kernel-style "<priority>" prefixes on stderr (what an init
 * writing to /dev/kmsg would do), prints what is merged, tells when the service manager
 * should be reloaded, and exits non-zero if any step fails.
 *
 * Build: cc mini-init.c $(pkg-config --cflags --libs libsysext) -o mini-init
 */
#define _GNU_SOURCE
#include <sysext.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct config {
    const char *root;
    const char *mutable_mode;
    bool force;
    bool confext;
    bool quiet;
};

static void log_to_stderr(void *userdata, int level, const char *message) {
    const struct config *cfg = userdata;
    if (cfg->quiet && level > SYSEXT_LOG_LEVEL_INFO)
        return;
    if (level == SYSEXT_LOG_LEVEL_DEBUG && !getenv("MINI_INIT_DEBUG"))
        return;
    fprintf(stderr, "<%d>mini-init: %s\n", level, message);
}

static void report_error(const char *what, int r, sysext_error *err) {
    if (err) {
        const char *path = sysext_error_get_path(err);
        fprintf(stderr, "<3>mini-init: %s failed: %s (errno %d, %s, kind %d%s%s)\n", what,
                sysext_error_get_message(err), sysext_error_get_errno(err), strerror(sysext_error_get_errno(err)),
                (int) sysext_error_get_kind(err), path ? ", path " : "", path ? path : "");
        sysext_error_free(err);
    } else {
        fprintf(stderr, "<3>mini-init: %s failed: %s\n", what, strerror(-r));
    }
}

/* Merge (or refresh) one image class. Returns 0 or a negative errno. */
static int merge_class(const struct config *cfg, int image_class, bool *needs_reload) {
    const char *name = sysext_image_class_to_string(image_class);
    sysext_error *err = NULL;
    sysext_context *ctx = NULL;
    sysext_report *report = NULL;
    int r;

    sysext_options *opts = sysext_options_new(image_class);
    if (!opts)
        return -ENOMEM;
    if ((r = sysext_options_set_root(opts, cfg->root, &err)) < 0 ||
        (r = sysext_options_set_force(opts, cfg->force, &err)) < 0 ||
        (r = sysext_options_set_log_callback(opts, log_to_stderr, (void *) cfg, &err)) < 0 ||
        (cfg->mutable_mode && (r = sysext_options_set_mutable_mode_string(opts, cfg->mutable_mode, &err)) < 0)) {
        report_error("setting options", r, err);
        sysext_options_free(opts);
        return r;
    }
    r = sysext_context_new(opts, &ctx, &err);
    sysext_options_free(opts);
    if (r < 0) {
        report_error(name, r, err);
        return r;
    }

    r = sysext_context_merge(ctx, &report, &err);
    if (r == -EBUSY) {
        /* Already merged (by the initrd, or a previous run): replace it without a gap. */
        sysext_error_free(err);
        err = NULL;
        r = sysext_context_refresh(ctx, &report, &err);
    }
    if (r < 0) {
        report_error(name, r, err);
        sysext_context_free(ctx);
        return r;
    }

    for (size_t i = 0; i < sysext_report_skipped_count(report); i++)
        fprintf(stderr, "<4>mini-init: %s '%s' not merged: %s\n", name, sysext_report_get_skipped_name(report, i),
                sysext_report_get_skipped_reason(report, i));
    if (sysext_report_needs_reload(report))
        *needs_reload = true;
    sysext_report_free(report);

    /* What is merged now, per hierarchy. */
    sysext_status *status = NULL;
    r = sysext_context_status(ctx, &status, &err);
    if (r < 0) {
        report_error("status", r, err);
        sysext_context_free(ctx);
        return r;
    }
    for (size_t i = 0; i < sysext_status_count(status); i++) {
        const sysext_hierarchy_status *h = sysext_status_get(status, i);
        printf("%s %s:", name, sysext_hierarchy_status_get_hierarchy(h));
        if (!sysext_hierarchy_status_is_merged(h)) {
            printf(" (not merged)\n");
            continue;
        }
        for (size_t j = 0; j < sysext_hierarchy_status_extensions_count(h); j++)
            printf(" %s", sysext_hierarchy_status_get_extension(h, j));
        sysext_mutable_mode mode;
        sysext_upper_kind upper;
        const char *where = sysext_hierarchy_status_get_upper_path(h);
        if (!where && sysext_hierarchy_status_get_upper_kind(h, &upper))
            where = sysext_upper_kind_to_string(upper);
        printf(" [mutable=%s, writes to %s]\n",
               sysext_hierarchy_status_get_mutable_mode(h, &mode) ? sysext_mutable_mode_to_string(mode) : "?",
               where ? where : "?");
    }
    sysext_status_free(status);
    sysext_context_free(ctx);
    return 0;
}

static void usage(FILE *f, const char *argv0) {
    fprintf(f, "usage: %s [--root=DIR] [--mutable=MODE] [--force] [--no-confext] [--quiet]\n", argv0);
}

int main(int argc, char **argv) {
    struct config cfg = {
        .root = getenv("SYSEXT_ROOT"),
        .mutable_mode = getenv("SYSEXT_MUTABLE"),
        .force = false,
        .confext = true,
        .quiet = false,
    };
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--root=", 7) == 0)
            cfg.root = argv[i] + 7;
        else if (strncmp(argv[i], "--mutable=", 10) == 0)
            cfg.mutable_mode = argv[i] + 10;
        else if (strcmp(argv[i], "--force") == 0)
            cfg.force = true;
        else if (strcmp(argv[i], "--no-confext") == 0)
            cfg.confext = false;
        else if (strcmp(argv[i], "--quiet") == 0)
            cfg.quiet = true;
        else if (strcmp(argv[i], "--help") == 0) {
            usage(stdout, argv[0]);
            return 0;
        } else {
            usage(stderr, argv[0]);
            return 2;
        }
    }
    if (cfg.root && !*cfg.root)
        cfg.root = NULL;

    if (!cfg.quiet)
        fprintf(stderr, "<6>mini-init: libsysext %s (built against %d.%d.%d)\n", sysext_version(),
                SYSEXT_VERSION_MAJOR, SYSEXT_VERSION_MINOR, SYSEXT_VERSION_PATCH);

    bool needs_reload = false;
    int failed = 0;
    if (merge_class(&cfg, SYSEXT_IMAGE_CLASS_SYSEXT, &needs_reload) < 0)
        failed++;
    if (cfg.confext && merge_class(&cfg, SYSEXT_IMAGE_CLASS_CONFEXT, &needs_reload) < 0)
        failed++;
    if (needs_reload)
        printf("service manager reload needed\n");
    fflush(stdout);
    return failed ? 1 : 0;
}
