// libFuzzer: raw datapath events (bpf/flow_event.h) into the parser, as the drain thread feeds
// it, then the flow built from every record it accepts. Never crashes; a record it accepts has
// a time no older than the last.
#include <cstdint>
#include <cstdlib>

#include "observer/endpoint_table.h"
#include "observer/flow_builder.h"
#include "observer/parser.h"

namespace {

struct State {
  State() : table("default"), builder(table, "fuzz-node", nullptr, 1), parser(table) {
    flowscope::observer::EndpointInfo pod;
    pod.ips = {"10.0.1.5", "fd00::5"};
    pod.namespace_name = "default";
    pod.pod_name = "tiefighter";
    pod.labels = {"org=empire"};
    table.Update({pod});
    parser.SetFixedClockOffset(1'700'000'000'000'000'000);
  }
  flowscope::observer::EndpointTable table;
  flowscope::observer::FlowBuilder builder;
  flowscope::observer::EventParser parser;
  uint64_t last = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static State* s = new State();
  flowscope::observer::FlowRecord r;
  if (s->parser.Parse({data, size}, &r)) {
    if (r.time_ns < s->last) std::abort();  // the ring's order would break
    s->last = r.time_ns;
    ::observer::GetFlowsResponse resp;
    s->builder.BuildResponse(r, 1, &resp);
  }
  return 0;
}
