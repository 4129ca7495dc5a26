#!/bin/sh
# A container's pid 1: starts a python3 writer, then appends "count pid hostname" to
# /out/shell.log every 20 ms, holding no fd on it. Its children are sleeps and the writer.
python3 /app/writer.py &
i=0
while :; do
    i=$((i + 1))
    echo "$i $$ $(hostname)" >> /out/shell.log
    sleep 0.02
done
