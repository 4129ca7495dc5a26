#!/bin/sh
# A container's pid 1 with volumes /vol (read-write) and /in (read-only): makes mounts of its
# own and /dev (which every container gets) read-only, then every 20 ms proves that each still works and appends "count ok [after]" (or
# "count bad: what") through fd 3, kept open on /vol/log, a file of the host. "after" once
# the host has put /vol/after there: the volume is the host's directory itself, not a copy.
set -u
fail() { echo "0 bad: $*" >> /vol/log; exec sleep 1000; }
mkdir -p /sys /data/d /srv /ro /stack || fail mkdir
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys || fail sysfs
echo hi > /data/d/f
mount --bind /data/d /srv || fail bind
mount --bind /data/d /ro && mount -o remount,bind,ro /ro || fail ro bind
mount -t tmpfs -o size=64k,mode=700 tmpfs /stack && mkdir /stack/pts || fail tmpfs
mount -t devpts -o newinstance,ptmxmode=0666 devpts /stack/pts || fail devpts
mount -o remount,bind,ro,nosuid /dev || fail ro /dev
exec 3>>/vol/log
i=0
while :; do
    i=$((i + 1))
    bad=""
    read seed < /vol/seed && [ "$seed" = seed ] || bad="$bad vol-read"
    echo "$i" > /srv/last && read last < /data/d/last && [ "$last" = "$i" ] || bad="$bad srv-bind"
    { echo x > /ro/x; } 2>/stack/err && bad="$bad ro-writable"
    read err < /stack/err; case "$err" in *"Read-only file system"*) ;; *) bad="$bad ro-not-erofs";; esac
    { echo x > /in/x; } 2>/stack/err && bad="$bad in-writable"
    read err < /stack/err; case "$err" in *"Read-only file system"*) ;; *) bad="$bad in-not-erofs";; esac
    { echo x > /dev/x; } 2>/stack/err && bad="$bad dev-writable"
    read err < /stack/err; case "$err" in *"Read-only file system"*) ;; *) bad="$bad dev-not-erofs";; esac
    echo > /dev/null || bad="$bad dev-null"
    set -- /sys/class/net/*; [ "$*" = /sys/class/net/lo ] || bad="$bad sys:$*"
    read pid rest < /proc/self/stat && [ "$pid" = 1 ] || bad="$bad proc"
    [ -c /stack/pts/ptmx ] || bad="$bad devpts"
    read hi < /srv/f && [ "$hi" = hi ] || bad="$bad srv-read"
    after=""; [ -e /vol/after ] && after=" after"
    if [ -z "$bad" ]; then echo "$i ok$after" >&3; else echo "$i bad:$bad" >&3; fi
    sleep 0.02
done
