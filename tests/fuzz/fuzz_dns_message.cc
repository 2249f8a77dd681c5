// libFuzzer target: ParseDnsMessage on arbitrary bytes, as a whole message and as a prefix.
// Whatever it accepts holds names within their limits and no more answers than there are bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "observer/dns_message.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  for (const bool complete : {true, false}) {
    auto m = flowscope::observer::ParseDnsMessage({data, size}, complete);
    if (!m.ok()) continue;
    if (m->query.size() > 256 || m->ips.size() > size || m->rrtypes.size() > size) abort();
    for (const auto& c : m->cnames) {
      if (c.size() > 256) abort();
    }
  }
  return 0;
}
