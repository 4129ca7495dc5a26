"""UDP sockets, IPv4 and IPv6, each with datagrams waiting from two senders, and a connected
one. Once STATE/go exists it reads everything and writes, per datagram, the data and whether
it came from the sender that sent it, then whether the connected socket still has its peer
and can talk to it, to STATE/out; until then it only waits."""
import os, socket, sys, time
state = sys.argv[1]
report = []
keep = []
for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    receiver = socket.socket(family, socket.SOCK_DGRAM)
    receiver.bind((host, 0))
    senders = []
    for _ in range(2):
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.bind((host, 0))
        senders.append(s)
    for i, m in enumerate((b"first", b"second", b"third")):
        senders[i % 2].sendto(m, receiver.getsockname())
    connected = socket.socket(family, socket.SOCK_DGRAM)
    connected.connect(senders[0].getsockname())
    keep.append((receiver, senders, connected))
open(os.path.join(state, "ready"), "w").write(str(os.getpid()))
while not os.path.exists(os.path.join(state, "go")):
    time.sleep(0.02)
for receiver, senders, connected in keep:
    names = [s.getsockname()[:2] for s in senders]
    for i in range(3):
        data, source = receiver.recvfrom(100)
        report.append(data.decode() + ("@ok" if source[:2] == names[i % 2] else "@" + str(source)))
    receiver.setblocking(False)
    try:
        report.append("extra:" + receiver.recv(100).decode())
    except BlockingIOError:
        pass
    connected.send(b"ping")
    data, source = senders[0].recvfrom(100)
    report.append("connected-" + data.decode() + ("@ok" if source[:2] == connected.getsockname()[:2] else "@wrong"))
with open(os.path.join(state, "out.tmp"), "w") as f:
    f.write(" ".join(report) + "\n")
os.replace(os.path.join(state, "out.tmp"), os.path.join(state, "out"))
time.sleep(1000)
