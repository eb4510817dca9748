-- wrk script: as ../../shared/peers/submit_empty_saga.lua (a 2-step saga with empty branch
-- URLs, wait_result), but with gids unique across wrk threads and runs. The original seeds
-- nothing, so with -t2 both threads send the same gid sequence (half the submits are
-- duplicates answered 409), and a second run repeats the first run's gids.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
  thread:set("run", tostring(os.time()))
end
local counter = 0
request = function()
  counter = counter + 1
  local gid = run .. "-" .. tostring(tid) .. "-" .. tostring(counter)
  local body = '{"gid":"' .. gid .. '","trans_type":"saga","wait_result":true,' ..
    '"steps":[{"action":"","compensate":""},{"action":"","compensate":""}],' ..
    '"payloads":["{}","{}"]}'
  return wrk.format("POST", "/api/dtmsvr/submit", {["Content-Type"] = "application/json"}, body)
end
response = function(status, headers, body)
  if status ~= 200 then io.write("status " .. status .. " " .. body .. "\n") end
end
