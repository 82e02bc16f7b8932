set -e
cleanup() { ip netns del vecA 2>/dev/null || true; ip netns del vecB 2>/dev/null || true; }
trap cleanup EXIT
cleanup
ip netns add vecA; ip netns add vecB
ip link add va type veth peer name vb
ip link set va netns vecA; ip link set vb netns vecB
ip -n vecA link set va address 02:00:00:00:00:0a up; ip -n vecB link set vb address 02:00:00:00:00:0b up
ip netns exec vecA ethtool -K va tx off >/dev/null; ip netns exec vecB ethtool -K vb tx off >/dev/null
ip -n vecA addr add 10.200.0.1/24 dev va; ip -n vecB addr add 10.200.0.2/24 dev vb
ip -n vecA link set lo up; ip -n vecB link set lo up
ip -n vecA addr add fd00::1/64 dev va nodad; ip -n vecB addr add fd00::2/64 dev vb nodad
ip -n vecA link add vx0 type vxlan id 4242 local 10.200.0.1 remote 10.200.0.2 dstport 4789
ip -n vecB link add vx0 type vxlan id 4242 local 10.200.0.2 remote 10.200.0.1 dstport 4789
ip -n vecA link set vx0 address 02:00:00:00:01:0a up; ip -n vecB link set vx0 address 02:00:00:00:01:0b up
ip -n vecA addr add 10.201.0.1/24 dev vx0; ip -n vecB addr add 10.201.0.2/24 dev vx0
ip netns exec vecB tcpdump -i vb -w /tmp/vec.pcap -U -s 0 2>/dev/null & TD=$!
sleep 1
ip netns exec vecA ping -c 1 -W 1 10.200.0.2 >/dev/null
ip netns exec vecA ping -c 1 -W 1 fd00::2 >/dev/null || true
ip netns exec vecA ping -c 1 -W 1 10.201.0.2 >/dev/null || true
ip netns exec vecB sh -c 'timeout 2 nc -l -p 5001 >/dev/null 2>&1 &' || true
sleep 0.3
ip netns exec vecA sh -c 'echo hi | timeout 1 nc -w1 10.200.0.2 5001' >/dev/null 2>&1 || true
ip netns exec vecA sh -c 'echo hello | timeout 1 nc -u -w1 10.200.0.2 5353' >/dev/null 2>&1 || true
sleep 1; kill $TD; wait $TD 2>/dev/null || true

# Write captured.ts from the first frame that matches each display filter.
cd "$(dirname "$0")"
pick() { tshark -r /tmp/vec.pcap -Y "$1" -T fields -e frame.number 2>/dev/null | head -1; }
python3 - /tmp/vec.pcap > captured.ts \
  icmpv4EchoRequest="$(pick 'icmp.type==8 && !vxlan')" \
  icmpv6NeighborSolicitation="$(pick 'icmpv6.type==135 && icmpv6.nd.ns.target_address==fd00::2')" \
  icmpv6NeighborAdvertisement="$(pick 'icmpv6.type==136')" \
  icmpv6EchoRequest="$(pick 'icmpv6.type==128')" \
  vxlanArpRequest="$(pick 'vxlan && arp.opcode==1')" \
  vxlanIcmpEchoRequest="$(pick 'vxlan && icmp.type==8')" \
  tcpSyn="$(pick 'tcp.flags==0x002')" \
  udpDatagram="$(pick 'udp.dstport==5353')" <<'PY'
import struct, sys
data = open(sys.argv[1], 'rb').read()
frames, off = [], 24
while off < len(data):
    incl = struct.unpack('<IIII', data[off:off + 16])[2]
    frames.append(data[off + 16:off + 16 + incl])
    off += 16 + incl
print('/**')
print(' * Frames captured with tcpdump from real Linux network stacks (veth pair between two')
print(' * namespaces, transmit checksum offload off; the VXLAN ones from a kernel VXLAN device,')
print(' * VNI 4242, dstport 4789). Regenerate with capture-vectors.sh beside this file (root).')
print(' */')
for arg in sys.argv[2:]:
    name, number = arg.split('=')
    h = frames[int(number) - 1].hex()
    print(f'\nexport const {name} = `')
    for i in range(0, len(h), 64):
        print('  ' + h[i:i + 64])
    print('`;')
PY
