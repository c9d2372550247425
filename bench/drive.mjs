// A fixed number of requests for bench/callgrind (benchmark only; never part of the tests).
//
//   node drive.mjs <url> <cookie> <n> <connections> [close]
//       n GET requests to url with `Cookie: <cookie>`, over `connections` keep-alive
//       connections, one request at a time on each. Exits non-zero unless every answer was 200
//       and the connections stayed open (a count of instructions per request needs exactly n
//       requests on the same connections). With `close`: a new connection for every request
//       (`connections` of them at a time), to count what a connection costs.
import http from 'node:http';

const [url, cookie, n, connections, mode] = process.argv.slice(2);
const close = mode === 'close';
const total = Number(n);
const streams = Number(connections);
if (!url || !cookie || !(total > 0) || !(streams > 0)) {
  console.error('usage: node drive.mjs <url> <cookie> <n> <connections>');
  process.exit(2);
}
const agent = new http.Agent({ keepAlive: !close, maxSockets: streams });
let sockets = 0;
const seen = new WeakSet();

function once() {
  return new Promise((resolve, reject) => {
    const headers = close ? { cookie, connection: 'close' } : { cookie };
    const req = http.get(url, { agent, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
      res.on('error', reject);
    });
    req.on('socket', (socket) => {
      if (!seen.has(socket)) {
        seen.add(socket);
        sockets += 1;
      }
    });
    req.on('error', reject);
  });
}

let next = 0;
const statuses = new Map();
async function stream() {
  while (next < total) {
    next += 1;
    const status = await once();
    statuses.set(status, (statuses.get(status) || 0) + 1);
  }
}
await Promise.all(Array.from({ length: streams }, stream));
agent.destroy();
const ok = statuses.get(200) || 0;
console.log(JSON.stringify({ requests: total, ok, statuses: Object.fromEntries(statuses), sockets }));
if (ok !== total || sockets !== (close ? total : streams)) process.exit(1);
