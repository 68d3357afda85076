-- wrk script: one Plausible page view per request, each from a new visitor and path so
-- nothing is deduplicated. Usage: wrk -t1 -c64 -d10s -s benches/event.lua http://127.0.0.1:8080/api/event
local counter = 0
request = function()
  counter = counter + 1
  local body = '{"n":"pageview","u":"https://example.com/p/' .. counter .. '","d":"example.com"}'
  local headers = {
    ["Content-Type"] = "text/plain",
    ["User-Agent"] = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    ["X-Forwarded-For"] = "10." .. (counter % 250) .. "." .. (math.floor(counter / 250) % 250) .. ".1",
  }
  return wrk.format("POST", "/api/event", headers, body)
end
