# Build and install libsysext: the CLI (sysext, confext), the C library, man pages, shell
# completions and init files.
#
#   make                                  # release build of the CLI and the C library
#   make install PREFIX=/usr DESTDIR=/tmp/stage
#   make uninstall PREFIX=/usr DESTDIR=/tmp/stage
#   make wheel                            # the Python bindings as an abi3 wheel (needs maturin)
#   make deb                              # Debian packages into target/deb (packaging/deb/build)
#
# Every directory can be overridden on the command line (BINDIR=, LIBDIR=, MANDIR=, ...).
# Nothing is built by `make install` that `make` did not build, except when the build is
# stale (cargo decides). The installed binaries carry no debug info and no symbol table
# (the release profile strips them; the static library is stripped of debug info here).

PREFIX      ?= /usr/local
EXEC_PREFIX ?= $(PREFIX)
BINDIR      ?= $(EXEC_PREFIX)/bin
LIBDIR      ?= $(EXEC_PREFIX)/lib
LIBEXECDIR  ?= $(EXEC_PREFIX)/libexec
INCLUDEDIR  ?= $(PREFIX)/include
DATADIR     ?= $(PREFIX)/share
MANDIR      ?= $(DATADIR)/man
DOCDIR      ?= $(DATADIR)/doc/libsysext
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
# /etc for the system prefix, PREFIX/etc otherwise (as autoconf does it).
ifeq ($(PREFIX),/usr)
SYSCONFDIR  ?= /etc
else
SYSCONFDIR  ?= $(PREFIX)/etc
endif
SYSTEMDUNITDIR    ?= $(PREFIX)/lib/systemd/system
BASHCOMPLETIONDIR ?= $(DATADIR)/bash-completion/completions
ZSHCOMPLETIONDIR  ?= $(DATADIR)/zsh/site-functions
FISHCOMPLETIONDIR ?= $(DATADIR)/fish/vendor_completions.d
OPENRCDIR         ?= $(SYSCONFDIR)/init.d
OPENRCCONFDIR     ?= $(SYSCONFDIR)/conf.d

CARGO   ?= cargo
STRIP   ?= strip
INSTALL ?= install
MATURIN ?= maturin
CARGO_TARGET_DIR ?= $(CURDIR)/target
export CARGO_TARGET_DIR
RELEASE := $(CARGO_TARGET_DIR)/release

# The version is written once, in Cargo.toml ([workspace.package]).
VERSION := $(shell sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' $(CURDIR)/Cargo.toml)
MAJOR   := $(firstword $(subst ., ,$(VERSION)))

MAN8 := man/sysext.8 man/confext.8
MAN3 := man/libsysext.3

.PHONY: all build install install-bin install-lib install-man install-completions \
        install-init uninstall wheel deb check-version clean

all: build

build:
	$(CARGO) build --release -p sysext-cli -p sysext-capi

# The boot helper names the installed CLI; the init files name the helper.
SUBST = sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@LIBEXECDIR@|$(LIBEXECDIR)|g' \
            -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@VERSION@|$(VERSION)|g'

install: install-bin install-lib install-man install-completions install-init

install-bin: build
	$(INSTALL) -d $(DESTDIR)$(BINDIR)
	$(INSTALL) -m 0755 $(RELEASE)/sysext $(DESTDIR)$(BINDIR)/sysext
	ln -sfn sysext $(DESTDIR)$(BINDIR)/confext

# capi/install.sh links and installs the .so (SONAME libsysext.so.MAJOR, versioned symbols
# from capi/libsysext.map, stripped), the links, the .a (without debug info), the header and
# the .pc.
install-lib: build
	CARGO='$(CARGO)' STRIP='$(STRIP)' LIBDIR='$(LIBDIR)' INCLUDEDIR='$(INCLUDEDIR)' PKGCONFIGDIR='$(PKGCONFIGDIR)' \
	    DESTDIR='$(DESTDIR)' sh capi/install.sh '$(PREFIX)'

install-man:
	$(INSTALL) -d $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man3
	$(INSTALL) -m 0644 $(MAN8) $(DESTDIR)$(MANDIR)/man8/
	$(INSTALL) -m 0644 $(MAN3) $(DESTDIR)$(MANDIR)/man3/

install-completions:
	$(INSTALL) -d $(DESTDIR)$(BASHCOMPLETIONDIR) $(DESTDIR)$(ZSHCOMPLETIONDIR) $(DESTDIR)$(FISHCOMPLETIONDIR)
	$(INSTALL) -m 0644 completions/sysext.bash $(DESTDIR)$(BASHCOMPLETIONDIR)/sysext
	ln -sfn sysext $(DESTDIR)$(BASHCOMPLETIONDIR)/confext
	$(INSTALL) -m 0644 completions/_sysext $(DESTDIR)$(ZSHCOMPLETIONDIR)/_sysext
	$(INSTALL) -m 0644 completions/sysext.fish $(DESTDIR)$(FISHCOMPLETIONDIR)/sysext.fish
	$(INSTALL) -m 0644 completions/confext.fish $(DESTDIR)$(FISHCOMPLETIONDIR)/confext.fish

# The boot helper (kernel command line switch, order confext then sysext), the systemd
# unit, the OpenRC service and its settings; the s6-rc and runit examples as documentation.
install-init:
	$(INSTALL) -d $(DESTDIR)$(LIBEXECDIR)/libsysext $(DESTDIR)$(SYSTEMDUNITDIR) \
	    $(DESTDIR)$(OPENRCDIR) $(DESTDIR)$(OPENRCCONFDIR) \
	    $(DESTDIR)$(DOCDIR)/examples/s6-rc/libsysext $(DESTDIR)$(DOCDIR)/examples/runit
	$(SUBST) init/libsysext-boot.in > $(DESTDIR)$(LIBEXECDIR)/libsysext/boot
	chmod 0755 $(DESTDIR)$(LIBEXECDIR)/libsysext/boot
	$(SUBST) init/systemd/libsysext.service.in > $(DESTDIR)$(SYSTEMDUNITDIR)/libsysext.service
	$(SUBST) init/systemd/libsysext-varlink@.service.in > $(DESTDIR)$(SYSTEMDUNITDIR)/libsysext-varlink@.service
	$(INSTALL) -m 0644 init/systemd/libsysext-varlink.socket $(DESTDIR)$(SYSTEMDUNITDIR)/libsysext-varlink.socket
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/libsysext.service $(DESTDIR)$(SYSTEMDUNITDIR)/libsysext-varlink@.service
	$(SUBST) init/openrc/libsysext.in > $(DESTDIR)$(OPENRCDIR)/libsysext
	chmod 0755 $(DESTDIR)$(OPENRCDIR)/libsysext
	$(INSTALL) -m 0644 init/openrc/libsysext.confd $(DESTDIR)$(OPENRCCONFDIR)/libsysext
	$(INSTALL) -m 0644 init/s6-rc/libsysext/type $(DESTDIR)$(DOCDIR)/examples/s6-rc/libsysext/type
	$(SUBST) init/s6-rc/libsysext/up.in > $(DESTDIR)$(DOCDIR)/examples/s6-rc/libsysext/up
	$(SUBST) init/s6-rc/libsysext/down.in > $(DESTDIR)$(DOCDIR)/examples/s6-rc/libsysext/down
	$(SUBST) init/runit/04-libsysext.sh.in > $(DESTDIR)$(DOCDIR)/examples/runit/04-libsysext.sh
	$(SUBST) init/runit/40-libsysext.sh.in > $(DESTDIR)$(DOCDIR)/examples/runit/40-libsysext.sh
	chmod 0644 $(DESTDIR)$(DOCDIR)/examples/s6-rc/libsysext/up $(DESTDIR)$(DOCDIR)/examples/s6-rc/libsysext/down \
	    $(DESTDIR)$(DOCDIR)/examples/runit/*.sh
	$(INSTALL) -m 0644 init/README.md $(DESTDIR)$(DOCDIR)/init.md

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/sysext $(DESTDIR)$(BINDIR)/confext
	rm -f $(DESTDIR)$(LIBDIR)/libsysext.so $(DESTDIR)$(LIBDIR)/libsysext.so.$(MAJOR) \
	    $(DESTDIR)$(LIBDIR)/libsysext.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libsysext.a \
	    $(DESTDIR)$(PKGCONFIGDIR)/libsysext.pc $(DESTDIR)$(INCLUDEDIR)/sysext.h
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man8/,$(notdir $(MAN8))) \
	    $(addprefix $(DESTDIR)$(MANDIR)/man3/,$(notdir $(MAN3)))
	rm -f $(DESTDIR)$(BASHCOMPLETIONDIR)/sysext $(DESTDIR)$(BASHCOMPLETIONDIR)/confext \
	    $(DESTDIR)$(ZSHCOMPLETIONDIR)/_sysext \
	    $(DESTDIR)$(FISHCOMPLETIONDIR)/sysext.fish $(DESTDIR)$(FISHCOMPLETIONDIR)/confext.fish
	rm -f $(DESTDIR)$(LIBEXECDIR)/libsysext/boot $(DESTDIR)$(SYSTEMDUNITDIR)/libsysext.service \
	    $(DESTDIR)$(SYSTEMDUNITDIR)/libsysext-varlink.socket $(DESTDIR)$(SYSTEMDUNITDIR)/libsysext-varlink@.service \
	    $(DESTDIR)$(OPENRCDIR)/libsysext $(DESTDIR)$(OPENRCCONFDIR)/libsysext
	rm -rf $(DESTDIR)$(DOCDIR)
	-rmdir $(DESTDIR)$(LIBEXECDIR)/libsysext

# The Python bindings as an abi3 wheel in target/wheels (maturin from PATH or MATURIN=).
wheel:
	$(MATURIN) build --release -m python/Cargo.toml -o $(CARGO_TARGET_DIR)/wheels

deb:
	packaging/deb/build

# The tag of a release is v$(VERSION) (CHANGELOG.md, "Releases").
check-version:
	@grep -q '^## \[$(VERSION)\]' CHANGELOG.md || { echo "CHANGELOG.md has no entry for $(VERSION)" >&2; exit 1; }
	@echo "version $(VERSION), tag v$(VERSION)"

clean:
	$(CARGO) clean
