-- wrk script for bench/service_bench.py: each thread submits its own pre-signed documents
-- (one per challenge its workers were given), each at most once, for wrk's fixed duration.
-- Lines of <thread>.requests: <worker token> TAB <JSON body>. The Python side prepares more
-- documents than the run can use; a thread that runs out stops (and done() says so), so no
-- document is ever replayed and every timed request is a real submission.

local threads = {}
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

function init(args)
  requests = {}
  local path = args[1] .. "/" .. id .. ".requests"
  for line in io.lines(path) do
    local tab = string.find(line, "\t", 1, true)
    local token = string.sub(line, 1, tab - 1)
    local body = string.sub(line, tab + 1)
    requests[#requests + 1] = wrk.format("POST", "/api/v1/attestations",
      {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, body)
  end
  next_request = 1
  created = 0
  other = 0
  exhausted = 0
end

function request()
  if next_request > #requests then
    exhausted = 1
    wrk.thread:stop()
    return requests[#requests]
  end
  local r = requests[next_request]
  next_request = next_request + 1
  return r
end

function response(status, headers, body)
  if status == 201 then created = created + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local created_all, other_all, exhausted_any = 0, 0, 0
  for _, thread in ipairs(threads) do
    created_all = created_all + thread:get("created")
    other_all = other_all + thread:get("other")
    exhausted_any = exhausted_any + thread:get("exhausted")
  end
  io.write(string.format(
    "wrk: requests=%d errors=%d created=%d other=%d exhausted=%d p50_us=%d p99_us=%d mean_us=%d duration_us=%d\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout, created_all, other_all, exhausted_any,
    latency:percentile(50), latency:percentile(99), latency.mean, summary.duration))
end
