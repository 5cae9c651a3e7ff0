#!/bin/sh
# soak guest /init and agent (busybox sh). The wire protocol is documented in
# soak/vm/agent.py; keep the two in step and bump PROTO on incompatible changes.
#
# As PID 1 it mounts what the guest needs, loads the modules listed in
# /lib/soak/modules.order, applies soak_* kernel parameters, then hands PID 1 to
# busybox init, which respawns "/init agent" and reaps orphans for days of
# commands. The agent talks to the host on its own channel, named by the image
# (/etc/soak/image channel=, from soak/arch.py): "tty:ttyS1" (x86, an ISA UART,
# raw) or "virtio:NAME" (arm virt, a virtio-serial port found by its name in
# /sys/class/virtio-ports). The kernel console stays separate and only gets
# one "soak-agent: ready" line per agent start.
#
# Kernel parameters (unknown k=v without dots reach init's environment):
#   soak_hb=SECS        heartbeat interval, fractional allowed (default 1)
#   soak_hung=SECS      kernel.hung_task_timeout_secs
#   soak_sysctl=a.b=v,c.d=w   any sysctls, comma separated
#   soak_dev=blk,net,...  virtio devices the VM has: load their drivers (/lib/soak/devices/KIND)
#   soak_net=user | pair:MINE:PEER   configure eth0 (user: QEMU's slirp; pair: a link to another
#                       VM, whose traffic this guest echoes on port 7)

PROTO=1
RUN=/run/soak
EXTRA=/lib/soak/extra
MAXOUT=65536

say() { echo "soak-agent: $*" >/dev/console; }
note() { echo "$*" >>$RUN/boot.log; say "$*"; }

boot() {
	/bin/busybox mount -t proc proc /proc
	/bin/busybox --install -s
	mount -t sysfs sysfs /sys
	mount -t devtmpfs devtmpfs /dev
	mkdir -p /dev/pts /dev/shm
	mount -t devpts devpts /dev/pts
	mount -t tmpfs -o mode=1777 tmpfs /dev/shm
	mount -t tmpfs -o mode=1777 tmpfs /tmp
	mount -t tmpfs -o mode=755 tmpfs /run
	mkdir -p $RUN/jobs
	: >$RUN/boot.log
	if [ -f /lib/soak/modules.order ]; then
		while read -r m; do
			insmod /lib/soak/modules/$m.ko || note "insmod $m failed"
		done </lib/soak/modules.order
	fi
	devices
	network
	case "$soak_hung" in
	'' | *[!0-9]*) ;;
	*) echo "$soak_hung" >/proc/sys/kernel/hung_task_timeout_secs || note "soak_hung=$soak_hung failed" ;;
	esac
	old_ifs=$IFS
	IFS=,
	for kv in $soak_sysctl; do
		key=${kv%%=*}
		f=/proc/sys/$(echo "$key" | tr . /)
		echo "${kv#*=}" >"$f" || note "sysctl $kv failed"
	done
	IFS=$old_ifs
	hb=1
	case "$soak_hb" in
	'' | *[!0-9.]* | *.*.* | .) ;;
	*) hb=$soak_hb ;;
	esac
	echo "hb=$hb" >$RUN/params
	echo "::respawn:/init agent" >/etc/inittab
	[ -f /etc/inittab.extra ] && cat /etc/inittab.extra >>/etc/inittab
	exec /bin/busybox init
}

# Load the drivers of the VM's virtio devices (soak_dev), each module once, in order.
devices() {
	old_ifs=$IFS
	IFS=,
	for d in $soak_dev; do
		[ -f "/lib/soak/devices/$d" ] || { note "no drivers for device $d in this image" && continue; }
		while read -r m; do
			[ -d "/sys/module/$m" ] || insmod "/lib/soak/modules/$m.ko" || note "insmod $m failed"
		done <"/lib/soak/devices/$d"
	done
	IFS=$old_ifs
}

# Bring eth0 up with soak's addresses (soak/devices/plan.py); a pair's guest echoes its peer's traffic.
network() {
	[ -n "$soak_net" ] || return 0
	n=0
	until [ -e /sys/class/net/eth0 ] || [ $n -ge 50 ]; do sleep 0.1 && n=$((n + 1)); done
	ip link set lo up
	ip link set eth0 up || note "eth0 did not come up"
	case "$soak_net" in
	user)
		ip addr add 10.0.2.15/24 dev eth0
		ip route add default via 10.0.2.2
		;;
	pair:*)
		mine=${soak_net#pair:}
		ip addr add "${mine%%:*}/24" dev eth0
		echo "::respawn:/bin/busybox nc -ll -p 7 -e /bin/busybox cat" >>/etc/inittab.extra
		;;
	*) note "soak_net=$soak_net: unknown network" ;;
	esac
}

send() { echo "$*" >&3; }

hello() {
	read -r rel </proc/sys/kernel/osrelease
	read -r bootid </proc/sys/kernel/random/boot_id
	read -r k mt rest </proc/meminfo
	send "HELLO $PROTO release=$rel nproc=$(nproc) memtotal=$mt boot=$bootid image=$key features=$features hb=$hb"
}

heartbeat() {
	seq=0
	while kill -0 "$1" 2>/dev/null; do
		seq=$((seq + 1))
		read -r up idle </proc/uptime
		read -r l1 l5 l15 rest </proc/loadavg
		while read -r k v rest; do
			case $k in
			MemFree:) mf=$v ;;
			MemAvailable:) ma=$v && break ;;
			esac
		done </proc/meminfo
		send "HB $seq up=$up load1=$l1 memfree=$mf memavail=$ma"
		sleep "$hb"
	done
}

# Forward lines from stdin as "OUT id line".
forward() {
	while IFS= read -r l || [ -n "$l" ]; do
		send "OUT $1 $l"
		l=
	done
}

# Send a finished command's output (the first MAXOUT bytes) and exit code.
finish() { # id rc outfile
	head -c $MAXOUT "$3" | forward "$1"
	more=
	[ "$(wc -c <"$3")" -gt $MAXOUT ] && more=" truncated=1"
	rm -f "$3"
	send "EXIT $1 $2$more"
}

do_run() { # id "secs cmd"
	secs=${2%% *}
	case "$secs" in '' | *[!0-9]*) send "ERR $1 usage: run SECS CMD" && return ;; esac
	out=$(mktemp $RUN/run.XXXXXX)
	timeout -s KILL "$secs" sh -c "${2#* }" </dev/null >"$out" 2>&1 3>&-
	finish "$1" $? "$out"
}

# Provoke a real failure (soak/image/faults.py). The trigger runs in a child
# process, so an oops kills that child and this handler still reports EXIT.
do_fault() { # id "name [secs]"
	name=${2%% *}
	secs=${2#"$name"}
	secs=${secs# }
	case "$name$secs" in '' | *[!a-z0-9-]*) send "ERR $1 usage: fault NAME [SECS]" && return ;; esac
	case "$secs" in *[!0-9]*) send "ERR $1 usage: fault NAME [SECS]" && return ;; esac
	case "$name" in
	sysrq-crash)
		do_sysrq "$1" c
		return
		;;
	oom) # one allocation just under MemTotal: overcommit allows it, touching it all cannot succeed
		read -r k mt rest </proc/meminfo
		cmd="dd if=/dev/zero of=/dev/null bs=$((mt * 95 / 100))k count=1"
		;;
	*)
		[ -e /proc/faultinject ] || insmod $EXTRA/faultinject.ko 2>/dev/null ||
			{ send "ERR $1 this image has no faultinject module" && return; }
		grep -qx "$name" /proc/faultinject || { send "ERR $1 unknown fault $name" && return; }
		cmd="echo '$name ${secs:-30}' >/proc/faultinject"
		;;
	esac
	send "ACK $1"
	sleep 0.2 # let the ACK leave the UART before the kernel may stop
	out=$(mktemp $RUN/fault.XXXXXX)
	sh -c "$cmd" </dev/null >"$out" 2>&1 3>&-
	finish "$1" $? "$out"
}

do_start() { # id cmd
	dir=$RUN/jobs/$1
	mkdir "$dir" 2>/dev/null || { send "ERR $1 job $1 exists" && return; }
	send "ACK $1"
	# setsid makes the job a process group that stop can signal as a whole. It
	# never forks here: without job control our children are no group leaders.
	{
		setsid sh -c 'echo $$ >"$1/pid"; exec sh -c "$2"' job "$dir" "${2}" </dev/null 2>&1 3>&-
		echo $? >"$dir/rc"
	} | forward "$1"
	read -r rc <"$dir/rc"
	rm -rf "$dir"
	send "EXIT $1 $rc"
}

do_stop() { # id job
	dir=$RUN/jobs/$2
	n=0
	while [ -d "$dir" ] && [ ! -s "$dir/pid" ] && [ $n -lt 20 ]; do sleep 0.1 && n=$((n + 1)); done
	read -r pg <"$dir/pid" 2>/dev/null || { send "ERR $1 no job $2" && return; }
	kill -s TERM -"$pg"
	send "ACK $1"
	sleep 5
	kill -s KILL -"$pg" 2>/dev/null
}

do_sysrq() { # id char
	case "$2" in
	[0-9a-zA-Z]) ;;
	*) send "ERR $1 usage: sysrq CHAR" && return ;;
	esac
	send "ACK $1"
	sleep 0.2 # let the ACK leave the UART before a crash stops everything
	echo "$2" >/proc/sysrq-trigger
}

do_poweroff() {
	send "ACK $1"
	sleep 0.2
	poweroff
}

dispatch() { # id verb args
	case "$2" in
	run) do_run "$1" "$3" ;;
	start) do_start "$1" "$3" ;;
	stop) do_stop "$1" "$3" ;;
	sysrq) do_sysrq "$1" "$3" ;;
	poweroff) do_poweroff "$1" ;;
	fault) do_fault "$1" "$3" ;;
	hello) hello && send "ACK $1" ;;
	*) send "ERR $1 unknown command ${2:-(none)}" ;;
	esac
}

# The agent's device for channel $1; empty while a virtio port has not appeared.
channel_dev() {
	case "$1" in
	tty:*) echo "/dev/${1#tty:}" ;;
	virtio:*)
		for p in /sys/class/virtio-ports/*; do
			[ "$(cat "$p/name" 2>/dev/null)" = "${1#virtio:}" ] && echo "/dev/${p##*/}" && return
		done
		;;
	esac
}

agent() {
	. $RUN/params
	key=unknown features= channel=tty:ttyS1
	[ -f /etc/soak/image ] && . /etc/soak/image
	cd /tmp || exit 1
	echo -1000 >/proc/self/oom_score_adj
	n=0
	until dev=$(channel_dev "$channel") && [ -c "$dev" ] && (exec 3<>"$dev") 2>/dev/null; do
		# a virtio port probes asynchronously; it is busy while a dying agent's child holds it
		n=$((n + 1))
		[ $n = 1 ] && say "waiting for the agent channel $channel"
		sleep 0.2
	done
	case "$channel" in tty:*) stty -F "$dev" raw -echo -icrnl -opost 115200 || say "stty $dev failed" ;; esac
	exec 3<>"$dev" </dev/null
	# UEFI writes to every UART (OVMF: ttyS1 too): end whatever line it left before HELLO
	[ -d /sys/firmware/efi ] && send ""
	hello
	while read -r line; do send "LOG $line"; done <$RUN/boot.log
	say "ready proto=$PROTO image=$key"
	heartbeat $$ &
	while :; do
		while read -r id verb args <&3; do
			case "$id" in '' | *[!0-9]*) continue ;; esac
			# Run each command as an orphan of busybox init, which reaps it; the
			# reader goes straight back to the channel and has no job table to grow.
			(
				echo 0 >/proc/self/oom_score_adj
				dispatch "$id" "$verb" "$args" &
			)
		done
		sleep 1 # the channel failed: try again rather than exit
	done
}

case "$1" in
agent) agent ;;
*) [ $$ = 1 ] && boot ;;
esac
