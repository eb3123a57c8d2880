// Drives agy_trio's AG-UI endpoint with the real @ag-ui/client HttpAgent.
//
//   node ag_ui_driver.mjs URL THREAD_ID [TOKEN]
//
// Reads one JSON command per line on stdin and answers one JSON line per run
// on stdout:
//   {"prompt": "..."}              adds a user message, then runs the agent
//   {"resume": [ResumeEntry...]}   runs the agent answering its interrupts
// The answer: {"events": [...], "pendingInterrupts": [...], "newMessages":
// [...], "runErrors": [...], "failure": null | "message"}.
import { HttpAgent } from "@ag-ui/client";
import { createInterface } from "node:readline";
import { randomUUID } from "node:crypto";

const [url, threadId, token] = process.argv.slice(2);
const agent = new HttpAgent({
  url,
  threadId,
  headers: token ? { Authorization: `Bearer ${token}` } : {},
});

async function runOnce(command) {
  const events = [];
  const runErrors = [];
  const parameters = command.resume ? { resume: command.resume } : {};
  if (command.prompt !== undefined) {
    agent.addMessage({ id: randomUUID(), role: "user", content: command.prompt });
  }
  let failure = null;
  let newMessages = [];
  try {
    const result = await agent.runAgent(parameters, {
      onEvent({ event }) {
        events.push(event);
      },
      onRunErrorEvent({ event }) {
        runErrors.push(event);
      },
    });
    newMessages = result.newMessages;
  } catch (error) {
    failure = String(error && error.message ? error.message : error);
  }
  return { events, runErrors, newMessages, failure, pendingInterrupts: agent.pendingInterrupts };
}

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const answer = await runOnce(JSON.parse(line));
  process.stdout.write(JSON.stringify(answer) + "\n");
}
