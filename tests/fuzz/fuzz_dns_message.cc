// libFuzzer target: ParseDnsMessage on arbitrary bytes, as a whole message and as a prefix.
// Whatever it accepts holds names within their limits (255 bytes on the wire, so at most 4 times
// that as escaped text: \DDD per byte) made of printable ASCII only, and no more answers than
// there are bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "observer/dns_message.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  for (const bool complete : {true, false}) {
    auto m = flowscope::observer::ParseDnsMessage({data, size}, complete);
    if (!m.ok()) continue;
    if (m->ips.size() > size || m->rrtypes.size() > size) abort();
    auto bad = [](const std::string& name) {
      if (name.size() > 4 * 255) return true;
      for (const char c : name) {
        if (c < 0x21 || c > 0x7e) return true;  // text a flow's string field can carry
      }
      return false;
    };
    if (bad(m->query)) abort();
    for (const auto& c : m->cnames) {
      if (bad(c)) abort();
    }
  }
  return 0;
}
