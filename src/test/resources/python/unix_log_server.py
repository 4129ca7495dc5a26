"""A log socket: binds a datagram socket to PATH and appends every datagram as a line to OUT."""
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
while True:
    data = s.recv(1000)
    with open(sys.argv[2], "a") as f:
        f.write(data.decode() + "\n")
