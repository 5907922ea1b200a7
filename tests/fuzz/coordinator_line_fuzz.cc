// libFuzzer target: the coordinator's input path (coordinator.cc ReadFrom):
// bytes arrive in arbitrary pieces into a LineBuffer, complete lines are
// decoded (DecodeLine) and the fields of protocol.h are read from them with
// the accessors the coordinator and barrier use (GetString, GetNumber,
// GetBool, GetInteger<T>), including the "processes" lists of dump replies.
//
// Input: one byte giving the piece size (1..256), then the byte stream.
#include <string>

#include "coordinator/json_line.h"
#include "fuzz_util.h"

using namespace stasis::coordinator;

namespace {

// Every field a hello, a client request or a supervisor message carries.
void ReadFields(const Json& m) {
  for (const char* k : {"type", "role", "job_id", "host", "program", "ckptdir", "compression", "signal",
                        "error", "error_code", "manifest", "dir", "state"})
    (void)GetString(m, k);
  for (const char* k : {"interval", "seconds", "time", "bytes"}) (void)GetNumber(m, k);
  for (const char* k : {"ok", "kill", "restarted", "stopped"}) (void)GetBool(m, k);
  (void)GetInteger<int>(m, "version", -1);
  (void)GetInteger<int>(m, "status");
  (void)GetInteger<int64_t>(m, "supervisor_pid");
  (void)GetInteger<int64_t>(m, "pid");
  (void)GetInteger<uint64_t>(m, "generation");
  (void)GetInteger<uint32_t>(m, "keep", 2);
  auto it = m.find("processes");
  if (it != m.end() && it->is_array()) {
    for (const auto& e : *it) {
      (void)GetInteger<int32_t>(e, "pid");
      (void)GetInteger<int32_t>(e, "ppid");
      (void)GetInteger<uint64_t>(e, "image_size");
      (void)GetString(e, "program");
      (void)GetString(e, "image");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t piece = size_t{data[0]} + 1;
  LineBuffer buf;
  for (size_t off = 1; off < size; off += piece) {
    buf.Append(reinterpret_cast<const char*>(data) + off, std::min(piece, size - off));
    while (auto line = buf.NextLine()) {
      FUZZ_CHECK(line->find('\n') == std::string::npos);
      if (line->empty()) continue;
      auto msg = DecodeLine(*line);
      if (!msg.ok()) continue;
      FUZZ_CHECK(msg->is_object());
      ReadFields(*msg);
      // Replies quote what peers sent; the framing must survive it.
      const std::string out = EncodeLine(*msg);
      FUZZ_CHECK(!out.empty() && out.back() == '\n' && out.find('\n') == out.size() - 1);
      auto back = DecodeLine(out.substr(0, out.size() - 1));
      FUZZ_CHECK(back.ok() && *back == *msg);
    }
    if (buf.Overflowed()) break;  // the coordinator disconnects here
  }
  return 0;
}
