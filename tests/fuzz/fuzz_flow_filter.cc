// libFuzzer: arbitrary FlowFilter bytes (as a GetFlowsRequest whitelist and blacklist carry
// them) compiled into a predicate for the ring and for decoded flows, then matched. An invalid
// filter is an error status, never a crash.
#include <cstdint>

#include "observer/endpoint_table.h"
#include "observer/filter.h"
#include "observer/flow_builder.h"
#include "tests/testing/flow_records.h"

namespace {

struct State {
  State() : table("default"), builder(table, "fuzz-node", nullptr, 1) {
    flowscope::observer::EndpointInfo pod;
    pod.ips = {"10.0.1.5"};
    pod.namespace_name = "default";
    pod.pod_name = "tiefighter";
    pod.labels = {"org=empire", "class=tiefighter"};
    pod.workload_name = "tiefighter";
    pod.workload_kind = "Deployment";
    table.Update({pod});
    flowscope::observer::EndpointTable::Resolver res(table);
    record = flowscope::testing::DnsQueryRecord(1'700'000'000'000'000'000, "10.0.1.5", "10.0.3.2",
                                                40000, res);
    builder.BuildResponse(record, 7, &response);
  }
  flowscope::observer::EndpointTable table;
  flowscope::observer::FlowBuilder builder;
  flowscope::observer::FlowRecord record;
  ::observer::GetFlowsResponse response;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static State* s = new State();
  ::observer::GetFlowsRequest req;
  if (!req.ParseFromArray(data, static_cast<int>(size))) return 0;
  auto pred = flowscope::observer::FlowPredicate::Compile(req.whitelist(), req.blacklist(),
                                                          s->table, s->builder);
  if (pred.ok()) {
    pred->Match(s->record, 7);
    pred->MatchFlow(s->response.flow());
  }
  auto for_flows =
      flowscope::observer::FlowPredicate::CompileForFlows(req.whitelist(), req.blacklist());
  if (for_flows.ok()) for_flows->MatchFlow(s->response.flow());
  return 0;
}
