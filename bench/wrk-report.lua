-- wrk script of `npm run bench` (bench/loadgen.ts): the method from BENCH_WRK_METHOD (default GET),
-- and at the end one line `BENCH-WRK {json}` with the figures the benchmark records.
local method = os.getenv("BENCH_WRK_METHOD")
if method ~= nil and method ~= "" then
  wrk.method = method
end

done = function(summary, latency, requests)
  local errors = summary.errors
  io.write("BENCH-WRK ")
  io.write(string.format(
    '{"requests":%d,"durationUs":%d,"p50Us":%d,"p90Us":%d,"p99Us":%d,"maxUs":%d,'
      .. '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
    summary.requests,
    summary.duration,
    latency:percentile(50),
    latency:percentile(90),
    latency:percentile(99),
    latency.max,
    errors.connect,
    errors.read,
    errors.write,
    errors.status,
    errors.timeout
  ))
end
