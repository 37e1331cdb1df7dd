// Benchmark peer: uWebSockets.js (npm @trufflesuite/uws-js-unofficial, which ships the
// prebuilt native addon), on Node.js.
//
//   node uws-server.mjs echo --listen 127.0.0.1:PORT [--max-backpressure BYTES]
//                      [--compression shared|dedicated]
//   node uws-server.mjs broadcast --listen 127.0.0.1:PORT [--max-backpressure BYTES]
//                      [--compression shared|dedicated]
//   ... [--tls-cert PEM --tls-key PEM]   uWS.SSLApp: wss:// (the TLS benchmark's peer)
//
// --compression turns on permessage-deflate (RFC 7692), off by default: `shared` is
// uWS.SHARED_COMPRESSOR (one compressor for every socket, reset per message: the server does
// not take context over), `dedicated` is uWS.DEDICATED_COMPRESSOR (a 256 KiB sliding window
// per socket, context taken over between messages). uWS has no threshold of its own: each send
// or publish says whether to compress, and this script asks for it for messages of
// COMPRESS_THRESHOLD bytes and more, the ones `rfc6455` compresses (its --deflate-threshold
// default), so that both compress the same messages.
//
// The package falls back to a slow pure-JavaScript imitation when its native addon does not
// load; this script loads the addon itself and refuses to run without it.

import { createRequire } from 'node:module';
import path from 'node:path';

const MAX_PAYLOAD = 16 * 1024 * 1024;
// Per-socket limit on bytes queued for a client. uWS skips (drops) sends and publishes to
// a socket above it; with closeOnBackpressureLimit such a socket is closed instead, so no
// message is ever lost silently. 64 MiB: four 16 MiB echoes, or a long broadcast burst.
const DEFAULT_MAX_BACKPRESSURE = 64 * 1024 * 1024;
const TOPIC = 'all';
// Messages shorter than this are sent uncompressed (as `rfc6455` does, by default).
const COMPRESS_THRESHOLD = 128;

function usage() {
  process.stderr.write(
    'usage: node uws-server.mjs echo|broadcast --listen 127.0.0.1:PORT ' +
      '[--max-backpressure BYTES] [--compression shared|dedicated]\n',
  );
  process.exit(2);
}

let mode = null;
let listen = null;
let maxBackpressure = DEFAULT_MAX_BACKPRESSURE;
let compression = 'disabled';
let tlsCert = null;
let tlsKey = null;
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const arg = args[i];
  if ((arg === 'echo' || arg === 'broadcast') && mode === null) mode = arg;
  else if (arg === '--listen' && i + 1 < args.length) listen = args[++i];
  else if (arg === '--max-backpressure' && i + 1 < args.length) {
    maxBackpressure = Number(args[++i]);
    if (!Number.isInteger(maxBackpressure) || maxBackpressure <= 0) usage();
  } else if (arg === '--compression' && i + 1 < args.length) {
    compression = args[++i];
    if (!['disabled', 'shared', 'dedicated'].includes(compression)) usage();
  } else if (arg === '--tls-cert' && i + 1 < args.length) tlsCert = args[++i];
  else if (arg === '--tls-key' && i + 1 < args.length) tlsKey = args[++i];
  else usage();
}
if ((tlsCert === null) !== (tlsKey === null)) usage();
const match = listen && /^(.+):(\d+)$/.exec(listen);
if (!mode || !match) usage();
const host = match[1].replace(/^\[(.*)\]$/, '$1');
const port = Number(match[2]);

const require = createRequire(import.meta.url);
const pkgDir = path.dirname(require.resolve('@trufflesuite/uws-js-unofficial/package.json'));
const addon = path.join(
  pkgDir,
  'binaries',
  `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`,
);
let uWS;
try {
  uWS = require(addon);
} catch (err) {
  process.stderr.write(`the native uWS addon does not load (${addon}): ${err.message}\n`);
  process.exit(1);
}

const app = tlsCert === null
  ? uWS.App()
  : uWS.SSLApp({ cert_file_name: tlsCert, key_file_name: tlsKey });
const compress = compression !== 'disabled';
const behavior = {
  compression: {
    disabled: uWS.DISABLED,
    shared: uWS.SHARED_COMPRESSOR,
    dedicated: uWS.DEDICATED_COMPRESSOR,
  }[compression],
  maxPayloadLength: MAX_PAYLOAD,
  maxBackpressure,
  closeOnBackpressureLimit: true,
  // No idle timeout: a client that only listens is not cut off (the other peers never do).
  idleTimeout: 0,
  sendPingsAutomatically: false,
};
// Pings are answered and the close handshake completed by uWS itself.
if (mode === 'echo') {
  behavior.message = (ws, message, isBinary) => {
    ws.send(message, isBinary, compress && message.byteLength >= COMPRESS_THRESHOLD);
  };
} else {
  behavior.open = (ws) => {
    ws.subscribe(TOPIC);
  };
  // app.publish (not ws.publish) so that the sender gets its own message too; uWS frames
  // the message once for all subscribers.
  behavior.message = (ws, message, isBinary) => {
    if (!isBinary) {
      app.publish(TOPIC, message, false, compress && message.byteLength >= COMPRESS_THRESHOLD);
    }
  };
}
app.ws('/*', behavior);
app.any('/*', (res) => {
  res.writeStatus('426 Upgrade Required').end();
});

let listenSocket = null;
app.listen(host, port, (token) => {
  if (!token) {
    process.stderr.write(`cannot listen on ${listen}\n`);
    process.exit(1);
  }
  listenSocket = token;
  process.stderr.write(`listening on ${host}:${uWS.us_socket_local_port(token)}\n`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (listenSocket) uWS.us_listen_socket_close(listenSocket);
    process.exit(0);
  });
}
