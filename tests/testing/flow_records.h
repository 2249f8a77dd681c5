// Builds the FlowRecords that in-process tests write into an observer ring: a forwarded UDP
// query to port 53 from an endpoint, its endpoints resolved as the drain would resolve them.
#ifndef FLOWSCOPE_TESTS_TESTING_FLOW_RECORDS_H_
#define FLOWSCOPE_TESTS_TESTING_FLOW_RECORDS_H_

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdint>

#include "bpf/flow_event.h"
#include "observer/endpoint_table.h"
#include "observer/flow_record.h"

namespace flowscope::testing {

// `src`:`sport` → `dst`:53 over IPv4 UDP at `time_ns`, FORWARDED from-endpoint.
inline observer::FlowRecord DnsQueryRecord(uint64_t time_ns, const char* src, const char* dst,
                                           uint16_t sport, observer::EndpointTable::Resolver& res) {
  observer::FlowRecord r;
  r.time_ns = time_ns;
  r.family = FS_FAMILY_IPV4;
  inet_pton(AF_INET, src, r.saddr);
  inet_pton(AF_INET, dst, r.daddr);
  r.protocol = IPPROTO_UDP;
  r.sport = sport;
  r.dport = 53;
  r.verdict = FS_VERDICT_FORWARDED;
  r.obs_point = FS_OBS_FROM_ENDPOINT;
  r.src_endpoint = res.Lookup(r.family, r.saddr);
  r.dst_endpoint = res.Lookup(r.family, r.daddr);
  return r;
}

}  // namespace flowscope::testing

#endif  // FLOWSCOPE_TESTS_TESTING_FLOW_RECORDS_H_
