// Benchmark peer: the npm `ws` library (the tutorial's), on Node.js.
//
//   node ws-server.mjs echo --listen 127.0.0.1:PORT [--bufferutil] [--deflate]
//   node ws-server.mjs broadcast --listen 127.0.0.1:PORT [--bufferutil] [--deflate]
//
// --deflate turns on permessage-deflate (RFC 7692), off by default, with ws's own defaults
// (perMessageDeflate: true: context takeover both ways, zlib's level, concurrencyLimit 10),
// except the threshold: ws compresses messages of 1024 bytes and more by default; here 128,
// as `rfc6455` (its --deflate-threshold default), so that both compress the same messages.
//
// By default ws runs as a plain `npm install ws` gives it: masking in JavaScript (this
// folder also holds the optional `bufferutil` addon, pulled in by the uWS package, so it is
// switched off with WS_NO_BUFFER_UTIL unless --bufferutil is given). UTF-8 validation uses
// Node's built-in buffer.isUtf8 either way.

const MAX_PAYLOAD = 16 * 1024 * 1024;
// ws 8.23 limits a message to 16384 fragments by default (closing with 1008 past that);
// raised to the limit `rfc6455 echo` has (--max-fragments 131072).
const MAX_FRAGMENTS = 128 * 1024;
// Messages shorter than this are sent uncompressed (as `rfc6455` does, by default).
const COMPRESS_THRESHOLD = 128;

function usage() {
  process.stderr.write(
    'usage: node ws-server.mjs echo|broadcast --listen 127.0.0.1:PORT [--bufferutil] [--deflate]\n',
  );
  process.exit(2);
}

let mode = null;
let listen = null;
let bufferutil = false;
let deflate = false;
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const arg = args[i];
  if ((arg === 'echo' || arg === 'broadcast') && mode === null) mode = arg;
  else if (arg === '--listen' && i + 1 < args.length) listen = args[++i];
  else if (arg === '--bufferutil') bufferutil = true;
  else if (arg === '--deflate') deflate = true;
  else usage();
}
const match = listen && /^(.+):(\d+)$/.exec(listen);
if (!mode || !match) usage();
const host = match[1].replace(/^\[(.*)\]$/, '$1');
const port = Number(match[2]);

// Must be decided before ws is loaded: ws reads it once, at load time.
if (!bufferutil) process.env.WS_NO_BUFFER_UTIL = '1';
const { WebSocketServer, WebSocket } = await import('ws');

const wss = new WebSocketServer({
  host,
  port,
  perMessageDeflate: deflate ? { threshold: COMPRESS_THRESHOLD } : false,
  maxPayload: MAX_PAYLOAD,
  maxFragments: MAX_FRAGMENTS,
  // Only the broadcast needs the set of clients.
  clientTracking: mode === 'broadcast',
});

// Pings are answered (autoPong) and the close handshake completed by ws itself.
if (mode === 'echo') {
  wss.on('connection', (ws) => {
    ws.on('error', () => {});
    ws.on('message', (data, isBinary) => {
      ws.send(data, { binary: isBinary });
    });
  });
} else {
  // The tutorial's server: loop over wss.clients and send the message to each open one.
  // The received Buffer is sent as is (as a text frame), so the payload is never
  // re-encoded per client.
  wss.on('connection', (ws) => {
    ws.on('error', () => {});
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      for (const client of wss.clients) {
        if (client.readyState === WebSocket.OPEN) client.send(data, { binary: false });
      }
    });
  });
}

wss.on('listening', () => {
  const addr = wss.address();
  process.stderr.write(`listening on ${addr.address}:${addr.port}\n`);
});
wss.on('error', (err) => {
  process.stderr.write(`cannot listen on ${listen}: ${err.message}\n`);
  process.exit(1);
});

for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
