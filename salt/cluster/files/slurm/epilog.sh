#!/bin/sh
# Managed by Salt (saltcluster): salt/cluster/files/slurm/epilog.sh.
# Slurm's epilog, run as root by slurmd on every node of a job when the job
# ends.  Without cgroups (proctrack/linuxproc) a rank that left its parent
# outlives the job: kill, on this node, every process of the job's user that
# carries this job's id in its environment, and every process of that user
# when no other job of theirs runs here.  It never kills root's processes
# (so never itself) and always exits 0: a failing epilog drains the node.
# slurmd runs it with no search path: name where its tools are (squeue:
# slurm-client, in /usr/bin), before any of them is used.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
job=${SLURM_JOB_ID:-}
uid=${SLURM_JOB_UID:-}
user=${SLURM_JOB_USER:-}
node=${SLURMD_NODENAME:-$(hostname -s)}
case $job in '' | *[!0-9]*) exit 0 ;; esac
case $uid in '' | *[!0-9]*) exit 0 ;; esac
[ "$uid" -ne 0 ] || exit 0

# the user's processes on this node, and whether one belongs to another job
others=0
tagged=
all=
for d in /proc/[0-9]*; do
    [ "$(stat -c %u "$d" 2>/dev/null)" = "$uid" ] || continue
    pid=${d#/proc/}
    all="$all $pid"
    ids=$(tr '\0' '\n' <"$d/environ" 2>/dev/null | sed -n 's/^SLURM_JOB\(_\)\{0,1\}ID=//p' | sort -u)
    for id in $ids; do
        if [ "$id" = "$job" ]; then
            tagged="$tagged $pid"
        else
            others=1
        fi
    done
done

# slurmctld's word on the user's other jobs here (one that is starting has no
# process yet); no answer counts as "there may be one"
if [ "$others" -eq 0 ] && [ -n "$user" ]; then
    running=$(timeout 10 squeue --noheader --user="$user" --nodelist="$node" \
        --states=RUNNING,COMPLETING,CONFIGURING,SUSPENDED --format=%A 2>/dev/null) || others=1
    for id in $running; do
        [ "$id" = "$job" ] || others=1
    done
fi

if [ "$others" -eq 0 ]; then
    victims=$all
else
    victims=$tagged
fi
[ -n "$victims" ] || exit 0
# a listed pid may have ended (squeue can take seconds) and been reused by
# another user's process: each one's owner is read again just before it is
# killed, and every round kills only those still the job user's
for round in 1 2 3; do
    left=
    for pid in $victims; do
        [ "$(stat -c %u "/proc/$pid" 2>/dev/null)" = "$uid" ] || continue
        kill -KILL "$pid" 2>/dev/null
        left="$left $pid"
    done
    [ -n "$left" ] || break
    sleep 0.2
    victims=$left
done
logger -t saltcluster-epilog "job $job: killed what user $uid left on $node" 2>/dev/null
exit 0
