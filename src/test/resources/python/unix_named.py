"""Named unix sockets: a stream server listening on a path and on an abstract name, each with
an accepted connection that has bytes waiting both ways, and a datagram socket bound to a path
with two datagrams waiting and an unnamed socket connected to it. Once STATE/go exists it reads
what waited, checks the names, makes new connections to both listeners and sends a datagram,
and writes what it saw to STATE/out; until then it only waits."""
import os, socket, struct, sys, time
state = sys.argv[1]
path = os.path.join(state, "stream.sock")
abstract = "\0cryo-test-%d" % os.getpid()
dgram_path = os.path.join(state, "dgram.sock")
pairs = []
for name in (path, abstract):
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(name)
    server.listen(8)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(name)
    accepted, _ = server.accept()
    client.sendall(b"to-server")
    accepted.sendall(b"to-client")
    pairs.append((name, server, client, accepted))
dgram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
dgram.bind(dgram_path)
os.chmod(dgram_path, 0o640)
sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sender.sendto(b"d1", dgram_path)
sender.sendto(b"d2", dgram_path)
sender.close()
connected = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
connected.connect(dgram_path)
open(os.path.join(state, "ready"), "w").write(str(os.getpid()))
while not os.path.exists(os.path.join(state, "go")):
    time.sleep(0.02)
report = []
for name, server, client, accepted in pairs:
    report.append(accepted.recv(100).decode() + "," + client.recv(100).decode())
    want = name.encode() if name[0] == "\0" else name  # python gives abstract names as bytes
    report.append("names-ok" if accepted.getsockname() == want and client.getpeername() == want else
                  "names-wrong:%r/%r" % (accepted.getsockname(), client.getpeername()))
    creds = [struct.unpack("3i", x.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)) for x in (accepted, client)]
    me = (os.getpid(), os.geteuid(), os.getegid())
    report.append("peercred-ok" if creds == [me, me] else "peercred-wrong:%s, not %s" % (creds, me))
    fresh = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    fresh.connect(name)
    again, _ = server.accept()
    fresh.sendall(b"new")
    report.append("new-connection-" + again.recv(100).decode())
report.append(dgram.recv(100).decode() + "," + dgram.recv(100).decode())
connected.send(b"d3")
report.append(dgram.recv(100).decode())
report.append("mode-%o" % (os.stat(dgram_path).st_mode & 0o777))
with open(os.path.join(state, "out.tmp"), "w") as f:
    f.write(" ".join(report) + "\n")
os.replace(os.path.join(state, "out.tmp"), os.path.join(state, "out"))
time.sleep(1000)
