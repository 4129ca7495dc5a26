"""Descriptors in flight: a file (read up to offset 5), the read end of a pipe holding bytes, and
an eventfd are sent over a unix datagram and a seqpacket socketpair (SCM_RIGHTS) and closed by
the sender, so they live only in the queues. Once STATE/go exists it receives them
and writes what each holds to STATE/out; until then it only waits."""
import os, socket, sys, time
state = sys.argv[1]
path = os.path.join(state, "data.txt")
with open(path, "w") as f:
    f.write("0123456789")
report = []
pairs = []
for kind in (socket.SOCK_DGRAM, socket.SOCK_SEQPACKET):
    a, b = socket.socketpair(socket.AF_UNIX, kind)
    fd = os.open(path, os.O_RDONLY)
    os.lseek(fd, 5, os.SEEK_SET)
    r, w = os.pipe()
    os.write(w, b"in-pipe")
    os.close(w)
    efd = os.eventfd(7)
    a.sendmsg([b"plain-first"])
    socket.send_fds(a, [b"with-fds"], [fd, r, efd])
    a.sendmsg([b"plain-last"])
    for x in (fd, r, efd):
        os.close(x)
    pairs.append((a, b))
open(os.path.join(state, "ready"), "w").write(str(os.getpid()))
while not os.path.exists(os.path.join(state, "go")):
    time.sleep(0.02)
for a, b in pairs:
    first = b.recv(100)
    msg, fds, _, _ = socket.recv_fds(b, 100, 10)
    last = b.recv(100)
    got = [first.decode(), msg.decode(), last.decode(), str(len(fds))]
    if len(fds) == 3:
        got.append(os.read(fds[0], 100).decode())
        got.append(os.read(fds[1], 100).decode())
        got.append(str(int.from_bytes(os.read(fds[2], 8), "little")))
    report.append(",".join(got))
with open(os.path.join(state, "out.tmp"), "w") as f:
    f.write(" ".join(report) + "\n")
os.replace(os.path.join(state, "out.tmp"), os.path.join(state, "out"))
time.sleep(1000)
