-- POST a fixed ~500-character article to the URL given to wrk (.../articles).
-- $BENCH_TOKEN, when set, is sent as a bearer token (the peers ignore it).
local content = string.rep("Lorem ipsum dolor sit amet, consectetur adipiscing elit. ", 9)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"title":"Benchmark article","content":"' .. content ..
           '","tags":["performance","rust","web"]}'
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
