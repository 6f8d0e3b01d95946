/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The six mutable modes through the C API, merged for real: where writes to the merged
 * /usr go, what the write-routing directory (var/lib/extensions.mutable/usr) contributes,
 * and the symlink trick (var/lib/extensions.mutable/usr -> /usr: writes land in the base
 * /usr). Needs root; run it in a private mount namespace:
 *   unshare -m --propagation private ./test_modes SCRATCH_DIR
 */
#include "common.h"

/* Create a file; 0 or the errno. */
static int try_write(const char *path, const char *content) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno;
    ssize_t n = write(fd, content, strlen(content));
    int e = n < 0 ? errno : 0;
    close(fd);
    return e;
}

struct merged {
    char root[2048];
    char routing[4096];
    sysext_context *ctx;
};

/* A root, optionally with a routing directory (1: a directory holding bin/imported and
 * bin/foo, 2: a symlink to /usr), merged in `mode`. */
static void merge_in(struct merged *m, const char *name, int mode, int routing) {
    snprintf(m->root, sizeof m->root, "%s", make_root(name));
    snprintf(m->routing, sizeof m->routing, "%s/var/lib/extensions.mutable/usr", m->root);
    if (routing == 1) {
        mkdir_p(m->routing, 0755);
        write_file(pathf("%s/bin/imported", m->routing), "imported");
        write_file(pathf("%s/bin/foo", m->routing), "foo from routing");
    } else if (routing == 2) {
        mkdir_p(pathf("%s/var/lib/extensions.mutable", m->root), 0755);
        REQUIRE(symlink("/usr", m->routing) == 0);
    }
    m->ctx = context_for(SYSEXT_IMAGE_CLASS_SYSEXT, m->root, mode);
    sysext_report *r = NULL;
    sysext_error *err = NULL;
    OK(sysext_context_merge(m->ctx, &r, &err), err);
    CHECK(sysext_report_merged_count(r) == 1);
    sysext_report_free(r);
    CHECK(overlay_mounts() == 1);
    CHECK_STR(read_file(pathf("%s/usr/bin/base", m->root)), "base");
}

/* Check status of /usr: the mode and where writes go (`upper`: the kind's name, or the
 * mutable directory for SYSEXT_UPPER_KIND_MUTABLE_DIR). */
static void check_status(const struct merged *m, const char *mode, const char *upper) {
    sysext_status *st = NULL;
    sysext_error *err = NULL;
    OK(sysext_context_status(m->ctx, &st, &err), err);
    int found = 0;
    for (size_t i = 0; i < sysext_status_count(st); i++) {
        const sysext_hierarchy_status *h = sysext_status_get(st, i);
        if (strcmp(sysext_hierarchy_status_get_hierarchy(h), "/usr") != 0)
            continue;
        found = 1;
        CHECK(sysext_hierarchy_status_is_merged(h));
        sysext_mutable_mode got_mode = -1;
        sysext_upper_kind kind = -1;
        CHECK(sysext_hierarchy_status_get_mutable_mode(h, &got_mode));
        CHECK_STR(sysext_mutable_mode_to_string(got_mode), mode);
        CHECK(sysext_hierarchy_status_get_upper_kind(h, &kind));
        if (kind == SYSEXT_UPPER_KIND_MUTABLE_DIR)
            CHECK_STR(sysext_hierarchy_status_get_upper_path(h), upper);
        else {
            CHECK_STR(sysext_upper_kind_to_string(kind), upper);
            CHECK(sysext_hierarchy_status_get_upper_path(h) == NULL);
        }
    }
    CHECK(found);
    sysext_status_free(st);
}

static void unmerge(struct merged *m) {
    sysext_error *err = NULL;
    OK(sysext_context_unmerge(m->ctx, NULL, &err), err);
    sysext_context_free(m->ctx);
    m->ctx = NULL;
    CHECK(overlay_mounts() == 0);
    CHECK(!exists(pathf("%s/usr/bin/foo", m->root)));
}

static void test_no(void) {
    struct merged m;
    merge_in(&m, "mode-no", SYSEXT_MUTABLE_MODE_DISABLED, 1);
    CHECK_STR(read_file(pathf("%s/usr/bin/foo", m.root)), "foo");
    CHECK(!exists(pathf("%s/usr/bin/imported", m.root))); /* no import */
    CHECK(try_write(pathf("%s/usr/bin/new", m.root), "new") == EROFS);
    check_status(&m, "no", "none");
    unmerge(&m);
}

static void test_yes(void) {
    struct merged m;
    /* No routing directory: the merge creates it and writes go there. */
    merge_in(&m, "mode-yes", SYSEXT_MUTABLE_MODE_ENABLED, 0);
    CHECK(exists(m.routing));
    CHECK(try_write(pathf("%s/usr/bin/new", m.root), "new") == 0);
    CHECK_STR(read_file(pathf("%s/usr/bin/new", m.root)), "new");
    CHECK_STR(read_file(pathf("%s/bin/new", m.routing)), "new");
    check_status(&m, "yes", m.routing);
    unmerge(&m);
    CHECK(!exists(pathf("%s/usr/bin/new", m.root)));     /* not in the base */
    CHECK_STR(read_file(pathf("%s/bin/new", m.routing)), "new"); /* kept */

    /* An existing routing directory is the upper layer: it is not imported below, its
     * contents show on top. */
    merge_in(&m, "mode-yes-existing", SYSEXT_MUTABLE_MODE_ENABLED, 1);
    CHECK_STR(read_file(pathf("%s/usr/bin/imported", m.root)), "imported");
    CHECK_STR(read_file(pathf("%s/usr/bin/foo", m.root)), "foo from routing");
    CHECK(try_write(pathf("%s/usr/bin/new", m.root), "new") == 0);
    CHECK_STR(read_file(pathf("%s/bin/new", m.routing)), "new");
    unmerge(&m);
}

static void test_auto(void) {
    struct merged m;
    merge_in(&m, "mode-auto", SYSEXT_MUTABLE_MODE_AUTO, 1);
    CHECK(try_write(pathf("%s/usr/bin/new", m.root), "new") == 0);
    CHECK_STR(read_file(pathf("%s/bin/new", m.routing)), "new");
    check_status(&m, "auto", m.routing);
    unmerge(&m);
    CHECK(!exists(pathf("%s/usr/bin/new", m.root)));

    /* Without a routing directory: read-only, and nothing is created. */
    merge_in(&m, "mode-auto-none", SYSEXT_MUTABLE_MODE_AUTO, 0);
    CHECK(try_write(pathf("%s/usr/bin/new", m.root), "new") == EROFS);
    CHECK(!exists(m.routing));
    check_status(&m, "auto", "none");
    unmerge(&m);
}

static void test_import(void) {
    struct merged m;
    merge_in(&m, "mode-import", SYSEXT_MUTABLE_MODE_IMPORT, 1);
    /* The routing directory is a read-only layer above the extensions. */
    CHECK_STR(read_file(pathf("%s/usr/bin/imported", m.root)), "imported");
    CHECK_STR(read_file(pathf("%s/usr/bin/foo", m.root)), "foo from routing");
    CHECK(try_write(pathf("%s/usr/bin/new", m.root), "new") == EROFS);
    check_status(&m, "import", "none");
    unmerge(&m);
}

static void test_ephemeral(void) {
    struct merged m;
    merge_in(&m, "mode-ephemeral", SYSEXT_MUTABLE_MODE_EPHEMERAL, 1);
    CHECK_STR(read_file(pathf("%s/usr/bin/foo", m.root)), "foo");
    CHECK(!exists(pathf("%s/usr/bin/imported", m.root)));
    CHECK(try_write(pathf("%s/usr/bin/new", m.root), "new") == 0);
    CHECK_STR(read_file(pathf("%s/usr/bin/new", m.root)), "new");
    CHECK(!exists(pathf("%s/bin/new", m.routing)));
    check_status(&m, "ephemeral", "ephemeral");
    unmerge(&m);
    CHECK(!exists(pathf("%s/usr/bin/new", m.root))); /* vanished */
    CHECK(!exists(pathf("%s/bin/new", m.routing)));
}

static void test_ephemeral_import(void) {
    struct merged m;
    merge_in(&m, "mode-ephemeral-import", SYSEXT_MUTABLE_MODE_EPHEMERAL_IMPORT, 1);
    CHECK_STR(read_file(pathf("%s/usr/bin/imported", m.root)), "imported");
    CHECK_STR(read_file(pathf("%s/usr/bin/foo", m.root)), "foo from routing");
    CHECK(try_write(pathf("%s/usr/bin/new", m.root), "new") == 0);
    CHECK(try_write(pathf("%s/usr/bin/imported", m.root), "changed") == 0);
    CHECK_STR(read_file(pathf("%s/usr/bin/imported", m.root)), "changed");
    check_status(&m, "ephemeral-import", "ephemeral");
    unmerge(&m);
    CHECK(!exists(pathf("%s/usr/bin/new", m.root)));
    CHECK(!exists(pathf("%s/bin/new", m.routing)));
    CHECK_STR(read_file(pathf("%s/bin/imported", m.routing)), "imported"); /* untouched */
}

/* var/lib/extensions.mutable/usr -> /usr: in modes yes and auto, the base /usr is the upper
 * layer, so writes land in the base and stay after the unmerge. */
static void test_symlink_trick(void) {
    static const int modes[] = {SYSEXT_MUTABLE_MODE_ENABLED, SYSEXT_MUTABLE_MODE_AUTO};
    static const char *const names[] = {"yes", "auto"};
    for (int i = 0; i < 2; i++) {
        struct merged m;
        merge_in(&m, pathf("symlink-%s", names[i]), modes[i], 2);
        sysext_plan *plan = NULL;
        sysext_error *err = NULL;
        /* status reports "host"; the file is written through the overlay into /usr. */
        check_status(&m, names[i], "host");
        CHECK(try_write(pathf("%s/usr/bin/new", m.root), "new") == 0);
        CHECK_STR(read_file(pathf("%s/usr/bin/foo", m.root)), "foo");
        unmerge(&m);
        CHECK_STR(read_file(pathf("%s/usr/bin/new", m.root)), "new");
        CHECK_STR(read_file(pathf("%s/usr/bin/base", m.root)), "base");
        /* The symlink is left as it was. */
        struct stat st;
        CHECK(lstat(m.routing, &st) == 0 && S_ISLNK(st.st_mode));
        /* In the import modes the same symlink is refused: it would import /usr over itself. */
        sysext_context *c = context_for(SYSEXT_IMAGE_CLASS_SYSEXT, m.root, SYSEXT_MUTABLE_MODE_IMPORT);
        CHECK_RC(sysext_context_plan(c, &plan, &err), err, -ELOOP);
        CHECK(sysext_error_get_kind(err) == SYSEXT_ERROR_KIND_MUTABLE_DIR);
        sysext_error_free(err);
        err = NULL;
        CHECK_RC(sysext_context_merge(c, NULL, &err), err, -ELOOP);
        sysext_error_free(err);
        sysext_context_free(c);
        CHECK(overlay_mounts() == 0);
    }
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    require_root("test_modes");
    REQUIRE(overlay_mounts() == 0);
    test_no();
    test_yes();
    test_auto();
    test_import();
    test_ephemeral();
    test_ephemeral_import();
    test_symlink_trick();
    CHECK(overlay_mounts() == 0);
    return test_finish("test_modes");
}
