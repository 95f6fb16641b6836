-- wrk script for the oam-authz benchmark.
--   wrk ... -s tokens.lua URL -- TOKENS_FILE [PATH] [HOST]
-- Each request carries the next token of TOKENS_FILE ("Authorization: Bearer
-- <token>", cycling); an empty or "-" file name sends no Authorization header.
-- response() counts statuses; done() prints one line:
--   WRK_RESULT {"requests":N,"duration_us":D,"statuses":{"200":N},...}
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local reqs, nreq, idx
statuses = {}

function init(args)
  local file = args[1] or "-"
  local path = args[2] or "/"
  local host = args[3] or "bench.local"
  -- requests are pre-built once, so per-request load-generator work is the
  -- same for a one-token pool and a 20k-token pool
  reqs, nreq, idx = {}, 0, 0
  if file ~= "-" and file ~= "" then
    for line in io.lines(file) do
      if #line > 0 then
        nreq = nreq + 1
        reqs[nreq] = wrk.format("GET", path, { ["Host"] = host, ["Authorization"] = "Bearer " .. line })
      end
    end
  end
  if nreq == 0 then
    nreq = 1
    reqs[1] = wrk.format("GET", path, { ["Host"] = host })
  end
  statuses = {}
end

function request()
  idx = idx % nreq + 1
  return reqs[idx]
end

function response(status, headers, body)
  local k = tostring(status)
  statuses[k] = (statuses[k] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    for k, v in pairs(s) do
      counts[k] = (counts[k] or 0) + v
    end
  end
  local parts = {}
  for k, v in pairs(counts) do
    table.insert(parts, string.format('"%s":%d', k, v))
  end
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"lat_p50_us":%d,"lat_p99_us":%d,"statuses":{%s}}\n',
    summary.requests, summary.duration, summary.bytes,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), table.concat(parts, ",")))
end
