"""Unix socketpairs of the two message-keeping types with messages waiting: a SOCK_DGRAM pair
with three, a SOCK_SEQPACKET pair with two. Once STATE/go exists it reads them all and writes
what it got (and whether anything more was waiting) to STATE/out; until then it only waits."""
import os, socket, sys, time
state = sys.argv[1]
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
s1, s2 = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
for m in (b"one", b"two", b"three"):
    a.send(m)
s2.send(b"seq-a")
s2.send(b"seq-b")
open(os.path.join(state, "ready"), "w").write(str(os.getpid()))
while not os.path.exists(os.path.join(state, "go")):
    time.sleep(0.02)
got = [b.recv(100) for _ in range(3)] + [s1.recv(100) for _ in range(2)]
b.setblocking(False)
s1.setblocking(False)
extra = []
for s in (b, s1):
    try:
        extra.append(s.recv(100))
    except BlockingIOError:
        pass
with open(os.path.join(state, "out.tmp"), "w") as f:
    f.write(" ".join(m.decode() for m in got) + " | extra: " + " ".join(m.decode() for m in extra) + "\n")
os.replace(os.path.join(state, "out.tmp"), os.path.join(state, "out"))
time.sleep(1000)
