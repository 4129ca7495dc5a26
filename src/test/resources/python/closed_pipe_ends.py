# A pipe whose write end is closed everywhere, with bytes still in it (a shell reading a command
# substitution whose child just exited). Says "ready" in STATE/ready; once STATE/go exists,
# checks that the reader gets the bytes then end of file, and writes PASS or FAIL: reason into
# STATE/result.
import os
import sys
import time

state = sys.argv[1]
r, w = os.pipe()
os.write(w, b"left in the pipe")
os.close(w)
with open(os.path.join(state, "ready"), "w") as f:
    f.write(str(os.getpid()))
while not os.path.exists(os.path.join(state, "go")):
    time.sleep(0.01)
result = "PASS"
data = os.read(r, 100)
if data != b"left in the pipe":
    result = f"FAIL: read {data!r}"
elif os.read(r, 100) != b"":
    result = "FAIL: no end of file after the bytes"
with open(os.path.join(state, "result.tmp"), "w") as f:
    f.write(result)
os.rename(os.path.join(state, "result.tmp"), os.path.join(state, "result"))
time.sleep(100)
