"""UDP sockets, IPv4 and IPv6, each with datagrams waiting from two senders, and a connected
one; and a socket with a classic BPF filter that only lets datagrams starting with "k" in. Once STATE/go exists it reads everything and writes, per datagram, the data and whether
it came from the sender that sent it, then whether the connected socket still has its peer
and can talk to it, to STATE/out; until then it only waits."""
import ctypes, os, socket, struct, sys, time
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
# ldb [8] (first payload byte, after the UDP header); jeq 'k' ? accept : drop
program = b"".join(struct.pack("HBBI", *i) for i in ((0x30, 0, 0, 8), (0x15, 0, 1, ord("k")), (0x06, 0, 0, 0xffff), (0x06, 0, 0, 0)))
code = ctypes.create_string_buffer(program)
filtered = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
filtered.bind(("127.0.0.1", 0))
filtered.setsockopt(socket.SOL_SOCKET, 26, struct.pack("HxxxxxxL", 4, ctypes.addressof(code)))
import fcntl
fcntl.fcntl(filtered.fileno(), fcntl.F_SETOWN, os.getpid())
fcntl.fcntl(filtered.fileno(), 10, 40)  # F_SETSIG: SIGRTMIN+6 instead of SIGIO
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
probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
probe.sendto(b"drop-me", filtered.getsockname())
probe.sendto(b"keep-me", filtered.getsockname())
report.append("filtered-" + filtered.recv(100).decode())
owner_ok = fcntl.fcntl(filtered.fileno(), fcntl.F_GETOWN) == os.getpid() and fcntl.fcntl(filtered.fileno(), 11) == 40
report.append("owner-ok" if owner_ok else "owner-wrong")
with open(os.path.join(state, "out.tmp"), "w") as f:
    f.write(" ".join(report) + "\n")
os.replace(os.path.join(state, "out.tmp"), os.path.join(state, "out"))
time.sleep(1000)
