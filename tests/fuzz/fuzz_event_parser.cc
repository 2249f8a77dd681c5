// libFuzzer: raw datapath events (bpf/flow_event.h) into the parser, as the drain thread feeds
// it — DNS events (struct dns_event) with their messages too, their answers naming addresses —
// then the flow built from every record it accepts, both ways (built and encoded in place, which
// must agree). Never crashes; a record it accepts has a time no older than the last.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "observer/dns_table.h"
#include "observer/endpoint_table.h"
#include "observer/flow_builder.h"
#include "observer/name_cache.h"
#include "observer/parser.h"

namespace {

struct State {
  State() : table("default"), builder(table, "fuzz-node", nullptr, 1), parser(table), dns(64) {
    flowscope::observer::EndpointInfo pod;
    pod.ips = {"10.0.1.5", "fd00::5"};
    pod.namespace_name = "default";
    pod.pod_name = "tiefighter";
    pod.labels = {"org=empire"};
    table.Update({pod});
    parser.SetFixedClockOffset(1'700'000'000'000'000'000);
    parser.SetDnsTable(&dns);
    parser.SetNameCache(&names);
    builder.AttachDns(&dns);
    builder.AttachNames(&names);
  }
  flowscope::observer::EndpointTable table;
  flowscope::observer::FlowBuilder builder;
  flowscope::observer::EventParser parser;
  flowscope::observer::DnsTable dns;
  flowscope::observer::NameCache names;  // answers name the addresses of later flows
  uint64_t last = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static State* s = new State();
  flowscope::observer::FlowRecord r;
  const bool first = s->parser.Parse({data, size}, &r);
  for (bool have = first; have; have = s->parser.TakeDns(&r)) {
    if (r.time_ns < s->last) std::abort();  // the ring's order would break
    s->last = r.time_ns;
    ::observer::GetFlowsResponse resp;
    s->builder.BuildResponse(r, 1, &resp);
    std::string built, encoded;
    if (!resp.SerializeToString(&built)) std::abort();
    s->builder.EncodeResponse(r, 1, &encoded);
    if (built != encoded) std::abort();
  }
  return 0;
}
