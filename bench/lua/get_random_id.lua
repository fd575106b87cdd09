-- GET /articles/{id} with a random id in 1..1000 (the seeded articles), so
-- the server cannot answer from one hot row.
local thread_counter = 0
function setup(thread)
  thread_counter = thread_counter + 1
  thread:set("thread_id", thread_counter)
end

function init(args)
  math.randomseed(os.time() + (thread_id or 0) * 7919)
end

function request()
  return wrk.format("GET", "/articles/" .. math.random(1, 1000))
end
