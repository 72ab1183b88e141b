-- wrk script for bench/serve.sh: each request embeds one sentence, taken in turn from the file in
-- $SENTENCES (one per line), as ModelScope's /call body.
local sentences = {}
for line in io.lines(os.getenv("SENTENCES")) do
  sentences[#sentences + 1] = line:gsub('\\', '\\\\'):gsub('"', '\\"')
end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

request = function()
  i = i % #sentences + 1
  return wrk.format(nil, "/call", nil,
                    '{"input": {"source_sentence": ["' .. sentences[i] .. '"]}}')
end
