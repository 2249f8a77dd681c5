// libFuzzer: the small text parsers clients reach — label selectors, Hubble times and Go
// durations, IP prefixes and protocol names. Errors are statuses; nothing throws or crashes.
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "api/time_parse.h"
#include "bpf/ip_prefix.h"
#include "bpf/ip_protocol.h"
#include "observer/label_selector.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  auto selector = flowscope::observer::ParseLabelSelector(text);
  if (selector.ok()) {
    flowscope::observer::SelectorMatches(*selector, {"k8s:org=empire", "reserved:world"});
  }
  flowscope::ParseHubbleTime(text, absl::FromUnixSeconds(1'700'000'000)).IgnoreError();
  if (auto d = flowscope::ParseGoDuration(text); d.ok()) flowscope::FormatGoDuration(*d);
  flowscope::bpf::ParseIpPrefix(text).IgnoreError();
  flowscope::bpf::IpProtocolNumbers(text).IgnoreError();
  return 0;
}
