"""Half-closed TCP connections in the tree. It listens on 127.0.0.1 (port written to STATE/port)
and accepts two connections from the test. The first client sends "hello" and shuts down its
sending side: that connection is in CLOSE_WAIT with "hello" unread. On the second this side
sends "bye" and shuts down its own sending side: FIN_WAIT2. Once STATE/armed exists it says
ready; once STATE/go exists it reads the first connection to its end and answers on it, reads
what came on the second, and writes what it saw to STATE/out."""
import os, socket, sys, time
state = sys.argv[1]
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(4)
open(os.path.join(state, "port.tmp"), "w").write(str(listener.getsockname()[1]))
os.replace(os.path.join(state, "port.tmp"), os.path.join(state, "port"))
first, _ = listener.accept()
second, _ = listener.accept()
second.sendall(b"bye")
second.shutdown(socket.SHUT_WR)
while not os.path.exists(os.path.join(state, "armed")):
    time.sleep(0.02)
open(os.path.join(state, "ready"), "w").write(str(os.getpid()))
while not os.path.exists(os.path.join(state, "go")):
    time.sleep(0.02)
got = b""
while True:
    chunk = first.recv(100)
    if not chunk:
        break
    got += chunk
first.sendall(b"still-open")
late = second.recv(100)
with open(os.path.join(state, "out.tmp"), "w") as f:
    f.write(got.decode() + ",eof " + late.decode() + "\n")
os.replace(os.path.join(state, "out.tmp"), os.path.join(state, "out"))
time.sleep(1000)
