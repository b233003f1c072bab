#!/usr/bin/env node
// `beckon` command line. Until the servers exist, `beckon up` says what it will run.
const [command = "help"] = process.argv.slice(2);
if (command === "up") {
  console.log("beckon up: will run the homeserver on http://127.0.0.1:8008 (server name localhost:8008),");
  console.log("the identity server on http://127.0.0.1:8090 and a development mail catcher");
  console.log("(SMTP 127.0.0.1:2525, web http://127.0.0.1:8025). The servers are not built yet.");
} else {
  console.log("usage: beckon up");
}
