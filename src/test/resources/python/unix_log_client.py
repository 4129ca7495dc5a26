"""A datagram socket connected to a log socket outside the tree (like /dev/log): sends one line
before it says ready and one once STATE/go exists, then writes "sent" to STATE/out."""
import os, socket, sys, time
state, log = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(log)
s.send(b"before")
open(os.path.join(state, "ready"), "w").write(str(os.getpid()))
while not os.path.exists(os.path.join(state, "go")):
    time.sleep(0.02)
s.send(b"after")
open(os.path.join(state, "out"), "w").write("sent\n")
time.sleep(1000)
