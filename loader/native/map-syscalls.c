/*
 * The loader's map hot path in C: bpf(2) lookup, update and delete that take no arguments, for
 * loader/map-syscall.ts. Through koffi every argument of a call costs 13-16 ns to convert and a
 * call with none ~54 ns in all, against ~800 ns for the syscall itself; four arguments alone
 * would miss the target of 1.2x C. So JavaScript writes the address of a bpf_attr it prepared
 * once into `slot` and calls one of these, which return 0 or -errno.
 *
 * Built with the system C compiler into bpfctl's cache on first use; when it cannot be built or
 * loaded, map-syscall.ts calls libc's syscall() instead (slower, same results).
 */
#include <errno.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The attr's address, as a double: JavaScript writes it through a Float64Array over this
 * variable, and a double holds any user-space address exactly. */
static double slot;

double *bpfctl_map_slot(void)
{
	return &slot;
}

static long bpf_call(int cmd)
{
	/* The attrs JavaScript prepares hold map_fd, key, value and flags: the first 32 bytes. */
	long r = syscall(__NR_bpf, cmd, (union bpf_attr *)(uintptr_t)slot, 32);

	return r == 0 ? 0 : -errno;
}

long bpfctl_map_lookup(void)
{
	return bpf_call(BPF_MAP_LOOKUP_ELEM);
}

long bpfctl_map_update(void)
{
	return bpf_call(BPF_MAP_UPDATE_ELEM);
}

long bpfctl_map_delete(void)
{
	return bpf_call(BPF_MAP_DELETE_ELEM);
}
