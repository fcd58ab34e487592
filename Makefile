# dfs build.  `make` builds bin/, `make test` installs what is missing and
# runs every test, `make run` starts a local cluster.  See docs/BUILD.md.
#
# Sources are found by folder, so adding a module is adding a .c/.h pair:
#   common/*.c          -> $(BUILD)/libcommon.a   (every binary)
#   common/libdfs/*.c   -> $(BUILD)/libdfs.a      (mount and tools only)
#   master/*.c          -> $(BUILD)/libmaster.a + master/main.c -> dfs-master
#   chunkserver/*.c     -> $(BUILD)/libchunk.a  + chunkserver/main.c
#   fuse/*.c            -> dfs-mount
#   tools/<prog>.c      -> one program per name in TOOLS; other tools/*.c
#                          are shared helpers linked into each of them
#   tests/unit/test_*.c -> one cmocka binary each, linked with every library
#   tests/sim/*.c       -> raftsim
#   tests/fuzz/fuzz_*.c -> libFuzzer targets (clang only), `make fuzz`

CC      ?= cc
BUILD   ?= build
BIN     ?= bin
PREFIX  ?= /usr/local
DESTDIR ?=

# c11 plus the POSIX/Linux interfaces we need (epoll, accept4, pipe2...).
STD      = -std=c11 -D_GNU_SOURCE
WARN     = -Wall -Wextra -Werror
OPT     ?= -O2 -g
SAN     ?=
CFLAGS  += $(STD) $(WARN) $(OPT) $(SAN) -pthread -MMD -MP -I.
LDFLAGS += $(SAN) -pthread

PKGS_COMMON = openssl zlib
LIBS_COMMON = $(shell pkg-config --libs $(PKGS_COMMON) 2>/dev/null || echo -lssl -lcrypto -lz)
LIBS_HTTP   = $(shell pkg-config --libs libmicrohttpd 2>/dev/null || echo -lmicrohttpd)
LIBS_FUSE   = $(shell pkg-config --libs fuse3 2>/dev/null || echo -lfuse3)
CFLAGS_FUSE = $(shell pkg-config --cflags fuse3 2>/dev/null || echo -I/usr/include/fuse3)
LIBS_CMOCKA = $(shell pkg-config --libs cmocka 2>/dev/null || echo -lcmocka)

TOOLS = dfsput dfsget dfsadmin

src_of   = $(filter-out $(2),$(wildcard $(1)/*.c))
objs_of  = $(patsubst %.c,$(BUILD)/%.o,$(1))

COMMON_OBJS = $(call objs_of,$(wildcard common/*.c))
LIBDFS_OBJS = $(call objs_of,$(wildcard common/libdfs/*.c))
MASTER_OBJS = $(call objs_of,$(call src_of,master,master/main.c))
CHUNK_OBJS  = $(call objs_of,$(call src_of,chunkserver,chunkserver/main.c))
FUSE_OBJS   = $(call objs_of,$(wildcard fuse/*.c))
TOOLS_SHARED_OBJS = $(call objs_of,$(filter-out $(TOOLS:%=tools/%.c),$(wildcard tools/*.c)))
UNIT_SRCS   = $(wildcard tests/unit/test_*.c)
UNIT_BINS   = $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
CLUSTER_BINS = $(patsubst tests/cluster/%.c,$(BUILD)/tests/cluster/%,$(wildcard tests/cluster/*.c))
CLUSTER_COMMON_OBJS = $(call objs_of,$(wildcard tests/cluster/common/*.c))
POSIX_BINS  = $(patsubst tests/posix/%.c,$(BUILD)/tests/posix/%,$(wildcard tests/posix/*.c))
MICRO_BINS  = $(patsubst tests/bench/%.c,$(BUILD)/bench/%,$(wildcard tests/bench/*.c))
SIM_OBJS    = $(call objs_of,$(wildcard tests/sim/*.c))
SCRIPTS     = $(patsubst tools/%.py,$(BIN)/%,$(wildcard tools/dfs-cluster.py)) \
              $(patsubst tools/%.sh,$(BIN)/%,$(wildcard tools/mount.dfs.sh))

LIB_COMMON = $(BUILD)/libcommon.a
LIB_DFS    = $(BUILD)/libdfs.a
LIB_MASTER = $(BUILD)/libmaster.a
LIB_CHUNK  = $(BUILD)/libchunk.a
ALL_LIBS   = $(LIB_MASTER) $(LIB_CHUNK) $(LIB_DFS) $(LIB_COMMON)

# raftsim joins the build once its main exists (tests/sim/raftsim.c).
RAFTSIM = $(if $(wildcard tests/sim/raftsim.c),$(BIN)/raftsim)
PROGS = $(BIN)/dfs-master $(BIN)/dfs-chunkserver $(BIN)/dfs-mount \
        $(TOOLS:%=$(BIN)/%) $(RAFTSIM) $(SCRIPTS)

.SECONDARY:
.PHONY: soak soak-raft asan-build bench-micro all test unit asan fuzz deps clean install run stop bench
.DEFAULT_GOAL := all

all: $(PROGS) $(UNIT_BINS) $(MICRO_BINS) $(CLUSTER_BINS) $(POSIX_BINS)

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/fuse/%.o: fuse/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(CFLAGS_FUSE) -c $< -o $@

# An empty archive is valid; `ar rcs` with no members still writes one.
$(BUILD)/lib%.a:
	@mkdir -p $(@D)
	@rm -f $@
	ar rcs $@ $^
$(LIB_COMMON): $(COMMON_OBJS)
$(LIB_DFS):    $(LIBDFS_OBJS)
$(LIB_MASTER): $(MASTER_OBJS)
$(LIB_CHUNK):  $(CHUNK_OBJS)

$(BIN)/dfs-master: $(BUILD)/master/main.o $(LIB_MASTER) $(LIB_COMMON)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_HTTP) $(LIBS_COMMON)

$(BIN)/dfs-chunkserver: $(BUILD)/chunkserver/main.o $(LIB_CHUNK) $(LIB_COMMON)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_COMMON)

$(BIN)/dfs-mount: $(FUSE_OBJS) $(LIB_DFS) $(LIB_COMMON)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_FUSE) $(LIBS_COMMON)

$(BIN)/raftsim: $(SIM_OBJS) $(LIB_MASTER) $(LIB_COMMON)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_HTTP) $(LIBS_COMMON)

$(TOOLS:%=$(BIN)/%): $(BIN)/%: $(BUILD)/tools/%.o $(TOOLS_SHARED_OBJS) $(LIB_DFS) $(LIB_COMMON)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_COMMON)

$(BIN)/%: tools/%.sh
	@mkdir -p $(@D)
	install -m 0755 $< $@
$(BIN)/%: tools/%.py
	@mkdir -p $(@D)
	install -m 0755 $< $@

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(ALL_LIBS)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(filter %.a,$^) $(LIBS_CMOCKA) $(LIBS_HTTP) $(LIBS_COMMON)
# The mount's tables are tested alone (they need no libfuse).
$(BUILD)/tests/test_inodes: $(BUILD)/fuse/inodes.o
$(BUILD)/tests/test_dirattr: $(BUILD)/fuse/dirattr.o

# Helper programs of the multi-process suites: clients built on libdfs,
# sharing what tests/cluster/common holds.
$(BUILD)/tests/cluster/%: $(BUILD)/tests/cluster/%.o $(CLUSTER_COMMON_OBJS) $(LIB_DFS) $(LIB_COMMON)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_COMMON)

# Programs the POSIX suite runs on a mount: plain system calls.
$(BUILD)/tests/posix/%: $(BUILD)/tests/posix/%.o $(LIB_COMMON)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_COMMON)

$(BUILD)/bench/%: $(BUILD)/tests/bench/%.o $(ALL_LIBS)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_HTTP) $(LIBS_COMMON)

# ---- dependencies --------------------------------------------------------
deps:
	@tools/install-deps.sh

# ---- tests ----------------------------------------------------------------
ASAN_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

unit: $(UNIT_BINS)
	@tests/run-unit.sh "$(if $(SAN),ASan+UBSan,plain)" $(UNIT_BINS)

# The sanitizer build lives in its own folder and never touches bin/.
asan:
	@$(MAKE) --no-print-directory -j$(JOBS) BUILD=build/asan BIN=build/asan/bin \
	    OPT="-O1 -g" SAN="$(ASAN_FLAGS)" asan-build
	@$(MAKE) --no-print-directory BUILD=build/asan BIN=build/asan/bin \
	    OPT="-O1 -g" SAN="$(ASAN_FLAGS)" unit sim-slice
asan-build: $(UNIT_BINS) $(RAFTSIM)

SIM_SEEDS ?= 1-2000
SIM_SLICE ?= 1-200
sim: $(RAFTSIM)
	@$(RAFTSIM) --seeds $(SIM_SEEDS)
	@$(RAFTSIM) --check-bugs --seeds 1-300

# Runs new seeds in blocks of 1,000 until interrupted (or SOAK_S seconds).
SOAK_S ?= 0
soak-raft: $(RAFTSIM)
	@start=$$(date +%s); from=$$(( $$(date +%s) % 1000000 * 1000 )); \
	while :; do \
	    $(RAFTSIM) --seeds $$from-$$((from + 999)) | tail -n 1 || exit 1; \
	    from=$$((from + 1000)); \
	    [ $(SOAK_S) -gt 0 ] && [ $$(( $$(date +%s) - start )) -ge $(SOAK_S) ] && break; \
	done; true
# The cluster fault scenarios (tests/cluster/test_faults*.sh) in a loop
# with new seeds and longer settings, for SOAK_S seconds (default 1 hour).
soak: deps all
	@bash tests/cluster/soak.sh $$( [ $(SOAK_S) -gt 0 ] && echo $(SOAK_S) || echo 3600 )

sim-slice: $(RAFTSIM)
	@$(RAFTSIM) --seeds $(SIM_SLICE)

fuzz:
	@tests/fuzz/run.sh $(FUZZ_SECONDS)

JOBS ?= $(shell nproc 2>/dev/null || echo 2)

test: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory sim
	@$(MAKE) --no-print-directory asan
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=20
	@tests/run-suites.sh

# ---- cluster --------------------------------------------------------------
run: deps all
	@tools/make-run.sh
stop:
	@tools/make-run.sh stop

bench: deps all
	@tools/bench.sh

# Micro-benchmarks of single modules (tests/bench/*.c): figures, not tests.
bench-micro: $(MICRO_BINS)
	@for b in $(MICRO_BINS); do $$b || exit 1; done

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)/sbin
	install -m 0755 $(filter-out $(BIN)/raftsim $(BIN)/mount.dfs,$(PROGS)) $(DESTDIR)$(PREFIX)/bin/
	install -m 0755 $(BIN)/mount.dfs $(DESTDIR)/sbin/mount.dfs
	install -d $(DESTDIR)/lib/systemd/system $(DESTDIR)$(PREFIX)/share/doc/dfs
	install -m 0644 tools/systemd/dfs-master.service tools/systemd/dfs-chunkserver@.service \
	    $(DESTDIR)/lib/systemd/system/
	install -m 0644 README.md docs/*.md $(DESTDIR)$(PREFIX)/share/doc/dfs/

clean:
	rm -rf build bin

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
