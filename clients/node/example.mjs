// A Node.js client of Teu's public gRPC API, over the engine's unix socket:
//   node example.mjs [unix:///run/teu/gateway.sock]
// 1. a streamed Run: `teu run --rm busybox sh -c 'echo ...'`, output as it comes, then the exit code;
// 2. a bidirectional Exec: a line written to `cat`'s stdin comes back on its stdout.
// The protos are loaded as they are (no generated code): protos/teu/gateway/v1/gateway.proto.
import { fileURLToPath } from "node:url";
import path from "node:path";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const here = path.dirname(fileURLToPath(import.meta.url));
const target = process.argv[2] ?? "unix:///run/teu/gateway.sock";
const definition = protoLoader.loadSync("teu/gateway/v1/gateway.proto", {
  includeDirs: [path.join(here, "../../protos")],
  keepCase: true, // field names as in the protos: auto_remove, exec_id
  defaults: true,
  oneofs: true, // each oneof's name says which field is set: response.event === "output"
});
const { teu } = grpc.loadPackageDefinition(definition);
const containers = new teu.gateway.v1.ContainersService(target, grpc.credentials.createInsecure());

// Run: one request, a stream of events: created, output..., exit.
function run(cmd) {
  return new Promise((resolve, reject) => {
    const call = containers.Run({ config: { image: "busybox", cmd, auto_remove: true } });
    let exitCode = null;
    call.on("data", (r) => {
      if (r.event === "output") process.stdout.write(r.output.data);
      if (r.event === "exit") exitCode = r.exit.exit_code;
    });
    call.on("error", reject);
    call.on("end", () => resolve(exitCode));
  });
}

// Exec: the opening message, then stdin frames; back come the session id, output, the exit.
function execCat(container, input) {
  return new Promise((resolve, reject) => {
    const call = containers.Exec();
    let output = Buffer.alloc(0);
    call.on("data", (r) => {
      if (r.part === "frame" && r.frame.frame === "output") output = Buffer.concat([output, r.frame.output.data]);
      if (r.part === "frame" && r.frame.frame === "exit") resolve({ output, exitCode: r.frame.exit.exit_code });
    });
    call.on("error", reject);
    call.write({ start: { container, cmd: ["cat"], stdin: true } });
    call.write({ frame: { data: Buffer.from(input) } });
    call.write({ frame: { close_stdin: true } });
    call.end();
  });
}

function unary(method, request) {
  return new Promise((resolve, reject) => containers[method](request, (err, res) => (err ? reject(err) : resolve(res))));
}

const code = await run(["sh", "-c", "echo hello from node; exit 3"]);
console.log(`run exited with ${code}`);

const created = await unary("Create", { config: { image: "busybox", cmd: ["sleep", "300"] } });
try {
  await unary("Start", { container: created.id });
  const { output, exitCode } = await execCat(created.id, "ping over exec\n");
  process.stdout.write(output);
  console.log(`exec exited with ${exitCode}`);
} finally {
  await unary("Remove", { container: created.id, force: true });
}
containers.close();
