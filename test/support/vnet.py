#!/usr/bin/env python3
"""The VM's side of a TAP with offloads, for test/offload.test.ts: frames with a virtio-net
header, as a VM's kernel would hand them to its NIC, and what arrives at the VM with the
header the kernel saw.

  vnet.py send IFACE      one JSON object a line on stdin: {"hdr": [flags, gso_type,
                          hdr_len, gso_size, csum_start, csum_offset], "frame": HEX}; each
                          sent through a packet socket with PACKET_VNET_HDR, so the kernel
                          takes a TCP super-frame or an unfinished checksum as the header says
  vnet.py capture IFACE N SECONDS
                          prints "ready", then a JSON list of the first N frames that arrive
                          on IFACE (or what came within SECONDS): {"hdr": [...], "frame": HEX}

Run in the namespace of IFACE (ip netns exec). Python, because a test needs a packet
socket with PACKET_VNET_HDR, which Node.js cannot open.
"""
import json
import socket
import struct
import sys
import time

SOL_PACKET = 263
PACKET_VNET_HDR = 15
PACKET_OUTGOING = 4
ETH_P_ALL = 3
VNET = struct.Struct("<BBHHHH")


def send(iface):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
    s.bind((iface, 0))
    for line in sys.stdin:
        if not line.strip():
            continue
        item = json.loads(line)
        try:
            s.send(VNET.pack(*item["hdr"]) + bytes.fromhex(item["frame"]))
        except OSError as e:
            # The kernel refused the header itself: that frame never reaches the TAP.
            print(f"refused by the kernel: {e}", file=sys.stderr)
    s.close()


def capture(iface, count, seconds):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
    s.bind((iface, ETH_P_ALL))
    print("ready", flush=True)
    got = []
    deadline = time.monotonic() + seconds
    while len(got) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            data, addr = s.recvfrom(70000)
        except socket.timeout:
            break
        if addr[2] == PACKET_OUTGOING:
            continue
        got.append({"hdr": list(VNET.unpack(data[:VNET.size])), "frame": data[VNET.size:].hex()})
    print(json.dumps(got), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "send":
        send(sys.argv[2])
    elif sys.argv[1] == "capture":
        capture(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    else:
        sys.exit("usage: vnet.py send IFACE | capture IFACE N SECONDS")
