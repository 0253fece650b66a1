-- wrk script for bench/serving_throughput.py: POST {"user_id": u, "k": K} to /recommend, cycling
-- through the users in the file named by WRK_USERS; K from WRK_K (default 10).
-- With WRK_RATE (requests/s; run wrk with one thread, -t1), requests go out on a fixed schedule
-- shared by the thread's connections (paced, not saturating): each one takes the next free slot.
-- done() prints one JSON line: requests, errors, seconds, latency percentiles in ms.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_usec; } timeval;
int gettimeofday(timeval *tv, void *tz);
]]
local clock = ffi.new("timeval")
local function now_ms()
  ffi.C.gettimeofday(clock, nil)
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_usec) / 1000
end

local bodies, next_body = {}, 1
local interval_ms, next_send_ms = nil, nil
local status_counts = {}

function init(args)
  local k = os.getenv("WRK_K") or "10"
  for line in io.lines(os.getenv("WRK_USERS")) do
    bodies[#bodies + 1] = string.format('{"user_id":%s,"k":%s}', line, k)
  end
  local rate = tonumber(os.getenv("WRK_RATE") or "")
  if rate then
    interval_ms = 1000 / rate
  end
  -- Threads start at different users so they do not ask for the same ones in lockstep.
  next_body = math.random(#bodies)
end

function request()
  local body = bodies[next_body]
  next_body = next_body % #bodies + 1
  return wrk.format("POST", "/recommend", {["Content-Type"] = "application/json"}, body)
end

function delay()
  if not interval_ms then
    return 0
  end
  local now = now_ms()
  if not next_send_ms then
    next_send_ms = now
  else
    next_send_ms = next_send_ms + interval_ms
  end
  return math.max(0, next_send_ms - now)
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests":%d,"seconds":%.3f,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f}\n',
    summary.requests, summary.duration / 1e6, errors.connect, errors.read, errors.write, errors.status,
    errors.timeout, latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
end
