// Recommend, then report a reward for the first arm shown, with @grpc/grpc-js.
//
//   node recommend.js [host:port] [experiment_id]
//
// Prints one JSON line: the ranked arms, the event id and the Feedback outcome.
// BANDIT_TOKEN, if set, is sent as the bearer token.
"use strict";

const path = require("path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const PROTO_DIR = process.env.BANDIT_PROTO_DIR || path.join(__dirname, "..", "..", "..", "proto");

const definition = protoLoader.loadSync(path.join(PROTO_DIR, "bandit", "v1", "bandit.proto"), {
  includeDirs: [PROTO_DIR],
  keepCase: true, // field names as in the .proto (experiment_id), not camelCase
  longs: String, // uint64 model_version as a string: no precision lost
  enums: String, // "APPLIED", "FIRST_SLOT"
  defaults: true,
});
const { BanditService } = grpc.loadPackageDefinition(definition).bandit.v1;

function call(client, method, request) {
  const metadata = new grpc.Metadata();
  if (process.env.BANDIT_TOKEN) metadata.set("authorization", `Bearer ${process.env.BANDIT_TOKEN}`);
  const deadline = new Date(Date.now() + 5000);
  return new Promise((resolve, reject) => {
    client[method](request, metadata, { deadline }, (err, reply) => (err ? reject(err) : resolve(reply)));
  });
}

async function main() {
  const target = process.argv[2] || "127.0.0.1:50051";
  const experimentId = process.argv[3] || "destinations";
  const client = new BanditService(target, grpc.credentials.createInsecure());
  try {
    const answer = await call(client, "Recommend", {
      experiment_id: experimentId,
      context: { categorical: ["country=NL", "device=mobile"], numeric: { nights: 3 } },
      k: 2,
    });
    const first = answer.arms[0].arm_id;
    const feedback = await call(client, "Feedback", {
      event_id: answer.event_id,
      arm_id: first,
      reward: 1,
    });
    console.log(JSON.stringify({
      event_id: answer.event_id,
      arms: answer.arms.map((a) => a.arm_id),
      propensity_kind: answer.propensity_kind,
      model_version: answer.model_version,
      outcome: feedback.outcome,
    }));
  } catch (err) {
    // grpc status code and the server's message, which names the bad value
    console.error(`${grpc.status[err.code]}: ${err.details}`);
    process.exitCode = 1;
  } finally {
    client.close();
  }
}

main();
