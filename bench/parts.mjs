// bench/parts.mjs: the upstream of the composite rows. Answers GET /<anything>/<name> with
// {"part": name, "ok": true} after the delay PART_DELAYS gives that name ("a:5,b:10,c:20", in
// milliseconds; other names answer at once), so a composite's parts are slow by a known amount
// and the composite's latency can be set against its slowest part's.
// Usage: PORT=18107 PART_DELAYS=a:5,b:10,c:20 node bench/parts.mjs  (prints READY when listening)
import http from "node:http";

const port = Number(process.env.PORT ?? 18107);
const delays = new Map(
  (process.env.PART_DELAYS ?? "a:5,b:10,c:20")
    .split(",")
    .filter(Boolean)
    .map((entry) => {
      const [name, ms] = entry.split(":");
      return [name, Number(ms)];
    }),
);

const server = http.createServer((req, res) => {
  const name = (req.url ?? "/").split("?")[0].split("/").pop();
  const body = JSON.stringify({ part: name, ok: true });
  setTimeout(() => {
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
    res.end(body);
  }, delays.get(name) ?? 0);
});
server.keepAliveTimeout = 120_000;
server.listen(port, "127.0.0.1", () => console.log("READY"));
