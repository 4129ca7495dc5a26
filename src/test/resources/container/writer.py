# Appends "count pid pid1-command" to /out/python.log every 20 ms through one file it keeps
# open, so a restore must reopen it inside the container's own root at its offset.
import os
import time

with open("/proc/1/cmdline", "rb") as f:
    pid1 = f.read().split(b"\0")[1].decode()  # the script pid 1 runs: sh's first argument
log = open("/out/python.log", "a", buffering=1)
n = 0
while True:
    n += 1
    log.write(f"{n} {os.getpid()} {pid1}\n")
    time.sleep(0.02)
