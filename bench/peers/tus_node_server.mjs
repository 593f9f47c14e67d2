// @tus/server with @tus/file-store on 127.0.0.1:<port>, storing uploads in <directory>/<id>.
// Usage: node tus_node_server.mjs <port> <directory>
import http from "node:http";
import { FileStore } from "@tus/file-store";
import { Server } from "@tus/server";

const [port, directory] = process.argv.slice(2);
if (!port || !directory) {
  console.error("usage: node tus_node_server.mjs <port> <directory>");
  process.exit(2);
}
const tus = new Server({ path: "/files", datastore: new FileStore({ directory }) });
const server = http.createServer((req, res) => tus.handle(req, res));
server.listen(Number(port), "127.0.0.1");
const stop = () => server.close(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
