// Flow filters: GetFlowsRequest whitelists and blacklists compiled once per request into a
// predicate over FlowRecords, with Hubble's semantics: include a flow if any whitelist filter
// matches (an empty whitelist matches all) and no blacklist filter does; within a filter every
// populated field must match, and a field matches if any of its values does. Endpoint criteria
// (pod, label, identity, workload, cluster) are evaluated once per endpoint id and cached; when
// they are all a request asks, a record is decided by two table lookups.
// DNS flows (L7, passive DNS) match `protocol: dns` and `dns_query` (an RE2 expression found
// anywhere in the query name, as Hubble matches it). Criteria on data flowscope does not produce
// (HTTP, FQDNs of L3/L4 flows, trace ids) are validated and refused as unsupported. An invalid
// filter is InvalidArgument naming field and value.
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
  bool Match(const FlowRecord& r, uint64_t position) const {
    if (by_endpoint_) {
      // Decided per endpoint id once: two loads per record.
      const uint32_t s = r.src_endpoint < src_decided_.size() ? src_decided_[r.src_endpoint] : 0;
      const uint32_t d = r.dst_endpoint < dst_decided_.size() ? dst_decided_[r.dst_endpoint] : 0;
      if ((s & d & kDecided) != 0) return Decide(s & d);
    }
    return MatchSlowly(r, position);
  }

  bool MatchFlow(const flow::Flow& f) const;

  // True when no filter was given (every flow matches): lets readers skip the call.
  bool MatchesAll() const { return whitelist_.empty() && blacklist_.empty(); }

 private:
  FlowPredicate() = default;
  static absl::StatusOr<FlowPredicate> CompileWith(
      const google::protobuf::RepeatedPtrField<flow::FlowFilter>& whitelist,
      const google::protobuf::RepeatedPtrField<flow::FlowFilter>& blacklist,
      const EndpointTable* table, const FlowBuilder* builder);
  bool MatchSlowly(const FlowRecord& r, uint64_t position) const;
  // Which filters accept an endpoint id on one side: whitelist filter i is bit i, blacklist
  // filter i bit kListBits + i; kDecided marks a computed entry.
  uint32_t Decided(uint32_t endpoint, bool source) const;
  bool Decide(uint32_t both) const {
    const uint32_t white = both & ((uint32_t{1} << kListBits) - 1);
    const uint32_t black = (both >> kListBits) & ((uint32_t{1} << kListBits) - 1);
    return (whitelist_.empty() || white != 0) && black == 0;
  }
  static constexpr size_t kListBits = 15;
  static constexpr uint32_t kDecided = uint32_t{1} << 31;
  static constexpr size_t kMaxDecided = size_t{1} << 20;  // endpoint ids beyond: filter by filter

  std::vector<std::unique_ptr<CompiledFilter>> whitelist_;
  std::vector<std::unique_ptr<CompiledFilter>> blacklist_;
  // When every filter has endpoint criteria only (--pod, --label, --workload, ...), a record is
  // decided by its two endpoint ids, each looked up once per query and kept in a dense table.
  bool by_endpoint_ = false;
  mutable std::vector<uint32_t> src_decided_;
  mutable std::vector<uint32_t> dst_decided_;
};

}  // namespace flowscope::observer

#endif  // FLOWSCOPE_OBSERVER_FILTER_H_
