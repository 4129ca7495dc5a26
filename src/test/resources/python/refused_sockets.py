"""Sockets Cryo refuses to save, held by a program that still uses them afterwards. MODE
"stream-fds": a descriptor in flight in a unix stream socket; "pending": a TCP listener with a
connection not yet accepted; "unix-pending": a unix listener with a connection not yet accepted
from a process outside the tree; "close-wait": a TCP connection whose peer closed its side. Once
STATE/go exists it uses them and writes what it saw to STATE/out."""
import os, socket, sys, time
state, mode = sys.argv[1], sys.argv[2]
keep = []
if mode == "stream-fds":
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    r, w = os.pipe()
    os.write(w, b"through-the-pipe")
    socket.send_fds(a, [b"x"], [r])
    os.close(r)
elif mode == "pending":
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    client = socket.create_connection(listener.getsockname())
elif mode == "unix-pending":
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind("\0cryo-refused-%d" % os.getpid())
    listener.listen(4)
    if os.fork() == 0:
        if os.fork() == 0:  # the grandchild, reparented away from the tree, connects
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.connect(listener.getsockname())
            listener.close()
            client.sendall(b"from-outside")
            time.sleep(30)
        os._exit(0)
    os.wait()
    time.sleep(0.3)  # the grandchild has connected
elif mode == "close-wait":
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    peer = socket.create_connection(listener.getsockname())
    conn, _ = listener.accept()
    peer.close()
open(os.path.join(state, "ready"), "w").write(str(os.getpid()))
while not os.path.exists(os.path.join(state, "go")):
    time.sleep(0.02)
if mode == "stream-fds":
    msg, fds, _, _ = socket.recv_fds(b, 10, 4)
    out = msg.decode() + "," + os.read(fds[0], 100).decode()
elif mode == "pending":
    conn, _ = listener.accept()
    client.sendall(b"accepted-later")
    out = conn.recv(100).decode()
elif mode == "unix-pending":
    conn, _ = listener.accept()
    out = conn.recv(100).decode()
else:
    out = "eof" if conn.recv(100) == b"" else "data?"
with open(os.path.join(state, "out.tmp"), "w") as f:
    f.write(out + "\n")
os.replace(os.path.join(state, "out.tmp"), os.path.join(state, "out"))
time.sleep(1000)
