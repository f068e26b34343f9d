# vTPM for an edge OS. `make run` and `make test` do all set-up (as root on
# Debian 12): they install missing packages through build/deps.sh first.
#
# Boundaries the compiler enforces. Every folder is one archive:
#   libraries  pubsub/ pkg/common/ pkg/tpmkit/ pkg/keyfmt/  -> out/*/lib/libNAME.a
#   daemons    each daemon's folder without its main.c      -> out/*/lib/libNAME.a
# and every object is compiled with the include path of its own folder plus
# the folders of the libraries it declares (NAME_USES), nothing else: a
# daemon that includes another daemon's header does not build. A binary
# links its own archive, its libraries' archives and their system
# libraries (NAME_LDLIBS), so each carries only the code it uses.
#
# To add a library: add it to LIBRARIES with NAME_DIR, NAME_USES (the
# libraries below it) and NAME_LDLIBS. To add a daemon: add it to DAEMONS
# with NAME_DIR, NAME_BIN and NAME_USES (its libraries, all of them), and
# NAME_LDLIBS / NAME_CFLAGS for system libraries only it links.
# Test programs (tests/unit/X_test.c, tests/tools/X.c, bench/X.c,
# tests/fuzz/X_fuzz.c) declare what they use as X_USES below.

OUT      ?= out
CC       ?= cc
CLANG    ?= clang
ARGS     ?=
FUZZ_SECONDS ?= 60

WARN     := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral
CPPFLAGS := -D_GNU_SOURCE
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 $(WARN) -fstack-protector-strong -D_FORTIFY_SOURCE=2
SANFLAGS := -std=c11 $(WARN) -O1 -g -fno-omit-frame-pointer \
            -fsanitize=address,undefined -fno-sanitize-recover=undefined
TSS_LIBS := -ltss2-esys -ltss2-tctildr -ltss2-rc -ltss2-mu

# ---- libraries, lowest first ----
LIBRARIES     := common pubsub tpmkit keyfmt
common_DIR    := pkg/common
common_USES   :=
common_LDLIBS := -lpthread
pubsub_DIR    := pubsub
pubsub_USES   := common
pubsub_LDLIBS := -lnng -lcjson
tpmkit_DIR    := pkg/tpmkit
tpmkit_USES   := common
tpmkit_LDLIBS := $(TSS_LIBS) -lcrypto
keyfmt_DIR    := pkg/keyfmt
keyfmt_USES   := pubsub tpmkit common
keyfmt_LDLIBS := -lcjson -lcrypto

# ---- daemons: folder, binary, the libraries each uses ----
DAEMONS          := launcher guardian keybroker domainmgr vtpmctl verify evecompat caps
launcher_DIR     := pkg/vtpm/launcher
launcher_BIN     := vtpm-launcher
launcher_USES    := pubsub tpmkit common
# only the launcher sandboxes swtpm (capabilities through libcap-ng)
launcher_LDLIBS  := -lcap-ng
guardian_DIR     := pkg/vtpm/guardian
guardian_BIN     := vtpm-guardian
guardian_USES    := pubsub tpmkit common
keybroker_DIR    := pkg/sealer
keybroker_BIN    := vtpm-keybroker
keybroker_USES   := keyfmt pubsub tpmkit common
domainmgr_DIR    := pkg/domainmgr
domainmgr_BIN    := domainmgr
domainmgr_USES   := pubsub common
vtpmctl_DIR      := pkg/vtpm/ctl
vtpmctl_BIN      := vtpmctl
vtpmctl_USES     := keyfmt pubsub tpmkit common
verify_DIR       := pkg/verify
verify_BIN       := vtpm-verify
verify_USES      := keyfmt pubsub tpmkit common
# the registry's backends: SQLite and PostgreSQL (libpq), in vtpm-verify
# only; NAME_CFLAGS: a unit's extra compile flags (system include paths)
verify_LDLIBS    := -lpq -lsqlite3
verify_CFLAGS    := $(shell pkg-config --cflags libpq 2>/dev/null || echo -I/usr/include/postgresql)
evecompat_DIR    := pkg/evecompat
evecompat_BIN    := vtpm-eve-api
evecompat_USES   := pubsub common
evecompat_LDLIBS := -lmicrohttpd
# not a daemon: the image's init starts daemons through it (capabilities)
caps_DIR         := pkg/vtpm/caps
caps_BIN         := vtpm-caps
caps_USES        :=
caps_LDLIBS      := -lcap-ng

# ---- test programs: what each uses (daemons' internals allowed) ----
msg_test_USES        := pubsub common
pubsub_test_USES     := pubsub common
common_test_USES     := common
config_test_USES     := domainmgr pubsub common
domainmgr_test_USES  := domainmgr pubsub common
guardian_test_USES   := guardian pubsub tpmkit common
launcher_test_USES   := launcher pubsub tpmkit common
sealer_test_USES     := keybroker keyfmt pubsub tpmkit common
update_test_USES     := keybroker vtpmctl keyfmt pubsub tpmkit common
attest_test_USES     := keybroker verify keyfmt pubsub tpmkit common
verify_test_USES     := verify keybroker keyfmt pubsub tpmkit common
vtpmctl_test_USES    := vtpmctl keyfmt pubsub tpmkit common
domain_pub_USES      := pubsub common
escrow_peek_USES     := keyfmt pubsub tpmkit common
soft_device_USES     := keybroker verify keyfmt pubsub tpmkit common
guardian_call_USES   := pubsub common
key_call_USES        := keybroker keyfmt pubsub tpmkit common
key_scan_USES        := common
nv_workload_USES     := tpmkit common
pubsub_peer_USES     := pubsub common
swtpm_talk_USES      := tpmkit common
tcti_probe_USES      := tpmkit common
launch_USES          := pubsub tpmkit common
eve_api_USES         := pubsub common
pubsub_bench_USES    := pubsub common
msg_fuzz_USES        := pubsub common
evecompat_test_USES  := evecompat pubsub common
eve_fuzz_USES        := evecompat pubsub common
files_fuzz_USES      := guardian keybroker keyfmt pubsub tpmkit common

# ---- derived ----
# A daemon whose folder does not exist yet simply builds nothing.
present  := $(foreach d,$(DAEMONS),$(if $(wildcard $($(d)_DIR)/main.c),$(d)))
UNITS_ALL := $(LIBRARIES) $(present)
$(foreach d,$(DAEMONS),$(eval $(d)_OWN := $(d) $($(d)_USES)))
$(foreach l,$(LIBRARIES),$(eval $(l)_OWN := $(l) $($(l)_USES)))
unit_src  = $(filter-out $($(1)_DIR)/main.c,$(wildcard $($(1)_DIR)/*.c))
# -I for a list of units; system libraries for a list of units
inc_of    = $(foreach u,$(1),-I$($(u)_DIR))
ldlibs_of = $(sort $(foreach u,$(1),$($(u)_LDLIBS)))
lib_of    = $(OUT)/$(2)/lib/lib$(1).a
libs_of   = $(foreach u,$(1),$(call lib_of,$(u),$(2)))
# a program's archives in a group: order among them does not matter
link_of   = -Wl,--start-group $(call libs_of,$(1),$(2)) -Wl,--end-group \
            $(call ldlibs_of,$(1))

UNIT_SRC   := $(wildcard tests/unit/*_test.c)
TOOL_SRC   := $(wildcard tests/tools/*.c)
BENCH_SRC  := $(wildcard bench/*.c)
FUZZ_SRC   := $(wildcard tests/fuzz/*_fuzz.c)
prog_name   = $(basename $(notdir $(1)))
# a test program without a _USES line gets the libraries only
uses_of     = $(or $($(call prog_name,$(1))_USES),$(LIBRARIES))

BINS    := $(foreach d,$(present),$(OUT)/bin/$($(d)_BIN))
TOOLS   := $(patsubst tests/tools/%.c,$(OUT)/bin/%,$(TOOL_SRC))
BENCHES := $(patsubst bench/%.c,$(OUT)/bench-bin/%,$(BENCH_SRC))
UNITS   := $(patsubst tests/unit/%.c,$(OUT)/san/unit/%,$(UNIT_SRC))
FUZZERS := $(patsubst tests/fuzz/%.c,$(OUT)/fuzz/%,$(FUZZ_SRC))

# keep objects that pattern rules chain through (no rebuilds next time)
.SECONDARY:

.PHONY: all deps run test test-unit test-integration test-e2e bench fuzz \
        image image-eve soak clean format format-check help
all: $(BINS) $(TOOLS)

help:
	@echo "make [all|deps|run|test|test-unit|test-integration|test-e2e|bench|fuzz|image|soak|clean|format|format-check]"

deps:
	@build/deps.sh

# Objects: release (out/obj) and sanitizer (out/san) trees, each with the
# include path of the unit its folder belongs to.
define unit_rules
$(OUT)/obj/$($(1)_DIR)/%.o: $($(1)_DIR)/%.c
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CPPFLAGS) $(call inc_of,$($(1)_OWN)) $$($(1)_CFLAGS) $$(CFLAGS) -MMD -MP -c $$< -o $$@
$(OUT)/san/$($(1)_DIR)/%.o: $($(1)_DIR)/%.c
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CPPFLAGS) $(call inc_of,$($(1)_OWN)) $$($(1)_CFLAGS) $$(SANFLAGS) -MMD -MP -c $$< -o $$@
$(call lib_of,$(1),obj): $(patsubst %.c,$(OUT)/obj/%.o,$(call unit_src,$(1)))
	@mkdir -p $$(dir $$@)
	rm -f $$@ && ar rcs $$@ $$^
$(call lib_of,$(1),san): $(patsubst %.c,$(OUT)/san/%.o,$(call unit_src,$(1)))
	@mkdir -p $$(dir $$@)
	rm -f $$@ && ar rcs $$@ $$^
endef
$(foreach u,$(UNITS_ALL),$(eval $(call unit_rules,$(u))))

define daemon_rule
$(OUT)/bin/$($(1)_BIN): $(OUT)/obj/$($(1)_DIR)/main.o $(call libs_of,$($(1)_OWN),obj)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) -o $$@ $$< $(call link_of,$($(1)_OWN),obj)
endef
$(foreach d,$(present),$(eval $(call daemon_rule,$(d))))

# Test programs, benches and fuzzers: one rule each, from their _USES.
define prog_rule
$(OUT)/$(2)/$(3)/$(call prog_name,$(1)).o: $(1)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CPPFLAGS) $(call inc_of,$(call uses_of,$(1))) $$($(4)) -MMD -MP -c $$< -o $$@
$(5): $(OUT)/$(2)/$(3)/$(call prog_name,$(1)).o $(call libs_of,$(call uses_of,$(1)),$(2))
	@mkdir -p $$(dir $$@)
	$$(CC) $$($(4)) -o $$@ $$< $(call link_of,$(call uses_of,$(1)),$(2)) $(6)
endef
$(foreach s,$(TOOL_SRC),$(eval $(call prog_rule,$(s),obj,tests/tools,CFLAGS,$(OUT)/bin/$(call prog_name,$(s)),)))
$(foreach s,$(BENCH_SRC),$(eval $(call prog_rule,$(s),obj,bench,CFLAGS,$(OUT)/bench-bin/$(call prog_name,$(s)),)))
$(foreach s,$(UNIT_SRC),$(eval $(call prog_rule,$(s),san,tests/unit,SANFLAGS,$(OUT)/san/unit/$(call prog_name,$(s)),-lcmocka)))

# Fuzzers build from sources with clang's libFuzzer instrumentation.
FUZZFLAGS := -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined
define fuzz_rule
$(OUT)/fuzz/$(call prog_name,$(1)): $(1) $(foreach u,$(call uses_of,$(1)),$(call unit_src,$(u)))
	@mkdir -p $$(dir $$@)
	$$(CLANG) $$(CPPFLAGS) $(call inc_of,$(call uses_of,$(1))) $$(FUZZFLAGS) -o $$@ $$^ \
	  $(call ldlibs_of,$(call uses_of,$(1)))
endef
$(foreach s,$(FUZZ_SRC),$(eval $(call fuzz_rule,$(s))))

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
	      $(OUT)/fuzz/corpus-$$n $$(test -d tests/fuzz/corpus-$$n && \
	        echo tests/fuzz/corpus-$$n || echo tests/fuzz/corpus) \
	      >$$log 2>&1; then \
	    tail -40 $$log; echo "fuzz: $$n FAILED (log $$log)"; exit 1; \
	  fi; tail -2 $$log; \
	done

image: deps all
	build/image.sh

# the EVE-OS drop-in profile (docs/integration.md)
image-eve: deps all
	PROFILE=eve build/image.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(OUT)

-include $(shell find $(OUT) -name '*.d' 2>/dev/null)
