// SPDX-License-Identifier: GPL-2.0
/*
 * soak-faultinject: provoke real kernel failures on request, so that soak can
 * prove it detects them. Write "NAME [SECONDS]" to /proc/faultinject; the
 * failure happens in the writer's context (soak's agent uses a child process,
 * never PID 1). Reading the file lists the names.
 *
 * On x86, spins use the TSC, not local_clock() or mdelay(): under QEMU TCG the
 * former freezes with interrupts off and the latter is mis-calibrated on APs.
 * Elsewhere they read the clocksource directly (the arm64 architected
 * counter), which keeps counting with interrupts off.
 *
 * Built for x86_64, i386 and arm64 (see soak/arch.py for which faults apply).
 */
#include <linux/module.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/uaccess.h>
#include <linux/slab.h>
#include <linux/sched.h>
#include <linux/rcupdate.h>
#include <linux/list.h>
#include <linux/ktime.h>
#include <linux/irqflags.h>
#include <linux/poison.h>
#include <linux/timekeeping.h>
#ifdef CONFIG_X86
#include <asm/tsc.h>
#endif

#define PREFIX "soak-faultinject: "

static void spin_tsc(unsigned int secs)
{
#ifdef CONFIG_X86
	u64 start = rdtsc_ordered();
	u64 cycles = (u64)tsc_khz * 1000 * secs;

	while (rdtsc_ordered() - start < cycles)
		cpu_relax();
#else
	u64 end = ktime_get_mono_fast_ns() + (u64)secs * NSEC_PER_SEC;

	while (ktime_get_mono_fast_ns() < end)
		cpu_relax();
#endif
}

static void do_panic(unsigned int secs)
{
	panic(PREFIX "requested panic");
}

static void do_oops(unsigned int secs)
{
	int *volatile p = NULL;

	*p = 1;
}

static void do_bug(unsigned int secs)
{
	BUG();
}

static void do_warn(unsigned int secs)
{
	WARN(1, PREFIX "requested warning\n");
}

static void do_gpf(unsigned int secs)
{
	/* 0xdead000000000100 on x86_64: a non-canonical address */
	*(volatile unsigned long *)(POISON_POINTER_DELTA + 0x100) = 1;
}

static void do_softlockup(unsigned int secs)
{
	preempt_disable();
	spin_tsc(secs);
	preempt_enable();
}

static void do_hardlockup(unsigned int secs)
{
	unsigned long flags;

	local_irq_save(flags);
	spin_tsc(secs);
	local_irq_restore(flags);
}

static void free_head(struct rcu_head *head)
{
	kfree(head);
}

/* A reader that never ends while a grace period waits for it. */
static void do_rcustall(unsigned int secs)
{
	struct rcu_head *head = kmalloc(sizeof(*head), GFP_KERNEL);
	ktime_t end = ktime_add_ms(ktime_get(), secs * 1000ULL);

	rcu_read_lock();
	if (head)
		call_rcu(head, free_head);
	while (ktime_before(ktime_get(), end))
		cond_resched();
	rcu_read_unlock();
}

static void do_hung(unsigned int secs)
{
	schedule_timeout_uninterruptible((long)secs * HZ);
}

static void do_uaf(unsigned int secs)
{
	char *volatile p = kmalloc(128, GFP_KERNEL);

	if (!p)
		return;
	kfree(p);
	memset(p, 0x5a, 128);
	kfree(kmalloc(128, GFP_KERNEL));
}

static void do_doublefree(unsigned int secs)
{
	void *volatile p = kmalloc(128, GFP_KERNEL);

	kfree(p);
	kfree(p);
}

static void do_listcorrupt(unsigned int secs)
{
	LIST_HEAD(head);
	struct list_head item;

	head.prev = (struct list_head *)LIST_POISON2; /* 0xdead000000000122 on x86_64 */
	list_add(&item, &head); /* checks head.next->prev, which is head.prev */
}

static noinline int recurse(int depth)
{
	volatile char frame[1024];

	frame[0] = (char)depth;
	if (depth > 1000000)
		return frame[0];
	return recurse(depth + 1) + frame[0];
}

static void do_stackoverflow(unsigned int secs)
{
	recurse(0);
}

struct fault {
	const char *name;
	void (*fn)(unsigned int secs);
};

static const struct fault faults[] = {
	{ "panic", do_panic },		{ "oops", do_oops },
	{ "bug", do_bug },		{ "warn", do_warn },
	{ "gpf", do_gpf },		{ "softlockup", do_softlockup },
	{ "hardlockup", do_hardlockup }, { "rcustall", do_rcustall },
	{ "hung", do_hung },		{ "uaf", do_uaf },
	{ "doublefree", do_doublefree }, { "listcorrupt", do_listcorrupt },
	{ "stackoverflow", do_stackoverflow },
};

static ssize_t fault_write(struct file *file, const char __user *ubuf, size_t len, loff_t *off)
{
	char buf[64], name[32];
	unsigned int secs = 30;
	size_t i;

	if (len >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, len))
		return -EFAULT;
	buf[len] = '\0';
	if (sscanf(buf, "%31s %u", name, &secs) < 1)
		return -EINVAL;
	for (i = 0; i < ARRAY_SIZE(faults); i++) {
		if (strcmp(name, faults[i].name) == 0) {
			pr_warn(PREFIX "triggering %s (%u s)\n", name, secs);
			faults[i].fn(secs);
			return len;
		}
	}
	return -EINVAL;
}

static int fault_show(struct seq_file *m, void *v)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(faults); i++)
		seq_printf(m, "%s\n", faults[i].name);
	return 0;
}

static int fault_open(struct inode *inode, struct file *file)
{
	return single_open(file, fault_show, NULL);
}

static const struct proc_ops fault_ops = {
	.proc_open = fault_open,
	.proc_read = seq_read,
	.proc_lseek = seq_lseek,
	.proc_release = single_release,
	.proc_write = fault_write,
};

static struct proc_dir_entry *entry;

static int __init faultinject_init(void)
{
	entry = proc_create("faultinject", 0600, NULL, &fault_ops);
	return entry ? 0 : -ENOMEM;
}

static void __exit faultinject_exit(void)
{
	proc_remove(entry);
}

module_init(faultinject_init);
module_exit(faultinject_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("soak: provoke real kernel failures on request");
