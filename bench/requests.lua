-- wrk script for the load benchmark (bench/load.py writes its inputs).
--
-- BENCH_REQUESTS names a file of requests, one a line: METHOD <tab> PATH [<tab> JSON body].
-- Each wrk thread takes its own contiguous share of the lines and walks it in order,
-- wrapping at the end, so no two threads send the same request at once (one customer per
-- follow-up, one opportunity per stage move). Every request carries BENCH_TOKEN.
-- done() prints one line "BENCH_RESULT {json}" with the counts and latency percentiles.

local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end

function init(args)
  local token = os.getenv("BENCH_TOKEN")
  local threads = tonumber(os.getenv("BENCH_THREADS") or "1")
  local lines = {}
  for line in io.lines(os.getenv("BENCH_REQUESTS")) do
    if line ~= "" then
      lines[#lines + 1] = line
    end
  end
  local first, last = 1, #lines
  if #lines >= threads then
    local share = math.floor(#lines / threads)
    first = tid * share + 1
    last = (tid == threads - 1) and #lines or (first + share - 1)
  end
  prepared = {}
  for i = first, last do
    local method, path, body = lines[i]:match("^(%u+)\t([^\t]+)\t?(.*)$")
    local headers = { ["Authorization"] = "Bearer " .. token, ["Accept"] = "application/json" }
    if body == "" then
      body = nil
    else
      headers["Content-Type"] = "application/json"
    end
    prepared[#prepared + 1] = wrk.format(method, path, headers, body)
  end
  position = 0
  if tid == 0 then
    -- wrk calls request() once on thread 0 before the run, to check the script
    -- (script_verify_request), and sends nothing for it: let that call take the share's
    -- last line, so that the first is sent (else the first stage move was never made, and
    -- a run that reached the share's moves back answered that one 409).
    position = #prepared - 1
  end
end

function request()
  position = position % #prepared + 1
  return prepared[position]
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,'
      .. '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,'
      .. '"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean
  ))
end
