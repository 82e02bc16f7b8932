/**
 * Sends UDP datagrams (hex payloads) to HOST:PORT from an ephemeral port, then exits.
 * Run inside a lab host's namespace to play a misbehaving host on the underlay:
 *   node send-datagrams.js 10.99.0.1 4789 0a0b0c 08000000...
 */
import { createSocket } from 'node:dgram';

const [host, port, ...payloads] = process.argv.slice(2);
const sock = createSocket('udp4');
let left = payloads.length;
for (const hex of payloads) {
  sock.send(Buffer.from(hex, 'hex'), Number(port), host, (err) => {
    if (err) {
      console.error(err.message);
      process.exitCode = 1;
    }
    if (--left === 0) sock.close();
  });
}
