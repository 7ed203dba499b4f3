# cpf — build the C core for one Lua (LUA=lua5.4 | lua5.3 | lua5.1 | luajit), run tests, benchmarks.
LUA ?= lua5.4
ifeq ($(LUA),luajit)
LUA_INCDIR ?= /usr/include/luajit-2.1
else
LUA_INCDIR ?= /usr/include/$(LUA)
endif
CSV_INCDIR ?= /usr/include
CSV_LIBDIR ?= /usr/lib
BUILD_DIR ?= build/$(LUA)
CC ?= cc
CFLAGS ?= -O2 -g
WARNINGS ?= -std=c99 -pedantic -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
LIBFLAG ?= -shared
# Only luaopen_cpf_core is visible; liblua is never linked into the module.
MODULE_CFLAGS = $(WARNINGS) -D_POSIX_C_SOURCE=200809L -pthread -fPIC -fvisibility=hidden \
                -I$(LUA_INCDIR) -I$(CSV_INCDIR)
MODULE_LIBS = -L$(CSV_LIBDIR) -lcsv -lz -lcurl -lm -lpthread

# The engine (plain C, no Lua header: the fuzzers build it alone) and the Lua bindings.
ENGINE_SOURCES = csrc/alloc.c csrc/io.c csrc/loader.c csrc/dataset.c csrc/column.c csrc/dictionary.c csrc/numparse.c csrc/query.c csrc/order.c \
                 csrc/snapshot.c csrc/output_file.c csrc/rejects.c csrc/encoding.c csrc/file_kind.c csrc/describe.c csrc/http.c csrc/writer.c csrc/error.c
BINDING_SOURCES = csrc/core.c csrc/lua_util.c csrc/lua_dataset.c csrc/lua_query.c csrc/lua_result.c csrc/lua_source.c csrc/lua_system.c csrc/lua_job.c csrc/lua_fetch.c csrc/lua_writer.c
SOURCES = $(BINDING_SOURCES) $(ENGINE_SOURCES)
HEADERS = csrc/cpf.h csrc/snapshot_format.h csrc/compat.h csrc/lua_bindings.h
MODULE = $(BUILD_DIR)/cpf/core.so

.PHONY: all test bench demo clean lint check-asan check-tsan check-all screenshot dist sanitizer-builds \
        fuzz fuzz-smoke fuzz-build fuzz-list

all: $(MODULE) doc/tags

# Neovim's help tags of doc/cpf.txt, as :helptags writes them (a plugin manager's build step runs
# make, so :help cpf finds cpf's page, not Vim's :cpf[ile], without :helptags ALL)
doc/tags: doc/cpf.txt
	@awk 'BEGIN { print "!_TAG_FILE_ENCODING\tutf-8\t//" } { while (match($$0, /(^|[ \t])\*[^ \t*|]+\*([ \t]|$$)/)) { t = substr($$0, RSTART, RLENGTH); \
	  gsub(/^[ \t]*\*|\*[ \t]*$$/, "", t); print t "\tcpf.txt\t/*" t "*"; $$0 = substr($$0, RSTART + RLENGTH) } }' \
	  doc/cpf.txt | LC_ALL=C sort -u > $@

$(MODULE): $(SOURCES) $(HEADERS) Makefile
	@test -f $(CSV_INCDIR)/csv.h || { echo "cpf needs libcsv's header $(CSV_INCDIR)/csv.h: apt-get install libcsv-dev (Debian, Ubuntu), dnf install libcsv-devel (Fedora), brew install libcsv (Homebrew); or give CSV_INCDIR= and CSV_LIBDIR=" >&2; exit 1; }
	@printf '#include <zlib.h>\n' | $(CC) -E -I$(CSV_INCDIR) - >/dev/null 2>&1 || { echo "cpf needs zlib's header zlib.h: apt-get install zlib1g-dev (Debian, Ubuntu), dnf install zlib-devel (Fedora); Homebrew and macOS have it" >&2; exit 1; }
	@printf '#include <curl/curl.h>\n' | $(CC) -E -I$(CSV_INCDIR) - >/dev/null 2>&1 || { echo "cpf needs libcurl's header curl/curl.h (cpf fetch): apt-get install libcurl4-openssl-dev (Debian, Ubuntu), dnf install libcurl-devel (Fedora), brew install curl (Homebrew)" >&2; exit 1; }
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(MODULE_CFLAGS) $(LIBFLAG) -o $@ $(SOURCES) $(MODULE_LIBS)

# The whole suite: under Lua 5.4, 5.3, 5.1 and LuaJIT, again under Lua 5.4 on the
# AddressSanitizer + UBSan build, the thread specs on the ThreadSanitizer build, and 20 s of each
# fuzzer; one closing "N passed, N failed".
test: sanitizer-builds fuzz-build
	$(MAKE) LUA=lua5.4
	$(MAKE) LUA=lua5.3
	$(MAKE) LUA=lua5.1
	$(MAKE) LUA=luajit
	bash scripts/run-busted.sh lint lua5.4 lua5.3 lua5.1 luajit asan tsan fuzz

bench: all
	bash bench/run.sh

demo: all
	./bin/cpf demo

# luacheck over the Lua code, settings in .luacheckrc (make test runs it too, as one test per
# directory).
LUACHECK ?= luacheck
lint:
	$(LUACHECK) lua/ bin/ plugin/ spec/ examples/ bench/

clean:
	rm -rf build

# Builds with AddressSanitizer + UBSan (build/asan) and ThreadSanitizer (build/tsan). The
# interpreter is not instrumented: scripts/run-busted.sh preloads the runtimes, and any report
# fails the run.
SANITIZE = -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
sanitizer-builds:
	$(MAKE) LUA=lua5.4 BUILD_DIR=build/asan CFLAGS="$(SANITIZE)" LIBFLAG="-shared -fsanitize=address,undefined"
	$(MAKE) LUA=lua5.4 BUILD_DIR=build/tsan CFLAGS="-O1 -g -fsanitize=thread" LIBFLAG="-shared -fsanitize=thread"

check-asan: sanitizer-builds
	bash scripts/run-busted.sh asan

check-tsan: sanitizer-builds
	bash scripts/run-busted.sh tsan

# libFuzzer harnesses (Debian's clang) over the engine files, no Lua: csv_load loads any bytes
# with one thread, several threads on tiny chunks and libcsv alone, which must agree;
# snapshot_open takes any bytes, snapshot_mutate changes table fields and data and recomputes
# the checksums; result_store (below) links Lua. Each runs
# FUZZ_SECONDS on a copy of its seed corpus in build/fuzz (what it finds stays out of the
# repository); crashes are written to build/fuzz/crash-<harness>-*.
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 300
FUZZ_OPTIONS ?=
FUZZ_CFLAGS ?= -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
               -fno-omit-frame-pointer
FUZZERS = csv_load snapshot_open snapshot_mutate result_store
FUZZ_BINARIES = $(FUZZERS:%=build/fuzz/%)

# result_store drives the result store and its transforms through the Lua API (its script,
# fuzz/result_store.lua, reads the bytes as a query and result operations): Lua 5.4 linked in
# with the bindings, the module's own sources.
build/fuzz/result_store: fuzz/result_store.c fuzz/result_store.lua $(SOURCES) $(HEADERS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(WARNINGS) -D_POSIX_C_SOURCE=200809L -pthread -Icsrc -I/usr/include/lua5.4 \
	  -I$(CSV_INCDIR) -o $@ fuzz/result_store.c $(SOURCES) -llua5.4 -L$(CSV_LIBDIR) -lcsv -lz -lcurl -lm -lpthread

build/fuzz/%: fuzz/%.c fuzz/fuzz_queries.c fuzz/fuzz.h $(ENGINE_SOURCES) $(HEADERS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(WARNINGS) -D_POSIX_C_SOURCE=200809L -Icsrc -o $@ \
	  fuzz/$*.c fuzz/fuzz_queries.c $(ENGINE_SOURCES) -L$(CSV_LIBDIR) -lcsv -lz -lcurl -lm -lpthread

fuzz-build: $(FUZZ_BINARIES)

fuzz: fuzz-build
	@for f in $(FUZZERS); do \
	  mkdir -p build/fuzz/corpus/$$f && cp fuzz/corpus/$$f/* build/fuzz/corpus/$$f/ && \
	  echo "fuzz: $$f for $(FUZZ_SECONDS) s" && \
	  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 build/fuzz/$$f -max_total_time=$(FUZZ_SECONDS) \
	    -print_final_stats=1 -artifact_prefix=build/fuzz/crash-$$f- $(FUZZ_OPTIONS) \
	    build/fuzz/corpus/$$f || exit 1; \
	done

fuzz-smoke:
	$(MAKE) fuzz FUZZ_SECONDS=30

fuzz-list:
	@echo $(FUZZERS)

# The HTML report rendered by a real headless Chromium: build/report.png.
screenshot: all
	bash scripts/screenshot.sh

# A release (scripts/dist.sh): DIST_DIR/cpf-$(VERSION).tar.gz from the tracked files, its rockspec
# DIST_DIR/rockspec/cpf-$(VERSION)-1.rockspec (source: DIST_URL, by default the tarball's file://
# path) and DIST_DIR/cpf-$(VERSION)-1.src.rock, which installs offline.
# DIST_GIT=git+https://host/owner/cpf.git: the rockspec to publish fetches the tag vVERSION
# from there; DIST_HOMEPAGE its homepage (default: DIST_GIT's address).
VERSION ?=
DIST_DIR ?= .
DIST_URL ?=
DIST_GIT ?=
DIST_HOMEPAGE ?=
dist:
	bash scripts/dist.sh "$(VERSION)" "$(DIST_DIR)" "$(DIST_URL)" "$(DIST_GIT)" "$(DIST_HOMEPAGE)"

# Everything slow: the suite (sanitizers included), the allocation-failure sweep over every
# allocation (CPF_OOM_SWEEP=all; CI samples one in seven) on Lua 5.4 and under ASan, writers
# killed -9 100 times each instead of 8 (CPF_KILL_SWEEP=all), the shortest number text checked on
# 200 000 doubles instead of 20 000 (CPF_SHORTEST_SWEEP=all), each fuzzer for 2 minutes instead
# of 20 s, and a quick benchmark.
check-all: test
	CPF_OOM_SWEEP=all CPF_KILL_SWEEP=all CPF_INSTALL_SWEEP=all CPF_SHORTEST_SWEEP=all \
	  bash scripts/run-busted.sh lua5.4 asan
	CPF_FUZZ_SECONDS=120 bash scripts/run-busted.sh fuzz
	bash bench/run.sh --quick
