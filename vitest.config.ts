import { availableParallelism } from "node:os";
import { defineConfig } from "vitest/config";

// Most of the suite's time is end-to-end files waiting on child processes
// (servers, swtpm, share nodes, witnesses), not CPU. Vitest's default of
// cores − 1 workers runs them one at a time on these 2-core machines; one
// more file than cores keeps the CPU busy without starving timing-bound tests.
const workers = Math.max(2, availableParallelism() + 1);

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    pool: "forks",
    maxWorkers: workers,
    reporters: ["default", "./test/summary-reporter.ts"],
  },
});
