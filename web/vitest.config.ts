import { defineConfig } from "vitest/config";

// Unit tests of the client's state (test/*.test.ts), in Node with the few
// browser globals the store touches stubbed (test/setup.ts). The server is a
// fake one in memory (test/fake-server.ts), reached through Connect's router
// transport, so requests and answers still go through the generated code.
export default defineConfig({
  test: {
    environment: "node",
    include: ["test/**/*.test.ts"],
    setupFiles: ["./test/setup.ts"],
    testTimeout: 10_000,
  },
});
