// Node preload that keeps test peers on the loopback interface.
//
//   NODE_OPTIONS="--require /path/to/tests/peers/loopback.cjs" PORT=3001 node server-everything/dist/index.js streamableHttp
//
// Some peers (e.g. @modelcontextprotocol/server-everything, via express `app.listen(PORT)`)
// call `net.Server.prototype.listen` without a host, which binds every interface. This
// preload patches `listen` so that a TCP listen with no host binds 127.0.0.1 instead
// (override with SWITCHBOARD_LISTEN_HOST, e.g. "::1"). Calls that already name a host,
// listen on a Unix socket / pipe path, or adopt an existing handle/fd are left untouched.
'use strict';

const net = require('net');

const HOST = process.env.SWITCHBOARD_LISTEN_HOST || '127.0.0.1';
const originalListen = net.Server.prototype.listen;

function isPortLike(v) {
  return typeof v === 'number' || (typeof v === 'string' && /^\d+$/.test(v));
}

net.Server.prototype.listen = function patchedListen(...args) {
  const first = args[0];
  if (args.length === 0 || typeof first === 'function' || first === undefined || first === null) {
    // listen() / listen(cb): random port on all interfaces -> random port on HOST.
    args.splice(0, first === undefined || first === null ? 1 : 0, { port: 0, host: HOST });
  } else if (isPortLike(first)) {
    // listen(port[, host][, backlog][, cb]): insert HOST unless a host string follows.
    if (typeof args[1] !== 'string') args.splice(1, 0, HOST);
  } else if (typeof first === 'object' && !first._handle && first.fd === undefined &&
             first.path === undefined && !first.host) {
    // listen({ port, ... }[, cb]) without host.
    args[0] = { ...first, host: HOST };
  }
  // Anything else (Unix socket path, handle, fd, explicit host) is passed through.
  return originalListen.apply(this, args);
};
