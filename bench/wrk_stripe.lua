-- wrk script: send pre-signed Stripe webhooks, each one once, over keep-alive connections.
--
--   wrk -t T -c C -d 10s -s bench/wrk_stripe.lua http://127.0.0.1:PORT -- SET_DIR T
--
-- SET_DIR holds the files written by bench/payloads.py:write_wrk_set: head.bin, mid.bin,
-- tail.bin and signed.txt ("<v1 signature> <evt id>" per line). Thread k sends lines k, k+T,
-- k+2T, ... so no id is sent twice. A thread that runs out stops and reports "exhausted": the
-- run is then void (bench/run.py retries it with more requests).
-- done() prints one line, "BENCH_JSON {...}", with wrk's totals and latency percentiles.

local next_index = 0
local threads = {}

function setup(thread)
  thread:set("thread_index", next_index)
  next_index = next_index + 1
  table.insert(threads, thread)
end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

function init(args)
  local dir = args[1]
  local nthreads = tonumber(args[2])
  head = slurp(dir .. "/head.bin")
  mid = slurp(dir .. "/mid.bin")
  tail = slurp(dir .. "/tail.bin")
  sigs, ids = {}, {}
  local line_no = 0
  for line in io.lines(dir .. "/signed.txt") do
    if line_no % nthreads == thread_index then
      local sig, id = line:match("^(%x+) (%S+)$")
      sigs[#sigs + 1] = sig
      ids[#ids + 1] = id
    end
    line_no = line_no + 1
  end
  available = #ids
  sent = 0
  exhausted = 0
end

function request()
  if sent >= available then
    exhausted = 1
    wrk.thread:stop()
    return head .. sigs[available] .. mid .. ids[available] .. tail
  end
  sent = sent + 1
  return head .. sigs[sent] .. mid .. ids[sent] .. tail
end

function done(summary, latency, requests)
  local sent_total, available_total, exhausted_any = 0, 0, 0
  for _, thread in ipairs(threads) do
    sent_total = sent_total + thread:get("sent")
    available_total = available_total + thread:get("available")
    exhausted_any = math.max(exhausted_any, thread:get("exhausted"))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"duration_us": %d, "requests": %d, "bytes": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "p999": %d, "max": %d, "mean": %.1f}, '
      .. '"sent": %d, "available": %d, "exhausted": %d}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean,
    sent_total, available_total, exhausted_any))
end
