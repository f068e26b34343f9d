# vTPM for an edge OS. `make run` and `make test` do all set-up (as root on
# Debian 12): they install missing packages through build/deps.sh first.

OUT      ?= out
CC       ?= cc
CLANG    ?= clang
ARGS     ?=
FUZZ_SECONDS ?= 60

WARN     := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral
CPPFLAGS := -D_GNU_SOURCE -Ipubsub -Ipkg/common
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 $(WARN) -fstack-protector-strong -D_FORTIFY_SOURCE=2
SANFLAGS := -std=c11 $(WARN) -O1 -g -fno-omit-frame-pointer \
            -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDLIBS   := -lnng -lcjson -ltss2-esys -ltss2-tctildr -ltss2-rc -ltss2-mu \
            -lcrypto -lsqlite3 -lpthread

# Daemons: name, source folder, binary.
DAEMONS        := launcher guardian keybroker domainmgr vtpmctl verify
launcher_DIR   := pkg/vtpm/launcher
launcher_BIN   := vtpm-launcher
# per-binary link libraries: only the launcher sandboxes (libcap-ng)
launcher_LIBS  := -lcap-ng
guardian_DIR   := pkg/vtpm/guardian
guardian_BIN   := vtpm-guardian
keybroker_DIR  := pkg/sealer
keybroker_BIN  := vtpm-keybroker
domainmgr_DIR  := pkg/domainmgr
domainmgr_BIN  := domainmgr
vtpmctl_DIR    := pkg/vtpm/ctl
vtpmctl_BIN    := vtpmctl
verify_DIR     := pkg/verify
verify_BIN     := vtpm-verify

COMMON_SRC := $(wildcard pubsub/*.c pkg/common/*.c)
# A daemon whose folder does not exist yet simply builds nothing.
present    := $(foreach d,$(DAEMONS),$(if $(wildcard $($(d)_DIR)/main.c),$(d)))
mod_src     = $(filter-out $($(1)_DIR)/main.c,$(wildcard $($(1)_DIR)/*.c))
MOD_SRC    := $(foreach d,$(DAEMONS),$(call mod_src,$(d)))
MOD_INC    := $(foreach d,$(DAEMONS),$(if $(wildcard $($(d)_DIR)),-I$($(d)_DIR)))
CPPFLAGS   += $(MOD_INC)

UNIT_SRC   := $(wildcard tests/unit/*_test.c)
launcher_test_LIBS := $(launcher_LIBS)
TOOL_SRC   := $(wildcard tests/tools/*.c)
BENCH_SRC  := $(wildcard bench/*.c)
FUZZ_SRC   := $(wildcard tests/fuzz/*_fuzz.c)

# Two object trees: release (out/obj) and sanitizer (out/san).
obj  = $(patsubst %.c,$(OUT)/obj/%.o,$(1))
sobj = $(patsubst %.c,$(OUT)/san/%.o,$(1))

BINS       := $(foreach d,$(present),$(OUT)/bin/$($(d)_BIN))
TOOLS      := $(patsubst tests/tools/%.c,$(OUT)/bin/%,$(TOOL_SRC))
BENCHES    := $(patsubst bench/%.c,$(OUT)/bench-bin/%,$(BENCH_SRC))
UNITS      := $(patsubst tests/unit/%.c,$(OUT)/san/unit/%,$(UNIT_SRC))
FUZZERS    := $(patsubst tests/fuzz/%.c,$(OUT)/fuzz/%,$(FUZZ_SRC))

LIB        := $(OUT)/obj/libvtpm.a
SANLIB     := $(OUT)/san/libvtpm.a

# keep objects that pattern rules chain through (no rebuilds next time)
.SECONDARY:

.PHONY: all deps run test test-unit test-integration test-e2e bench fuzz \
        image soak clean format help
all: $(BINS) $(TOOLS)

help:
	@echo "make [all|deps|run|test|test-unit|test-integration|test-e2e|bench|fuzz|image|soak|clean|format]"

deps:
	@build/deps.sh

$(OUT)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(OUT)/san/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(SANFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(call obj,$(COMMON_SRC) $(MOD_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(SANLIB): $(call sobj,$(COMMON_SRC) $(MOD_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

define daemon_rule
$(OUT)/bin/$($(1)_BIN): $(call obj,$($(1)_DIR)/main.c) $(LIB)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) -o $$@ $$^ $$(LDLIBS) $$($(1)_LIBS)
endef
$(foreach d,$(present),$(eval $(call daemon_rule,$(d))))

$(OUT)/bin/%: $(OUT)/obj/tests/tools/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(OUT)/bench-bin/%: $(OUT)/obj/bench/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(OUT)/san/unit/%: $(OUT)/san/tests/unit/%.o $(SANLIB)
	@mkdir -p $(dir $@)
	$(CC) $(SANFLAGS) -o $@ $^ -lcmocka $(LDLIBS) $($*_LIBS)

$(OUT)/fuzz/%: tests/fuzz/%.c $(COMMON_SRC)
	@mkdir -p $(dir $@)
	$(CLANG) $(CPPFLAGS) -std=c11 -g -O1 \
	  -fsanitize=fuzzer,address,undefined -o $@ $^ $(LDLIBS)

run: deps all
	build/run.sh $(ARGS)

test: deps all $(UNITS) $(BENCHES)
	tests/run.sh

test-unit: deps $(UNITS)
	tests/run.sh --unit

test-integration: deps all
	tests/run.sh --integration

test-e2e: deps all
	tests/run.sh --e2e

bench: deps all $(BENCHES)
	bench/run.sh

soak: deps all
	SOAK=1 TEST_TIMEOUT=$${TEST_TIMEOUT:-43200} tests/run.sh --integration

fuzz: deps $(FUZZERS)
	@for f in $(FUZZERS); do \
	  n=$$(basename $$f); mkdir -p $(OUT)/fuzz/corpus-$$n; \
	  echo "fuzz: $$n for $(FUZZ_SECONDS)s"; \
	  log=$(OUT)/fuzz/$$n.log; \
	  if ! $$f -max_total_time=$(FUZZ_SECONDS) -max_len=70000 \
	      -artifact_prefix=$(OUT)/fuzz/ \
	      $(OUT)/fuzz/corpus-$$n tests/fuzz/corpus >$$log 2>&1; then \
	    tail -40 $$log; echo "fuzz: $$n FAILED (log $$log)"; exit 1; \
	  fi; tail -2 $$log; \
	done

image: deps all
	build/image.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(OUT)

-include $(shell find $(OUT) -name '*.d' 2>/dev/null)
