/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Merging through the C API: merge, status, refresh, merge_names, unmerge_names,
 * unmerge, their reports (merged, skipped, needs_reload), the errors (already merged,
 * not merged, not found, incompatible, lock busy), force, noexec, confext and the log
 * callback. Needs root; run it in a private mount namespace:
 *   unshare -m --propagation private ./test_merge SCRATCH_DIR
 */
#include "common.h"

#include <pthread.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/wait.h>

/* Print a report's contents (for failure diagnostics). */
static void report_dump(const sysext_report *r) {
    fprintf(stderr, "  report: merged");
    for (size_t i = 0; i < sysext_report_merged_count(r); i++)
        fprintf(stderr, " %s", sysext_report_get_merged(r, i));
    fprintf(stderr, "; hierarchies");
    for (size_t i = 0; i < sysext_report_hierarchies_count(r); i++)
        fprintf(stderr, " %s", sysext_report_get_hierarchy(r, i));
    fprintf(stderr, "; unmerged");
    for (size_t i = 0; i < sysext_report_unmerged_count(r); i++)
        fprintf(stderr, " %s", sysext_report_get_unmerged(r, i));
    fprintf(stderr, "; needs_reload %d\n", sysext_report_needs_reload(r));
}

static int merged_names_are(const sysext_report *r, const char *a, const char *b) {
    size_t n = sysext_report_merged_count(r);
    int ok = n == (size_t) (a ? 1 : 0) + (b ? 1 : 0) && (!a || strcmp(sysext_report_get_merged(r, 0), a) == 0) &&
             (!b || strcmp(sysext_report_get_merged(r, 1), b) == 0);
    if (!ok)
        report_dump(r);
    return ok;
}

/* The extensions merged on /usr according to status, comma-separated, or "-" if not merged. */
static const char *usr_status(const sysext_context *c, const char **mode, const char **upper) {
    static char buf[1024];
    static char mode_buf[64], upper_buf[1024];
    sysext_status *st = NULL;
    sysext_error *err = NULL;
    OK(sysext_context_status(c, &st, &err), err);
    snprintf(buf, sizeof buf, "(no /usr)");
    for (size_t i = 0; i < sysext_status_count(st); i++) {
        const sysext_hierarchy_status *h = sysext_status_get(st, i);
        if (strcmp(sysext_hierarchy_status_get_hierarchy(h), "/usr") != 0)
            continue;
        if (!sysext_hierarchy_status_is_merged(h)) {
            snprintf(buf, sizeof buf, "-");
            CHECK(sysext_hierarchy_status_extensions_count(h) == 0);
            CHECK(sysext_hierarchy_status_get_since_usec(h) == 0);
            break;
        }
        buf[0] = 0;
        for (size_t j = 0; j < sysext_hierarchy_status_extensions_count(h); j++) {
            if (j)
                strcat(buf, ",");
            strcat(buf, sysext_hierarchy_status_get_extension(h, j));
        }
        CHECK(sysext_hierarchy_status_get_extension(h, sysext_hierarchy_status_extensions_count(h)) == NULL);
        CHECK(sysext_hierarchy_status_get_since_usec(h) > 0);
        sysext_mutable_mode m;
        sysext_upper_kind u;
        const char *ms = sysext_hierarchy_status_get_mutable_mode(h, &m) ? sysext_mutable_mode_to_string(m) : NULL;
        const char *us = sysext_hierarchy_status_get_upper_kind(h, &u) ? sysext_upper_kind_to_string(u) : NULL;
        snprintf(mode_buf, sizeof mode_buf, "%s", ms ? ms : "(null)");
        snprintf(upper_buf, sizeof upper_buf, "%s", us ? us : "(null)");
        if (mode)
            *mode = mode_buf;
        if (upper)
            *upper = upper_buf;
    }
    sysext_status_free(st);
    return buf;
}

static void test_merge_cycle(void) {
    const char *root = make_root("cycle");
    add_sysext(root, "bar", "ID=fedora\n");
    struct log_record rec = {0};
    sysext_error *err = NULL;
    sysext_report *r = NULL;

    sysext_options *o = options_for(SYSEXT_IMAGE_CLASS_SYSEXT, root, -1);
    OK(sysext_options_set_log_callback(o, record_log, &rec, &err), err);
    sysext_context *c = NULL;
    OK(sysext_context_new(o, &c, &err), err);
    sysext_options_free(o);

    /* merge */
    OK(sysext_context_merge(c, &r, &err), err);
    CHECK(merged_names_are(r, "foo", NULL));
    CHECK(sysext_report_hierarchies_count(r) == 1);
    /* Hierarchies by their configured name; where they were mounted beside them. */
    CHECK_STR(sysext_report_get_hierarchy(r, 0), "/usr");
    CHECK(sysext_report_get_hierarchy(r, 1) == NULL);
    CHECK_STR(sysext_report_get_target(r, 0), pathf("%s/usr", root));
    CHECK(sysext_report_get_target(r, 1) == NULL);
    CHECK(sysext_report_unmerged_count(r) == 0);
    CHECK(sysext_report_skipped_count(r) == 1);
    CHECK_STR(sysext_report_get_skipped_name(r, 0), "bar");
    CHECK(strstr(sysext_report_get_skipped_reason(r, 0), "fedora") != NULL);
    CHECK(!sysext_report_needs_reload(r));
    sysext_report_free(r);
    CHECK_STR(read_file(pathf("%s/usr/bin/foo", root)), "foo");
    CHECK_STR(read_file(pathf("%s/usr/bin/base", root)), "base");
    CHECK(exists(pathf("%s/usr/.systemd-sysext/extensions", root)));
    /* Read-only merge. */
    CHECK(open(pathf("%s/usr/bin/new", root), O_WRONLY | O_CREAT | O_CLOEXEC, 0644) < 0 && errno == EROFS);
    CHECK(overlay_mounts() == 1);

    /* The callback heard the progress and the skip, at syslog levels, synchronously. */
    CHECK(log_has(&rec, SYSEXT_LOG_LEVEL_INFO, "Using extensions 'foo'."));
    CHECK(log_has(&rec, SYSEXT_LOG_LEVEL_INFO, pathf("Merged extensions into '%s/usr'.", root)));
    CHECK(log_has(&rec, SYSEXT_LOG_LEVEL_DEBUG, "Extension 'bar' ignored"));
    if (test_failures)
        log_dump(&rec);

    /* list knows what is merged. */
    sysext_extension_list *list = NULL;
    OK(sysext_context_list(c, &list, &err), err);
    REQUIRE(sysext_extension_list_count(list) == 2);
    CHECK_STR(sysext_extension_get_name(sysext_extension_list_get(list, 1)), "foo");
    CHECK(sysext_extension_get_state(sysext_extension_list_get(list, 1)) == SYSEXT_IMAGE_STATE_MERGED);
    CHECK(sysext_extension_get_state(sysext_extension_list_get(list, 0)) == SYSEXT_IMAGE_STATE_INCOMPATIBLE);
    sysext_extension_list_free(list);

    const char *mode = NULL, *upper = NULL;
    CHECK_STR(usr_status(c, &mode, &upper), "foo");
    CHECK_STR(mode, "no");
    CHECK_STR(upper, "none");

    /* merge again: already merged. */
    CHECK_RC(sysext_context_merge(c, &r, &err), err, -EBUSY);
    REQUIRE(err);
    CHECK(sysext_error_get_kind(err) == SYSEXT_ERROR_KIND_ALREADY_MERGED);
    CHECK(sysext_error_get_errno(err) == EBUSY);
    CHECK(strstr(sysext_error_get_message(err), "already merged") != NULL);
    CHECK_STR(sysext_error_get_hierarchy(err), "/usr");
    CHECK_STR(sysext_error_get_path(err), pathf("%s/usr", root));
    CHECK(sysext_error_get_extension(err) == NULL);
    /* The error is still set: the next call refuses to overwrite (and leak) it, and does
     * nothing (the hierarchy stays merged, the error is the same object). */
    sysext_error *first = err;
    CHECK_RC(sysext_context_unmerge(c, NULL, &err), NULL, -EINVAL);
    CHECK(err == first);
    CHECK(sysext_error_get_kind(err) == SYSEXT_ERROR_KIND_ALREADY_MERGED);
    CHECK(overlay_mounts() == 1);
    sysext_error_free(err);
    err = NULL;
    CHECK_RC(sysext_context_merge(c, NULL, NULL), NULL, -EBUSY);

    /* unmerge_names of a name that is not merged. */
    const char *nope[] = {"nope"};
    CHECK_RC(sysext_context_unmerge_names(c, nope, 1, &r, &err), err, -ENOENT);
    REQUIRE(err);
    CHECK(sysext_error_get_kind(err) == SYSEXT_ERROR_KIND_NOT_MERGED);
    CHECK(strstr(sysext_error_get_message(err), "nope") != NULL);
    CHECK_STR(sysext_error_get_extension(err), "nope");
    CHECK(sysext_error_get_hierarchy(err) == NULL);
    sysext_error_free(err);
    err = NULL;

    /* merge_names of an unknown name and of an incompatible one. */
    CHECK_RC(sysext_context_merge_names(c, nope, 1, NULL, &err), err, -ENOENT);
    CHECK(sysext_error_get_kind(err) == SYSEXT_ERROR_KIND_INVALID_ARGUMENT);
    CHECK_STR(sysext_error_get_extension(err), "nope");
    sysext_error_free(err);
    err = NULL;
    const char *bar[] = {"bar"};
    CHECK_RC(sysext_context_merge_names(c, bar, 1, NULL, &err), err, -ENOMEDIUM);
    CHECK(sysext_error_get_kind(err) == SYSEXT_ERROR_KIND_INCOMPATIBLE_EXTENSION);
    CHECK_STR(sysext_error_get_extension(err), "bar");
    sysext_error_free(err);
    err = NULL;
    CHECK_STR(usr_status(c, NULL, NULL), "foo");

    /* refresh picks up a new image. */
    add_sysext(root, "baz", "ID=_any\n");
    OK(sysext_context_refresh(c, &r, &err), err);
    CHECK(merged_names_are(r, "baz", "foo"));
    sysext_report_free(r);
    CHECK_STR(read_file(pathf("%s/usr/bin/baz", root)), "baz");
    CHECK(overlay_mounts() == 1);

    /* unmerge_names keeps the rest. */
    const char *foo[] = {"foo"};
    OK(sysext_context_unmerge_names(c, foo, 1, &r, &err), err);
    CHECK(merged_names_are(r, "baz", NULL));
    sysext_report_free(r);
    CHECK(!exists(pathf("%s/usr/bin/foo", root)));
    CHECK(exists(pathf("%s/usr/bin/baz", root)));
    CHECK_STR(usr_status(c, NULL, NULL), "baz");

    /* merge_names adds to the merge. */
    OK(sysext_context_merge_names(c, foo, 1, &r, &err), err);
    CHECK(merged_names_are(r, "baz", "foo"));
    sysext_report_free(r);
    CHECK(exists(pathf("%s/usr/bin/foo", root)));
    CHECK_STR(usr_status(c, NULL, NULL), "baz,foo");

    /* unmerge */
    OK(sysext_context_unmerge(c, &r, &err), err);
    CHECK(sysext_report_merged_count(r) == 0);
    CHECK(sysext_report_unmerged_count(r) == 1);
    CHECK_STR(sysext_report_get_unmerged(r, 0), "/usr");
    CHECK(sysext_report_get_unmerged(r, 1) == NULL);
    sysext_report_free(r);
    CHECK(!exists(pathf("%s/usr/bin/foo", root)));
    CHECK(exists(pathf("%s/usr/bin/base", root)));
    CHECK_STR(usr_status(c, NULL, NULL), "-");
    CHECK(log_has(&rec, SYSEXT_LOG_LEVEL_INFO, pathf("Unmerged '%s/usr'.", root)));
    CHECK(overlay_mounts() == 0);

    /* unmerge when nothing is merged is fine; unmerge_names is not. */
    OK(sysext_context_unmerge(c, &r, &err), err);
    CHECK(sysext_report_unmerged_count(r) == 0);
    sysext_report_free(r);
    CHECK_RC(sysext_context_unmerge_names(c, foo, 1, NULL, &err), err, -ENOENT);
    CHECK(sysext_error_get_kind(err) == SYSEXT_ERROR_KIND_NOT_MERGED);
    sysext_error_free(err);
    err = NULL;

    /* merge_names without a merge merges just these; removing the last one unmerges. */
    OK(sysext_context_merge_names(c, foo, 1, NULL, &err), err);
    CHECK_STR(usr_status(c, NULL, NULL), "foo");
    OK(sysext_context_unmerge_names(c, foo, 1, &r, &err), err);
    CHECK(sysext_report_unmerged_count(r) == 1);
    sysext_report_free(r);
    CHECK_STR(usr_status(c, NULL, NULL), "-");
    sysext_context_free(c);
}

static void test_reload_force_noexec(void) {
    const char *root = make_root("reload");
    add_sysext(root, "svc", "ID=_any\nEXTENSION_RELOAD_MANAGER=1\n"
               "EXTENSION_RESTART_UNITS=a.service b.service\n"
               "EXTENSION_RELOAD_OR_RESTART_UNITS=b.service c.socket\n");
    add_sysext(root, "bar", "ID=fedora\n");
    sysext_error *err = NULL;
    sysext_report *r = NULL;

    sysext_options *o = options_for(SYSEXT_IMAGE_CLASS_SYSEXT, root, -1);
    OK(sysext_options_set_force(o, true, &err), err);
    OK(sysext_options_set_noexec(o, 1, &err), err);
    sysext_context *c = NULL;
    OK(sysext_context_new(o, &c, &err), err);
    sysext_options_free(o);

    OK(sysext_context_merge(c, &r, &err), err);
    CHECK(sysext_report_merged_count(r) == 3); /* bar is forced in */
    CHECK(sysext_report_skipped_count(r) == 0);
    /* An explicit root implies no reload, as in systemd (see test_reload_in_chroot). */
    CHECK(!sysext_report_needs_reload(r));
    /* The units asked for are reported also with a root (the caller decides). */
    CHECK(sysext_report_restart_units_count(r) == 2);
    CHECK_STR(sysext_report_get_restart_unit(r, 0), "a.service");
    CHECK_STR(sysext_report_get_restart_unit(r, 1), "b.service");
    CHECK(sysext_report_get_restart_unit(r, 2) == NULL);
    CHECK(sysext_report_reload_or_restart_units_count(r) == 1); /* b is restarted */
    CHECK_STR(sysext_report_get_reload_or_restart_unit(r, 0), "c.socket");
    CHECK(sysext_report_get_reload_or_restart_unit(r, 1) == NULL);
    CHECK(sysext_report_restart_units_count(NULL) == 0);
    CHECK(sysext_report_get_reload_or_restart_unit(NULL, 0) == NULL);
    sysext_report_free(r);
    CHECK(exists(pathf("%s/usr/bin/bar", root)));
    struct statvfs sv;
    REQUIRE(statvfs(pathf("%s/usr", root), &sv) == 0);
    CHECK(sv.f_flag & ST_NOEXEC);
    CHECK(sv.f_flag & ST_RDONLY);

    OK(sysext_context_unmerge(c, &r, &err), err);
    CHECK(!sysext_report_needs_reload(r));
    CHECK(sysext_report_restart_units_count(r) == 2); /* read from the merged tree */
    sysext_report_free(r);
    sysext_context_free(c);
}

/* needs_reload: only without an explicit root, so a child chroots into a test root and
 * works on "its" /, as an init system does. */
static int reload_child(int no_reload) {
    sysext_options *o = options_for(SYSEXT_IMAGE_CLASS_SYSEXT, NULL, -1);
    sysext_error *err = NULL;
    sysext_report *r = NULL;
    sysext_context *c = NULL;
    OK(sysext_options_set_no_reload(o, no_reload, &err), err);
    OK(sysext_context_new(o, &c, &err), err);
    sysext_options_free(o);
    CHECK_STR(sysext_context_get_root(c), "/");
    OK(sysext_context_merge(c, &r, &err), err);
    CHECK(sysext_report_merged_count(r) == 2);
    CHECK(sysext_report_needs_reload(r) == !no_reload);
    sysext_report_free(r);
    CHECK_STR(read_file("/usr/bin/svc"), "svc");
    CHECK_STR(usr_status(c, NULL, NULL), "foo,svc");
    OK(sysext_context_unmerge(c, &r, &err), err);
    CHECK(sysext_report_unmerged_count(r) == 1);
    CHECK_STR(sysext_report_get_unmerged(r, 0), "/usr");
    CHECK(sysext_report_needs_reload(r) == !no_reload);
    sysext_report_free(r);
    sysext_context_free(c);
    return test_failures;
}

static void test_reload_in_chroot(void) {
    const char *root = make_root("reload-chroot");
    add_sysext(root, "svc", "ID=_any\nEXTENSION_RELOAD_MANAGER=1\n");
    char proc[4096];
    snprintf(proc, sizeof proc, "%s/proc", root);
    mkdir_p(proc, 0555);
    /* The library reads /proc/self/...; the chroot needs a /proc. */
    REQUIRE(mount("/proc", proc, NULL, MS_BIND | MS_REC, NULL) == 0);
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        if (chroot(root) != 0 || chdir("/") != 0)
            _exit(100);
        int bad = reload_child(0) + reload_child(1);
        fflush(NULL);
        _exit(bad ? 1 : 0);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(umount2(proc, MNT_DETACH) == 0);
}

static void test_confext(void) {
    const char *root = make_root("confext");
    add_confext(root, "cfg", "ID=_any\n");
    sysext_error *err = NULL;
    sysext_report *r = NULL;
    sysext_context *c = context_for(SYSEXT_IMAGE_CLASS_CONFEXT, root, SYSEXT_MUTABLE_MODE_DISABLED);
    OK(sysext_context_merge(c, &r, &err), err);
    CHECK(merged_names_are(r, "cfg", NULL));
    CHECK_STR(sysext_report_get_hierarchy(r, 0), "/etc");
    CHECK_STR(sysext_report_get_target(r, 0), pathf("%s/etc", root));
    sysext_report_free(r);
    CHECK_STR(read_file(pathf("%s/etc/cfg.conf", root)), "cfg");
    CHECK(exists(pathf("%s/etc/.systemd-confext/confexts", root)));
    struct statvfs sv;
    REQUIRE(statvfs(pathf("%s/etc", root), &sv) == 0);
    CHECK((sv.f_flag & ST_NOEXEC) && (sv.f_flag & ST_NOSUID));

    sysext_status *st = NULL;
    OK(sysext_context_status(c, &st, &err), err);
    REQUIRE(sysext_status_count(st) == 1);
    const sysext_hierarchy_status *h = sysext_status_get(st, 0);
    CHECK_STR(sysext_hierarchy_status_get_hierarchy(h), "/etc");
    CHECK(sysext_hierarchy_status_is_merged(h));
    CHECK_STR(sysext_hierarchy_status_get_extension(h, 0), "cfg");
    sysext_status_free(st);

    /* A sysext context does not see the confext merge as its own. */
    sysext_context *s = context_for(SYSEXT_IMAGE_CLASS_SYSEXT, root, -1);
    CHECK_STR(usr_status(s, NULL, NULL), "-");
    sysext_context_free(s);

    OK(sysext_context_unmerge(c, NULL, &err), err);
    CHECK(!exists(pathf("%s/etc/cfg.conf", root)));
    sysext_context_free(c);
}

/* The lock: while one merge runs (held inside its log callback), another context on the
 * same root with a zero or short timeout gets -EWOULDBLOCK. */
struct blocker {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int inside;  /* the merge reached its callback, holding the lock */
    int release; /* the merge may go on */
};

static void blocking_log(void *userdata, int level, const char *message) {
    struct blocker *b = userdata;
    (void) level;
    if (strncmp(message, "Using extensions", 16) != 0)
        return;
    pthread_mutex_lock(&b->lock);
    b->inside = 1;
    pthread_cond_broadcast(&b->cond);
    while (!b->release)
        pthread_cond_wait(&b->cond, &b->lock);
    pthread_mutex_unlock(&b->lock);
}

static void *merge_thread(void *p) {
    sysext_context *c = p;
    sysext_error *err = NULL;
    intptr_t rc = sysext_context_merge(c, NULL, &err);
    if (rc != 0)
        fprintf(stderr, "blocked merge failed: %s\n", sysext_error_get_message(err));
    sysext_error_free(err);
    return (void *) rc;
}

static void test_lock_busy(void) {
    const char *root = make_root("lock");
    struct blocker b = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    sysext_error *err = NULL;
    sysext_options *o = options_for(SYSEXT_IMAGE_CLASS_SYSEXT, root, -1);
    OK(sysext_options_set_log_callback(o, blocking_log, &b, &err), err);
    sysext_context *slow = NULL;
    OK(sysext_context_new(o, &slow, &err), err);
    OK(sysext_options_set_log_callback(o, NULL, NULL, &err), err);
    OK(sysext_options_set_lock_timeout_ms(o, 0, &err), err);
    sysext_context *impatient = NULL;
    OK(sysext_context_new(o, &impatient, &err), err);
    OK(sysext_options_set_lock_timeout_ms(o, 100, &err), err);
    sysext_context *patient = NULL;
    OK(sysext_context_new(o, &patient, &err), err);
    sysext_options_free(o);

    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, merge_thread, slow) == 0);
    pthread_mutex_lock(&b.lock);
    while (!b.inside)
        pthread_cond_wait(&b.cond, &b.lock);
    pthread_mutex_unlock(&b.lock);

    CHECK_RC(sysext_context_merge(impatient, NULL, &err), err, -EWOULDBLOCK);
    REQUIRE(err);
    CHECK(sysext_error_get_kind(err) == SYSEXT_ERROR_KIND_BUSY);
    CHECK(sysext_error_get_path(err) != NULL);
    sysext_error_free(err);
    err = NULL;
    CHECK_RC(sysext_context_unmerge(patient, NULL, NULL), NULL, -EWOULDBLOCK);
    /* Reading needs no lock. */
    sysext_plan *plan = NULL;
    OK(sysext_context_plan(impatient, &plan, &err), err);
    sysext_plan_free(plan);

    pthread_mutex_lock(&b.lock);
    b.release = 1;
    pthread_cond_broadcast(&b.cond);
    pthread_mutex_unlock(&b.lock);
    void *rc = NULL;
    REQUIRE(pthread_join(t, &rc) == 0);
    CHECK(rc == NULL);
    CHECK_STR(usr_status(impatient, NULL, NULL), "foo");
    OK(sysext_context_unmerge(impatient, NULL, &err), err);
    sysext_context_free(slow);
    sysext_context_free(impatient);
    sysext_context_free(patient);
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    require_root("test_merge");
    REQUIRE(overlay_mounts() == 0);
    test_merge_cycle();
    test_reload_force_noexec();
    test_reload_in_chroot();
    test_confext();
    test_lock_busy();
    CHECK(overlay_mounts() == 0);
    return test_finish("test_merge");
}
