#!/usr/bin/env bash
# Stops the daemons start-slurm.sh started (the pids it wrote to DIR/pids), newest first, and waits
# until they are gone.   tests/cluster/stop-slurm.sh DIR
D=${1:?usage: stop-slurm.sh DIR}
[ -f "$D/pids" ] || exit 0
pids=$(tac "$D/pids")
for pid in $pids; do kill "$pid" 2>/dev/null; done
for _ in $(seq 40); do
  alive=0
  for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
  [ $alive = 0 ] && exit 0
  sleep 0.5
done
for pid in $pids; do kill -9 "$pid" 2>/dev/null; done
exit 0
