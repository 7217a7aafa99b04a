// Two projects in one run (`npm test`): every suite on Express 5 (the `express` devDependency),
// and the suites that exercise the HTTP glue again on Express 4 (the `express4` alias), with
// `express` mapped to it for everything those files load.
const tsJest = [
  "ts-jest",
  {
    tsconfig: {
      module: "commonjs",
      moduleResolution: "node10",
      ignoreDeprecations: "6.0",
      verbatimModuleSyntax: false,
      esModuleInterop: true,
      isolatedModules: true,
    },
    diagnostics: false,
  },
];

const base = {
  testEnvironment: "node",
  roots: ["<rootDir>/test"],
  transform: { "^.+\\.ts$": tsJest },
  globalSetup: "<rootDir>/test/harness/global-setup.ts",
  globalTeardown: "<rootDir>/test/harness/global-teardown.ts",
  testTimeout: 30000,
};
const relativeJs = { "^(\\.{1,2}/.*)\\.js$": "$1" };

/** The middleware suites that also run on Express 4: the HTTP glue of each feature. */
export const EXPRESS4_SUITES = [
  "express4.mapping",
  "rate-limit.middleware",
  "cache-response.http",
  "cache-response.features",
  "require-lock",
  "session-store",
];

export default {
  maxWorkers: 2,
  testTimeout: 30000,
  projects: [
    {
      ...base,
      displayName: "express5",
      testMatch: ["**/*.test.ts"],
      testPathIgnorePatterns: ["/node_modules/", "/test/express4\\.mapping\\.test\\.ts$"],
      moduleNameMapper: relativeJs,
    },
    {
      ...base,
      displayName: "express4",
      testMatch: EXPRESS4_SUITES.map((name) => `<rootDir>/test/${name}.test.ts`),
      moduleNameMapper: { "^express$": "<rootDir>/node_modules/express4", ...relativeJs },
      // The backends do not change the HTTP glue: the Express 5 run covers all of them.
      globals: { ERK_BACKENDS: ["memory", "standalone"] },
    },
  ],
};
