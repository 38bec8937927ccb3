-- wrk script: a mix of dashboard questions, one per request in turn, with p50/p95/p99 at the end.
-- Usage: wrk -t2 -c100 -d60s --timeout 10s -s bench/mix.lua http://127.0.0.1:8080
local paths = {
  "/api/dashboard/overview?timeframe=day",
  "/api/dashboard/agents?timeframe=week&limit=20",
  "/api/dashboard/models?timeframe=day",
  "/api/dashboard/timeline?timeframe=day&granularity=hour&metric=cost",
  "/api/dashboard/executions?timeframe=hour&limit=20",
  "/api/dashboard/overview?timeframe=hour",
  "/api/dashboard/agents?timeframe=day&sortBy=errors&limit=10",
  "/api/budgets",
}
local i = 0

request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end

done = function(summary, latency, requests)
  io.write("wrk-summary ")
  for _, p in ipairs({50, 95, 99}) do
    io.write(string.format("p%d=%.2fms ", p, latency:percentile(p) / 1000))
  end
  io.write(string.format("max=%.2fms requests=%d rps=%.0f errors: connect=%d read=%d write=%d status=%d timeout=%d\n",
    latency.max / 1000, summary.requests, summary.requests / (summary.duration / 1e6),
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout))
end
