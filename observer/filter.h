// Flow filters: GetFlowsRequest whitelists and blacklists compiled once per request into a
// predicate over FlowRecords, with Hubble's semantics: include a flow if any whitelist filter
// matches (an empty whitelist matches all) and no blacklist filter does; within a filter every
// populated field must match, and a field matches if any of its values does. Endpoint criteria
// (pod, label, identity, workload, cluster) are evaluated once per endpoint id and cached.
// Fields about L7 data flowscope does not produce yet (HTTP, DNS, FQDN, services, trace ids)
// are validated and match nothing. An invalid filter is InvalidArgument naming field and value.
//
// A FlowPredicate is used by one stream at a time (its caches are not locked).
//
//   FLOWSCOPE_ASSIGN_OR_RETURN(FlowPredicate pred,
//       FlowPredicate::Compile(req.whitelist(), req.blacklist(), table, builder));
//   if (pred.Match(record, position)) ...
#ifndef FLOWSCOPE_OBSERVER_FILTER_H_
#define FLOWSCOPE_OBSERVER_FILTER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "flow/flow.pb.h"
#include "google/protobuf/repeated_field.h"
#include "observer/endpoint_table.h"
#include "observer/flow_builder.h"
#include "observer/flow_record.h"
#include "observer/label_selector.h"

namespace flowscope::observer {

class CompiledFilter;

class FlowPredicate {
 public:
  static absl::StatusOr<FlowPredicate> Compile(
      const google::protobuf::RepeatedPtrField<flow::FlowFilter>& whitelist,
      const google::protobuf::RepeatedPtrField<flow::FlowFilter>& blacklist,
      const EndpointTable& table, const FlowBuilder& builder);

  // For decoded flows (MatchFlow): flows read from a file, from another server. Node name
  // patterns are checked against each flow's node.
  static absl::StatusOr<FlowPredicate> CompileForFlows(
      const google::protobuf::RepeatedPtrField<flow::FlowFilter>& whitelist,
      const google::protobuf::RepeatedPtrField<flow::FlowFilter>& blacklist);

  FlowPredicate(FlowPredicate&&) noexcept;
  FlowPredicate& operator=(FlowPredicate&&) noexcept;
  ~FlowPredicate();

  // `position` is the record's ring position (for uuid filters).
  bool Match(const FlowRecord& r, uint64_t position) const;

  bool MatchFlow(const flow::Flow& f) const;

  // True when no filter was given (every flow matches): lets readers skip the call.
  bool MatchesAll() const { return whitelist_.empty() && blacklist_.empty(); }

 private:
  FlowPredicate() = default;
  static absl::StatusOr<FlowPredicate> CompileWith(
      const google::protobuf::RepeatedPtrField<flow::FlowFilter>& whitelist,
      const google::protobuf::RepeatedPtrField<flow::FlowFilter>& blacklist,
      const EndpointTable* table, const FlowBuilder* builder);
  std::vector<std::unique_ptr<CompiledFilter>> whitelist_;
  std::vector<std::unique_ptr<CompiledFilter>> blacklist_;
};

}  // namespace flowscope::observer

#endif  // FLOWSCOPE_OBSERVER_FILTER_H_
