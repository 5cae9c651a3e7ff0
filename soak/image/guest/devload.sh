#!/bin/sh
# soak's verified device loads (busybox sh), started by the host as agent jobs.
# Every byte written is read back and compared, so data corrupted anywhere
# between the guest and the image file (or the peer) is found. The line
# protocol is parsed by soak/load/devload.py; keep the two in step.
#
#   devload.sh disk SERIAL CHUNKS IDLE    write CHUNKS x 256 KiB with O_DIRECT, read back, compare,
#                                         discard
#   devload.sh net HOST PORT KIB IDLE     send KIB KiB to an echo, compare what comes back
#   devload.sh rng BYTES IDLE             read the hardware RNG (virtio-rng)
#
# Lines (one per pass; centiseconds from /proc/uptime):
#   SOAKIO disk SERIAL pass=N bytes=B write_cs=W read_cs=R ops=O
#   SOAKIO-ERROR disk SERIAL op=write|read chunk=I pass=N MESSAGE
#   SOAKIO-MISMATCH disk SERIAL pass=N chunk=I offset=O header="WHAT THE CHUNK SAYS" CMP-OUTPUT
#   SOAKNET net pass=N bytes=B cs=C rx_dropped=D tx_dropped=D
#   SOAKNET-DROP net pass=N got=G want=W MESSAGE
#   SOAKNET-MISMATCH net pass=N got=G CMP-OUTPUT
#   SOAKRNG rng bytes=B cs=C
#   SOAKRNG-FAIL rng MESSAGE

CHUNK=262144
T=$(mktemp -d /tmp/devload.XXXXXX) || exit 1
trap 'rm -rf "$T"' EXIT
trap 'exit 0' TERM INT

cs() { # centiseconds of uptime
	read -r up rest </proc/uptime
	echo "${up%.*}${up#*.}"
}

first() { head -n 1 "$1" 2>/dev/null | tr -d '\000-\037\177-\377' | head -c 200; }

disk() { # serial chunks idle
	serial=$1 n=$2 idle=$3 dev= w=0
	while [ -z "$dev" ]; do
		for b in /sys/block/vd*; do
			[ "$(cat "$b/serial" 2>/dev/null)" = "$serial" ] && dev=/dev/${b##*/}
		done
		[ -n "$dev" ] && break
		w=$((w + 1))
		[ $w = 60 ] && echo "SOAKIO-ERROR disk $serial op=open chunk=0 pass=0 no disk with serial $serial"
		sleep 0.5
	done
	pass=0
	while :; do
		pass=$((pass + 1))
		dd if=/dev/urandom of="$T/pat" bs=$CHUNK count=1 2>/dev/null
		tail -c +65 "$T/pat" >"$T/body"
		t0=$(cs) i=0 failed=
		while [ $i -lt "$n" ]; do
			{ printf '%-63s\n' "soak $serial pass $pass chunk $i"; cat "$T/body"; } >"$T/exp"
			if ! dd if="$T/exp" of="$dev" bs=$CHUNK seek=$i count=1 oflag=direct conv=notrunc 2>"$T/err"; then
				echo "SOAKIO-ERROR disk $serial op=write chunk=$i pass=$pass $(first "$T/err")"
				failed=1
				break
			fi
			i=$((i + 1))
		done
		t1=$(cs)
		if [ -n "$failed" ]; then # unwritten chunks hold old data: nothing to verify this pass
			sleep 1
			continue
		fi
		i=0 bad=0
		while [ $i -lt "$n" ]; do
			if ! dd if="$dev" of="$T/got" bs=$CHUNK skip=$i count=1 iflag=direct 2>"$T/err"; then
				echo "SOAKIO-ERROR disk $serial op=read chunk=$i pass=$pass $(first "$T/err")"
				failed=1
				break
			fi
			{ printf '%-63s\n' "soak $serial pass $pass chunk $i"; cat "$T/body"; } >"$T/exp"
			if ! cmp "$T/exp" "$T/got" >"$T/cmp" 2>&1; then
				bad=$((bad + 1))
				[ $bad -le 3 ] && echo "SOAKIO-MISMATCH disk $serial pass=$pass chunk=$i offset=$((i * CHUNK))" \
					"header=\"$(head -c 63 "$T/got" | tr -d '\000-\037\177-\377')\" $(first "$T/cmp")"
			fi
			i=$((i + 1))
		done
		t2=$(cs)
		# give the region back: the next pass allocates afresh (a full host disk bites then)
		blkdiscard -o 0 -l $((n * CHUNK)) "$dev" 2>/dev/null
		[ -z "$failed" ] && echo "SOAKIO disk $serial pass=$pass bytes=$((n * CHUNK)) write_cs=$((t1 - t0))" \
			"read_cs=$((t2 - t1)) ops=$((2 * n)) mismatches=$bad"
		sleep "$idle"
	done
}

nicstat() { cat "/sys/class/net/eth0/statistics/$1" 2>/dev/null || echo 0; }

net() { # host port kib idle
	host=$1 port=$2 kib=$3 idle=$4 want=$(($3 * 1024)) pass=0
	while :; do
		pass=$((pass + 1))
		dd if=/dev/urandom of="$T/out" bs=1024 count="$kib" 2>/dev/null
		t0=$(cs)
		timeout 60 nc -w 5 "$host" "$port" <"$T/out" >"$T/in" 2>"$T/err"
		t1=$(cs)
		got=$(wc -c <"$T/in")
		if ! head -c "$got" "$T/out" | cmp - "$T/in" >"$T/cmp" 2>&1; then
			echo "SOAKNET-MISMATCH net pass=$pass got=$got $(first "$T/cmp")"
		elif [ "$got" != "$want" ]; then
			echo "SOAKNET-DROP net pass=$pass got=$got want=$want $(first "$T/err")"
		else
			echo "SOAKNET net pass=$pass bytes=$((2 * want)) cs=$((t1 - t0)) rx_dropped=$(nicstat rx_dropped)" \
				"tx_dropped=$(nicstat tx_dropped)"
		fi
		sleep "$idle"
	done
}

rng() { # bytes idle
	while :; do
		current=$(cat /sys/class/misc/hw_random/rng_current 2>/dev/null)
		t0=$(cs)
		timeout 20 dd if=/dev/hwrng of="$T/r" bs="$1" count=1 iflag=fullblock 2>"$T/err"
		t1=$(cs)
		got=$(wc -c <"$T/r" 2>/dev/null || echo 0)
		distinct=$(od -An -v -tx1 "$T/r" | tr -s ' ' '\n' | sort -u | wc -l)
		case "$current" in
		virtio_rng*) ;;
		*) echo "SOAKRNG-FAIL rng the hardware RNG is ${current:-none}, not virtio" ;;
		esac
		if [ "$got" != "$1" ]; then
			echo "SOAKRNG-FAIL rng read $got of $1 bytes from /dev/hwrng in 20s $(first "$T/err")"
		elif [ "$distinct" -lt 64 ]; then
			echo "SOAKRNG-FAIL rng $1 bytes from /dev/hwrng hold only $distinct distinct values"
		else
			echo "SOAKRNG rng bytes=$got cs=$((t1 - t0))"
		fi
		sleep "$2"
	done
}

case "$1" in
disk) disk "$2" "$3" "$4" ;;
net) net "$2" "$3" "$4" "$5" ;;
rng) rng "$2" "$3" ;;
*) echo "usage: devload.sh disk|net|rng ..." && exit 2 ;;
esac
