#include "tests/bench/observer_fill.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "bpf/flow_event.h"

namespace flowscope::bench {

using observer::EndpointInfo;
using observer::EndpointTable;
using observer::FlowRecord;
using observer::Ring;

// 1,000 pods in 10 namespaces at 10.1.x.y.
void AddPods(EndpointTable& table) {
  std::vector<EndpointInfo> pods;
  for (int i = 0; i < 1000; ++i) {
    EndpointInfo e;
    e.ips = {absl::StrCat("10.1.", i / 250, ".", i % 250 + 1)};
    e.namespace_name = absl::StrCat("ns", i % 10);
    e.pod_name = absl::StrCat("pod-", i);
    e.labels = {absl::StrCat("app=app", i % 50)};
    pods.push_back(std::move(e));
  }
  table.Update(pods);
}

FlowRecord BenchRecord(EndpointTable::Resolver& res, uint64_t i, uint64_t time_ns) {
  uint64_t x = 12345 + i * 0x9e3779b97f4a7c15ULL;
  x = x * 6364136223846793005ULL + 1442695040888963407ULL;
  const int a = static_cast<int>((x >> 33) % 1000);
  const int b = static_cast<int>((x >> 13) % 1000);
  FlowRecord r;
  r.time_ns = time_ns;
  r.family = FS_FAMILY_IPV4;
  inet_pton(AF_INET, absl::StrCat("10.1.", a / 250, ".", a % 250 + 1).c_str(), r.saddr);
  inet_pton(AF_INET, absl::StrCat("10.1.", b / 250, ".", b % 250 + 1).c_str(), r.daddr);
  r.protocol = IPPROTO_TCP;
  r.sport = static_cast<uint16_t>(30000 + i % 30000);
  r.dport = 80;
  r.tcp_flags = FS_TCP_ACK;
  r.verdict = FS_VERDICT_FORWARDED;
  r.obs_point = FS_OBS_FROM_ENDPOINT;
  r.is_reply = FS_REPLY_NO;
  r.src_endpoint = res.Lookup(r.family, r.saddr);
  r.dst_endpoint = res.Lookup(r.family, r.daddr);
  return r;
}

// Fills `ring` with flows between random pods, 1 µs apart, ending now.
void FillRing(Ring& ring, EndpointTable& table, uint64_t n) {
  EndpointTable::Resolver res(table);
  const uint64_t t0 = static_cast<uint64_t>(absl::ToUnixNanos(absl::Now())) - n * 1000;
  for (uint64_t i = 0; i < n; ++i) ring.Write(BenchRecord(res, i, t0 + i * 1000));
  ring.Publish();
}

}  // namespace flowscope::bench
