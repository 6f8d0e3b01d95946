#!/bin/bash
# Runs inside the guest as PID 1 (root), after tests/vm/init; /etc/vm.env says what to run.
# Writes every log into /vm/out (a writable 9p share: tests/vm/run reads it on the host) and
# prints "@vm ..." progress lines on the console. Powers the guest off at the end.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LC_ALL=C.UTF-8 TMPDIR=/tmp
set -u
# One brace group, read before it runs (the file is on a share the host may edit meanwhile).
{
. /etc/vm.env
O=/vm/out
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 shm /dev/shm
mount -t tmpfs -o mode=0755 run /run
ulimit -n 65536
now() { date +%s%N; }
echo "@vm kernel $(uname -r)"
uname -r > $O/kernel
phase() { echo "$1 $(( ($(now) - $2) / 1000000 ))" >> $O/phases; }   # NAME START: milliseconds
echo "boot $(awk '{printf "%d", $1 * 1000}' /proc/uptime)" >> $O/phases

# The programs the guest runs from the repository share (test binaries, the CLIs, the bench)
# come, stripped of debug info, on an erofs disk of their own (tests/vm/run makes it) and are
# bound over their paths: started from 9p, even a cached binary took 1.7 s to print its
# version under TCG, copying them from 9p into RAM took 114 s, and the tests start theirs
# hundreds of times.
if [ -n "${VM_BIN_DEV:-}" ]; then
  mkdir -p /vm/bin
  if mount -t erofs -o ro $VM_BIN_DEV /vm/bin; then
    for f in $VM_TESTS $VM_TARGET/release/sysext $VM_TARGET/release/sysext-bench $VM_TARGET/debug/sysext; do
      c=/vm/bin/$(echo "$f" | tr / _)
      [ -f "$c" ] && [ -f "$f" ] && mount --bind "$c" "$f" || echo "@vm cannot bind $c over $f"
    done
  else
    echo "@vm cannot mount the binaries' disk $VM_BIN_DEV"
  fi
fi

for g in $VM_GROUPS; do
  s=$(now)
  echo "@vm start $g"
  case $g in
    tests)
      mkdir -p $O/tests
      # The soak's 1,000 cycles take 450 s under TCG; the host run keeps the full count.
      export SYSEXT_SOAK_CYCLES=$VM_SOAK_CYCLES SYSEXT_MODEL_CASES=$VM_MODEL_CASES
      for b in $VM_TESTS; do
        n=$(basename $b); n=${n%-*}
        # As cargo runs them: cwd is the package's directory.
        # Extra arguments (tests/vm/runner: cargo's, e.g. name filters), one per NUL-ended entry.
        extra=()
        [ ! -f $O/args ] || mapfile -d '' -t extra < $O/args
        (cd $VM_REPO/tests && timeout $VM_TEST_TIMEOUT $b --test-threads=$VM_TEST_THREADS --show-output "${extra[@]}") > $O/tests/$n.log 2>&1
        echo $? > $O/tests/$n.rc
        echo "@vm done tests/$n rc=$(cat $O/tests/$n.rc)"
      done ;;
    oracle)
      # As tests/conformance/run does for systemd 257: the CLI at compatibility level 257,
      # the exclusions without a level or with @257 ("GLOB [@LEVEL[,LEVEL]] reason"). --fast: each
      # side a fork of compare, mounts by syscall, one bash per side (processes are dear here).
      excl=()
      while read -r pat levels _; do
        case "$pat" in ''|'#'*) continue ;; esac
        case "$levels" in @*) case ",${levels#@}," in *",257,"*) ;; *) continue ;; esac ;; esac
        excl+=(-x "$pat")
      done < $VM_REPO/tests/conformance/excluded
      (cd /tmp && TUT=$VM_TARGET/release/sysext LIBSYSEXT_COMPAT=257 CONFORMANCE_OUT=$O/oracle \
        timeout $VM_ORACLE_TIMEOUT $VM_HARNESS/compare -j $VM_SMP --fast "${excl[@]}") > $O/oracle.log 2>&1
      echo $? > $O/oracle.rc
      echo "@vm done oracle rc=$(cat $O/oracle.rc)" ;;
    verity)
      # Verity and signed images against systemd-sysext 257 with real dm-verity (tests/vm/verity.sh;
      # opt-in: SYSEXT_VM_GROUPS=verity, about 10-15 min per guest under TCG).
      (cd /tmp && timeout ${VM_VERITY_TIMEOUT:-1800} bash $VM_REPO/tests/vm/verity.sh) > $O/verity.log 2>&1
      echo $? > $O/verity.rc
      echo "@vm done verity rc=$(cat $O/verity.rc)" ;;
    script)
      # SYSEXT_VM_SCRIPT: a script of the caller's (tests/vm/run copied it here).
      (cd /tmp && timeout $VM_TEST_TIMEOUT bash $O/script.sh) > $O/script.log 2>&1
      echo $? > $O/script.rc
      echo "@vm done script rc=$(cat $O/script.rc)" ;;
    bench)
      (cd /tmp && timeout $VM_BENCH_TIMEOUT $VM_TARGET/release/sysext-bench --reps $VM_BENCH_REPS \
        --only $VM_BENCH_ONLY --out $O/bench) > $O/bench.log 2>&1
      echo $? > $O/bench.rc
      echo "@vm done bench rc=$(cat $O/bench.rc)" ;;
  esac
  phase $g $s
done
dmesg > $O/dmesg.log 2>&1
echo "@vm end"
sync
echo o > /proc/sysrq-trigger
sleep 10
}
