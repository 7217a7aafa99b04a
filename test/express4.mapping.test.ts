/**
 * Guards the express4 project of jest.config.mjs: in its suites `express` is Express 4 (for
 * every module they load, the helpers included) and the backends are narrowed. Runs only in
 * that project.
 */
import express from "express";
import { ALL_BACKENDS, createApp } from "./helpers.js";

it("`express` is Express 4 here, also for the helpers, and the backends are memory and standalone", () => {
  // Express 4 still exports its bundled middleware `query`; Express 5 removed it.
  expect(typeof (express as unknown as { query?: unknown }).query).toBe("function");
  // Express 4's app keeps its router as `_router`; Express 5 has none of that name.
  expect((createApp() as unknown as { _router?: unknown })._router).toBeDefined();
  expect(ALL_BACKENDS).toEqual(["memory", "standalone"]);
});
