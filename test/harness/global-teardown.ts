/** Jest global teardown: stops the servers that global setup started. */
export default async function globalTeardown(): Promise<void> {
  const owned = globalThis.__erkServers;
  await Promise.all([owned?.standalone?.stop(), owned?.cluster?.stop()]);
}
