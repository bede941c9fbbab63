// SPDX-License-Identifier: GPL-2.0
/*
 * tbprof: a QEMU TCG plugin that counts guest instructions per translated
 * block, between markers the guest places. Used by `make profile`.
 *
 * The guest marks a window with `xchg %bx,%bx` (66 87 db), a no-op on real
 * hardware. The first marker zeroes the counters, the second writes them to
 * OUT.N (N = 1, 2, ...), one line per block that ran: "vaddr insns execs".
 * Inside a window, `xchg %cx,%cx` (66 87 c9) pauses counting and
 * `xchg %dx,%dx` (66 87 d2) resumes it, for untimed steps between calls.
 * Blocks that exit early are counted as if they ran to the end.
 *
 * QEMU ships no plugin header in Debian, so the handful of plugin API calls
 * used here are declared below, as of API version 7 (QEMU 11).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
typedef struct {
	const char *target_name;
	struct {
		int min;
		int cur;
	} version;
	bool system_emulation;
} qemu_info_t;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS };
typedef void (*tb_trans_cb)(struct qemu_plugin_tb *tb, void *udata);
typedef void (*vcpu_udata_cb)(unsigned int vcpu, void *udata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, tb_trans_cb cb, void *udata);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, vcpu_udata_cb cb,
					  enum qemu_plugin_cb_flags flags, void *udata);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn, vcpu_udata_cb cb,
					    enum qemu_plugin_cb_flags flags, void *udata);
size_t qemu_plugin_tb_n_insns(struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
size_t qemu_plugin_insn_data(const struct qemu_plugin_insn *insn, void *dest, size_t len);

__attribute__((visibility("default"))) int qemu_plugin_version = 7;

/* One translation of one block. A block translated again gets a new one. */
struct block {
	uint64_t vaddr;
	uint64_t insns;
	uint64_t execs;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct block **blocks;
static size_t nblocks, capacity;
static unsigned int markers;
static bool paused;
static const char *out_prefix = "tbprof.out";

static void block_ran(unsigned int vcpu, void *udata)
{
	struct block *b = udata;

	(void)vcpu;
	if (!__atomic_load_n(&paused, __ATOMIC_RELAXED))
		__atomic_fetch_add(&b->execs, 1, __ATOMIC_RELAXED);
}

static void dump(unsigned int window)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s.%u", out_prefix, window);
	f = fopen(path, "w");
	if (!f)
		return;
	for (size_t i = 0; i < nblocks; i++)
		if (blocks[i]->execs)
			fprintf(f, "%" PRIx64 " %" PRIu64 " %" PRIu64 "\n", blocks[i]->vaddr,
				blocks[i]->insns, blocks[i]->execs);
	fclose(f);
}

enum marker_kind { WINDOW, PAUSE, RESUME };

static void marker_ran(unsigned int vcpu, void *udata)
{
	enum marker_kind kind = (enum marker_kind)(uintptr_t)udata;

	(void)vcpu;
	if (kind != WINDOW) {
		__atomic_store_n(&paused, kind == PAUSE, __ATOMIC_RELAXED);
		return;
	}
	pthread_mutex_lock(&lock);
	paused = false;
	markers++;
	if (markers % 2)
		for (size_t i = 0; i < nblocks; i++)
			blocks[i]->execs = 0;
	else
		dump(markers / 2);
	pthread_mutex_unlock(&lock);
}

static void translated(struct qemu_plugin_tb *tb, void *udata)
{
	static const unsigned char markers_bytes[3][3] = {
		[WINDOW] = { 0x66, 0x87, 0xdb },
		[PAUSE] = { 0x66, 0x87, 0xc9 },
		[RESUME] = { 0x66, 0x87, 0xd2 },
	};
	size_t n = qemu_plugin_tb_n_insns(tb);
	struct block *b = calloc(1, sizeof(*b));

	(void)udata;
	if (!b)
		return;
	b->vaddr = qemu_plugin_tb_vaddr(tb);
	b->insns = n;
	pthread_mutex_lock(&lock);
	if (nblocks == capacity) {
		size_t cap = capacity ? capacity * 2 : 65536;
		struct block **grown = realloc(blocks, cap * sizeof(*grown));

		if (!grown) {
			pthread_mutex_unlock(&lock);
			free(b);
			return;
		}
		blocks = grown;
		capacity = cap;
	}
	blocks[nblocks++] = b;
	pthread_mutex_unlock(&lock);
	qemu_plugin_register_vcpu_tb_exec_cb(tb, block_ran, QEMU_PLUGIN_CB_NO_REGS, b);
	for (size_t i = 0; i < n; i++) {
		struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
		unsigned char bytes[3];

		if (qemu_plugin_insn_data(insn, bytes, sizeof(bytes)) != sizeof(bytes))
			continue;
		for (uintptr_t kind = WINDOW; kind <= RESUME; kind++)
			if (!memcmp(bytes, markers_bytes[kind], sizeof(bytes)))
				qemu_plugin_register_vcpu_insn_exec_cb(
					insn, marker_ran, QEMU_PLUGIN_CB_NO_REGS, (void *)kind);
	}
}

__attribute__((visibility("default"))) int
qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
	(void)info;
	for (int i = 0; i < argc; i++)
		if (!strncmp(argv[i], "out=", 4))
			out_prefix = argv[i] + 4;
	qemu_plugin_register_vcpu_tb_trans_cb(id, translated, NULL);
	return 0;
}
